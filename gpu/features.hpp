// Flow feature extraction (SPEC §4): from packets in arrival order to
// per-flow tensors. One definition of the output, two implementations that
// must produce the same bytes: the CPU extractor (features_cpu.cpp,
// multi-threaded; the fallback and the baseline) and the CUDA extractor
// (features.cu, when nvcc is present).
//
// Semantics, exactly (both implementations follow this; the tests compare
// them byte for byte):
//  * Packets are Ethernet frames with a timestamp, in arrival order; their
//    global index (0-based across all batches) is the arrival order.
//  * Parsing is the FlowManager's: Ethernet, ≤ 2 VLAN tags (0x8100/0x88a8),
//    IPv4 (IHL options; non-first fragments are not parsed) or IPv6 (hop-by-
//    hop, routing, destination options, fragment, AH, mobility; ≤ 6), TCP
//    (data offset) / UDP (8 bytes) / other protocols (ports 0, the whole IP
//    payload is payload). L4 payload length comes from the IP lengths, not the
//    captured length. Unparsable packets are ignored.
//  * Flow key: canonical bidirectional (smaller (address, port) endpoint
//    first, bytes compared in network order, then port), protocol, family,
//    both VLAN ids — struct etc_flow_key. The flow's initiator is the sender
//    of its first parsed packet.
//  * Selection: the first H packets of each flow with L4 payload > 0 (H is
//    the largest H over the requested features). No idle timeout: a key is
//    one flow for the whole input.
//  * A flow is emitted when it has H selected packets, or at the end of the
//    input when it has at least one. Output rows are ordered by the global
//    index of the flow's first parsed packet (deterministic for both).
//  * Features (for selected packet j of a flow, j < H; rows beyond the
//    flow's selected packets are zero):
//      payload:HxL  u8  the first L bytes of the L4 payload (bounded by the
//                       payload length and the captured bytes), zero-padded.
//      packet:HxL   u8  the first L bytes from the IP header (bounded by the
//                       IP packet length and the captured bytes), with the
//                       IP source/destination addresses and the TCP/UDP
//                       ports zeroed where they fall inside L.
//      sizes:H      i32 IP packet length (IPv4 total length; IPv6 40 +
//                       payload length), positive from the initiator,
//                       negative toward it.
//      iat:H        i64 microseconds since the flow's previous selected
//                       packet (timestamp difference in ns / 1000, rounded
//                       toward zero; 0 for the first; negative if time runs
//                       backwards).
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <new>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "etcpipe/flowmgr.h"
#include "common/result.hpp"

namespace etcpipe {

// Where features are extracted and models run: parsed once from the
// command line ("gpu", "cpu", "auto": the GPU when there is one).
enum class Device : uint8_t { Cpu, Gpu, Auto };

[[nodiscard]] Result<Device> parse_device(const std::string& text);
[[nodiscard]] const char* device_name(Device device);

}  // namespace etcpipe

namespace etcpipe::features {

enum class Kind : uint8_t { Payload, Packet, Sizes, Iat, Port };

struct Feature {
    Kind kind = Kind::Payload;
    uint32_t h = 10;  // packets per flow
    uint32_t l = 0;   // bytes per packet (payload/packet only)
    [[nodiscard]] std::string name() const;        // "payload_10x1000"
    [[nodiscard]] size_t row_bytes() const;        // bytes of one flow's tensor
    [[nodiscard]] size_t elem_size() const;        // 1, 4 or 8
};

// "payload:10x1000,sizes:10,iat:10" → features. Errors are Usage errors
// naming the bad part.
[[nodiscard]] Result<std::vector<Feature>> parse_spec(const std::string& spec);
// Largest H over the features: the per-flow selection count.
[[nodiscard]] uint32_t max_packets(const std::vector<Feature>& spec);

// A batch of packets in one contiguous buffer.
struct Batch {
    std::vector<uint8_t> bytes;      // frames back to back
    std::vector<uint64_t> offsets;   // start of frame i in bytes; size n+1
    std::vector<uint64_t> ts_ns;     // per frame
    uint64_t first_index = 0;        // global index of frame 0

    [[nodiscard]] size_t size() const { return ts_ns.size(); }
    void add(std::span<const uint8_t> frame, uint64_t ts);
    void clear();
};

// Checks a batch before an extractor uses it: offsets consistent with the
// bytes and the timestamps, frames < 4 GiB, first_index ≥ next_index (the
// global index the extractor expects next). Shared by both extractors.
[[nodiscard]] Result<void> check_batch(const Batch& b, uint64_t next_index);

// One emitted flow.
struct FlowRow {
    etc_flow_key key{};
    uint8_t initiator_is_a = 1;     // the first packet was sent by endpoint a
    uint64_t first_index = 0;       // global index of its first parsed packet
    uint64_t first_ns = 0;
    uint32_t packets = 0;           // parsed packets of the flow seen until emission
    uint32_t selected = 0;          // ≤ H
};

// Memory for output tensors: from calloc, whose large blocks are fresh
// mmap'ed pages, zero without being written; and resize() does not write
// the bytes it adds. The extractors grow a tensor once, from empty, to its
// full size, so every byte is zero until they write it and the rows' zero
// padding costs nothing. (Shrinking then growing one again would expose
// old bytes: do not.)
template <class T>
struct ZeroedAllocator {
    using value_type = T;
    ZeroedAllocator() = default;
    template <class U>
    ZeroedAllocator(const ZeroedAllocator<U>&) noexcept {}  // NOLINT: rebinding
    T* allocate(size_t n);
    void deallocate(T* p, size_t) noexcept { std::free(p); }
    template <class U>
    void construct(U*) noexcept {}  // value-initialisation skipped: calloc zeroed it
    template <class U, class... A>
    void construct(U* p, A&&... a) {
        ::new (static_cast<void*>(p)) U(std::forward<A>(a)...);
    }
    template <class U>
    bool operator==(const ZeroedAllocator<U>&) const noexcept { return true; }
};
void* zeroed_alloc(size_t bytes);  // calloc; throws bad_alloc
template <class T>
T* ZeroedAllocator<T>::allocate(size_t n) {
    if (n > SIZE_MAX / sizeof(T)) throw std::bad_alloc();
    return static_cast<T*>(zeroed_alloc(n * sizeof(T)));
}
using TensorBytes = std::vector<uint8_t, ZeroedAllocator<uint8_t>>;

// Tensors of the emitted flows: tensors[f] holds rows.size() × row_bytes
// of feature f, rows in the order of `rows`.
struct Output {
    std::vector<Feature> spec;
    std::vector<FlowRow> rows;
    std::vector<TensorBytes> tensors;
};

// Emitted flows with their tensors left in device memory (GPU extractor with
// GpuOptions::device_output), for a consumer on the same GPU (the inference
// engine): tensors[f] is a device pointer to rows.size() × row_bytes of
// feature f, valid until the extractor's next finish or its destruction;
// stream is the extractor's cudaStream_t, on which they are ready.
struct DeviceOutput {
    std::vector<Feature> spec;
    std::vector<FlowRow> rows;
    std::vector<const void*> tensors;
    void* stream = nullptr;
};

// The extractor interface: feed batches in order, then finish().
class Extractor {
  public:
    virtual ~Extractor() = default;
    [[nodiscard]] virtual Result<void> push(const Batch& batch) = 0;
    // Emits the remaining flows and returns everything emitted, ordered.
    [[nodiscard]] virtual Result<Output> finish() = 0;
    // finish() with the tensors left on the device (see DeviceOutput); only
    // the GPU extractor made with device_output can.
    [[nodiscard]] virtual Result<DeviceOutput> finish_device() {
        return make_error(ErrorKind::Usage, 0, "", "feature extractor",
                          std::string(name()) + " extractor keeps no output on a device");
    }
    [[nodiscard]] virtual const char* name() const = 0;

    // Where the time went, for extractors that can tell (GPU: measured with
    // CUDA events on its stream). Seconds summed over all batches.
    struct Timing {
        double h2d_s = 0;      // host-to-device copies of the batches
        double kernels_s = 0;  // parse, table, sort, scans, scatter
        uint64_t h2d_bytes = 0;
    };
    [[nodiscard]] virtual Timing timing() const { return {}; }
};

struct CpuOptions {
    unsigned threads = 0;  // 0: all hardware threads
};
[[nodiscard]] std::unique_ptr<Extractor> make_cpu_extractor(const std::vector<Feature>& spec,
                                                            const CpuOptions& opts);

// GPU (features.cu). Without CUDA at build time, or without a device at run
// time, make_gpu_extractor returns an error saying which.
struct GpuOptions {
    size_t table_slots = 1u << 20;  // open-addressing flow table on the device
    int block_threads = 256;        // launch shape; the seed used 1 block × 1024
    int max_blocks = 0;             // 0: enough for the whole batch (the whole GPU)
    bool mapped_host = false;       // read the batch from mapped pinned host memory
    bool device_output = false;     // keep emitted rows on the device (finish_device)
};
[[nodiscard]] Result<std::unique_ptr<Extractor>> make_gpu_extractor(
    const std::vector<Feature>& spec, const GpuOptions& opts);
[[nodiscard]] bool gpu_available(std::string* why = nullptr);
// gpu_available() for a command's --device: false for Device::Cpu without
// loading the CUDA plugin (its libraries cost ~0.1 s and ~25k page faults).
[[nodiscard]] inline bool gpu_available(Device device, std::string* why) {
    return device != Device::Cpu && gpu_available(why);
}

// The extractor a command line asks for: Device::Gpu (an error saying why
// when there is none), Cpu (`threads`, 0: all) or Auto (the GPU when
// there is one, else the CPU, saying so).
[[nodiscard]] Result<std::unique_ptr<Extractor>> make_extractor(Device device,
                                                                unsigned threads,
                                                                const std::vector<Feature>& spec);

// Writers for what ML code loads directly.
[[nodiscard]] Result<void> write_npy(const std::string& path, const Feature& f,
                                     std::span<const uint8_t> tensor, size_t rows);
[[nodiscard]] Result<void> write_flows_csv(const std::string& path, const Output& out);

// A dataset written as it comes, capture after capture: one .npy per
// feature (rows appended; the row count is patched into each header by
// close(), which leaves room for any count) and flows.csv, whose rows are
// numbered across captures and end with a `capture` column (the path the
// flow came from). Memory: one capture's Output at a time.
class DatasetWriter {
  public:
    // Creates `dir` when missing; the files are truncated.
    [[nodiscard]] static Result<DatasetWriter> create(const std::string& dir, const std::vector<Feature>& spec);

    DatasetWriter() = default;
    DatasetWriter(DatasetWriter&&) noexcept;
    DatasetWriter& operator=(DatasetWriter&&) noexcept;
    DatasetWriter(const DatasetWriter&) = delete;
    DatasetWriter& operator=(const DatasetWriter&) = delete;
    ~DatasetWriter();  // without close(): files closed, headers left at 0 rows

    // `out.spec` must equal the writer's spec.
    [[nodiscard]] Result<void> append(const Output& out, const std::string& capture);
    // Patches the headers and checks every write (a full disk is an error
    // naming the file).
    [[nodiscard]] Result<void> close();
    [[nodiscard]] size_t rows() const { return rows_; }
    [[nodiscard]] const std::string& dir() const { return dir_; }

  private:
    void close_files();

    std::string dir_;
    std::vector<Feature> spec_;
    std::vector<std::FILE*> npy_;
    std::FILE* csv_ = nullptr;
    size_t rows_ = 0;
};

}  // namespace etcpipe::features
