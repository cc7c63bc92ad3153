// CUDA feature extractor (semantics: gpu/features.hpp; the CPU twin is
// features_cpu.cpp and both call the same parser, gpu/parse_packet.hpp).
//
// Device state persisting across batches:
//  * an open-addressing flow table of opts.table_slots Slot records: full
//    etc_flow_key compare, a slot is claimed with atomicCAS on its state word
//    (0 empty, 1 being written, 2 ready), linear probing. When no slot is
//    left a packet's flow is counted as dropped and push() reports an error
//    ("flow table full (N slots): raise --table-slots") — flows are never
//    lost silently.
//  * a row pool: one zero-initialised row of all features (flow_bytes) per
//    flow with ≥ 1 selected packet, allocated (atomicAdd) on the flow's first
//    selection. Rows are never recycled (a key is one flow for the whole
//    input), so the pool holds (flows with payload) × flow_bytes on the
//    device; the host grows it (double, D2D copy) before a batch when fewer
//    than batch-size rows are free, so a batch can never run out.
//
// Per batch, on one cudaStream_t:
//  0. H2D copy of bytes/offsets/ts (or, with opts.mapped_host, a memcpy into
//     mapped pinned host memory that the kernels read in place). The copy is
//     not double-buffered yet: push() is synchronous per batch.
//  1. k_parse: pp::parse per packet.
//  2. k_insert: flow-table insert/lookup → sort key (slot << 32 | index in
//     batch); unparsed or dropped packets get ~0 (sorted last, ignored).
//  3. cub::DeviceRadixSort::SortKeys: stable order by (flow, arrival).
//  4. k_flags + cub segmented scans (by slot): inclusive payload count, and
//     the inclusive max of the last payload position (previous selected
//     packet for iat). Rank of a payload packet = slot.selected (from earlier
//     batches) + count − 1.
//  5. k_prepare: segment head records first_index/first_ns/initiator of a new
//     flow; segment end allocates the flow's row; per packet "counted" flag
//     (the flow was not complete before it) → segmented sum.
//  6. k_scatter: selected packets (rank < H) write their features into the
//     flow's row; iat from the sorted neighbour or the slot's last ts.
//  7. k_update: segment end updates packets/selected/last ts, marks flows
//     that reached H as done and appends them to a completion list.
//  8. completed flows are gathered (k_gather) and copied back; finish() also
//     gathers every not-done flow with ≥ 1 selected (k_collect_rest), sorts
//     all rows by first_index on the host and lays out the Output.
#include <cub/cub.cuh>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstring>
#include <string>
#include <vector>

#include <memory>

#include "cuda_check.hpp"
#include "cuda_plugin.hpp"
#include "features.hpp"
#include "parse_packet.hpp"

namespace etcpipe::features {
namespace {

// After a kernel launch: launch errors (bad shape) are reported here.
#define ETC_CUDA_LAUNCHED(name) ETC_CUDA_TRY(cudaGetLastError())

constexpr uint64_t kNoKey = ~0ull;
constexpr uint32_t kNoSlot = 0xffffffffu;

struct Slot {
    etc_flow_key key;
    uint32_t state;  // 0 empty, 1 claimed (key being written), 2 ready
    uint32_t selected;
    uint32_t packets;
    uint32_t row1;  // row in the pool + 1; 0: none yet
    uint64_t first_index;
    uint64_t first_ns;
    uint64_t last_sel_ns;
    uint32_t has_first;
    uint32_t done;
    uint32_t initiator_is_a;
    uint32_t flow_no;  // order of first appearance (diagnostics)
};

struct DevFeature {
    uint32_t kind;
    uint32_t h;
    uint32_t l;
    uint32_t pad;
    uint64_t off;  // within the flow's row
};

struct Counters {
    unsigned long long dropped;
    unsigned int completed;
    unsigned int rows;
    unsigned int flows;
    unsigned int pad;
};

struct EqOp {
    __host__ __device__ bool operator()(uint32_t a, uint32_t b) const { return a == b; }
};
struct MaxOp {
    __host__ __device__ int operator()(int a, int b) const { return a > b ? a : b; }
};

#define GRID_STRIDE(i, n) \
    for (size_t i = blockIdx.x * size_t{blockDim.x} + threadIdx.x; i < (n); i += size_t{gridDim.x} * blockDim.x)

__global__ void k_parse(const uint8_t* bytes, const uint64_t* offs, uint32_t n, pp::Parsed* pk,
                        uint8_t* ok) {
    GRID_STRIDE(i, n) {
        const uint64_t o = offs[i];
        ok[i] = pp::parse(bytes + o, static_cast<uint32_t>(offs[i + 1] - o), &pk[i]) ? 1 : 0;
    }
}

__device__ bool key_equal_volatile(const volatile etc_flow_key* a, const etc_flow_key& b) {
    const volatile uint32_t* x = reinterpret_cast<const volatile uint32_t*>(a);
    const uint32_t* y = reinterpret_cast<const uint32_t*>(&b);
    for (uint32_t i = 0; i < sizeof(etc_flow_key) / 4; ++i)
        if (x[i] != y[i]) return false;
    return true;
}

__global__ void k_insert(const pp::Parsed* pk, const uint8_t* ok, uint32_t n, Slot* slots,
                         uint32_t nslots, uint64_t* skeys, Counters* ctr) {
    GRID_STRIDE(i, n) {
        if (!ok[i]) {
            skeys[i] = kNoKey;
            continue;
        }
        const etc_flow_key& k = pk[i].key;
        uint32_t s = static_cast<uint32_t>(pp::key_hash(k) % nslots);
        uint32_t found = kNoSlot;
        for (uint32_t probe = 0; probe < nslots; ++probe) {
            Slot* sl = &slots[s];
            volatile uint32_t* stp = &sl->state;
            uint32_t st = *stp;
            if (st == 0) {
                st = atomicCAS(&sl->state, 0u, 1u);
                if (st == 0) {
                    volatile uint32_t* dst = reinterpret_cast<volatile uint32_t*>(&sl->key);
                    const uint32_t* src = reinterpret_cast<const uint32_t*>(&k);
                    for (uint32_t w = 0; w < sizeof(etc_flow_key) / 4; ++w) dst[w] = src[w];
                    sl->flow_no = atomicAdd(&ctr->flows, 1u);
                    __threadfence();
                    atomicExch(&sl->state, 2u);
                    found = s;
                    break;
                }
            }
            while (st == 1) {
                __nanosleep(32);
                st = *stp;
            }
            __threadfence();
            if (key_equal_volatile(&sl->key, k)) {
                found = s;
                break;
            }
            s = s + 1 == nslots ? 0 : s + 1;
        }
        if (found == kNoSlot) {
            atomicAdd(&ctr->dropped, 1ull);
            skeys[i] = kNoKey;
        } else {
            skeys[i] = (uint64_t{found} << 32) | i;
        }
    }
}

// Per sorted position: segment key (slot), payload flag, payload position.
__global__ void k_flags(const uint64_t* skeys, uint32_t n, const pp::Parsed* pk, uint32_t* seg,
                        uint32_t* pf, int* lp) {
    GRID_STRIDE(p, n) {
        const uint64_t key = skeys[p];
        if (key == kNoKey) {
            seg[p] = kNoSlot;
            pf[p] = 0;
            lp[p] = -1;
            continue;
        }
        const uint32_t idx = static_cast<uint32_t>(key);
        seg[p] = static_cast<uint32_t>(key >> 32);
        const bool pay = pk[idx].payload_len > 0;
        pf[p] = pay ? 1u : 0u;
        lp[p] = pay ? static_cast<int>(p) : -1;
    }
}

__global__ void k_prepare(const uint64_t* skeys, uint32_t n, const pp::Parsed* pk,
                          const uint64_t* ts, uint64_t first_index, const uint32_t* seg,
                          const uint32_t* csum, uint32_t h, Slot* slots, Counters* ctr,
                          uint32_t* cnt) {
    GRID_STRIDE(p, n) {
        const uint32_t s = seg[p];
        if (s == kNoSlot) {
            cnt[p] = 0;
            continue;
        }
        Slot& sl = slots[s];
        const uint32_t idx = static_cast<uint32_t>(skeys[p]);
        const uint32_t s0 = sl.selected;
        const uint32_t pay = pk[idx].payload_len > 0 ? 1u : 0u;
        const uint32_t before = csum[p] - pay;  // payload packets of this batch before p
        cnt[p] = (s0 + before < h) ? 1u : 0u;
        const bool head = p == 0 || seg[p - 1] != s;
        const bool tail = p + 1 == n || seg[p + 1] != s;
        if (head && !sl.has_first) {
            sl.has_first = 1;
            sl.first_index = first_index + idx;
            sl.first_ns = ts[idx];
            sl.initiator_is_a = pk[idx].from_a;
        }
        if (tail && sl.row1 == 0 && s0 < h && csum[p] > 0) sl.row1 = atomicAdd(&ctr->rows, 1u) + 1;
    }
}

__global__ void k_scatter(const uint64_t* skeys, uint32_t n, const pp::Parsed* pk,
                          const uint8_t* bytes, const uint64_t* offs, const uint64_t* ts,
                          const uint32_t* seg, const uint32_t* csum, const int* lpmax,
                          uint32_t h, const Slot* slots, const DevFeature* feats, uint32_t nfeat,
                          uint64_t flow_bytes, uint8_t* rows) {
    GRID_STRIDE(p, n) {
        const uint32_t s = seg[p];
        if (s == kNoSlot) continue;
        const uint32_t idx = static_cast<uint32_t>(skeys[p]);
        const pp::Parsed& k = pk[idx];
        if (k.payload_len == 0) continue;
        const Slot& sl = slots[s];
        const uint32_t s0 = sl.selected;
        const uint32_t rank = s0 + csum[p] - 1;
        if (rank >= h) continue;
        uint8_t* row = rows + (sl.row1 - 1) * flow_bytes;
        const uint8_t* frame = bytes + offs[idx];
        const auto caplen = static_cast<uint32_t>(offs[idx + 1] - offs[idx]);
        const uint64_t t = ts[idx];
        for (uint32_t f = 0; f < nfeat; ++f) {
            const DevFeature ft = feats[f];
            if (rank >= ft.h) continue;
            uint8_t* base = row + ft.off;
            switch (ft.kind) {
            case static_cast<uint32_t>(Kind::Payload):
                pp::fill_payload(frame, caplen, k, base + uint64_t{rank} * ft.l, ft.l);
                break;
            case static_cast<uint32_t>(Kind::Packet):
                pp::fill_packet(frame, caplen, k, base + uint64_t{rank} * ft.l, ft.l);
                break;
            case static_cast<uint32_t>(Kind::Sizes): {
                const int32_t v = pp::signed_size(k, static_cast<uint8_t>(sl.initiator_is_a));
                memcpy(base + uint64_t{rank} * 4, &v, 4);
                break;
            }
            case static_cast<uint32_t>(Kind::Port): {
                const int32_t v = pp::port_code(k);
                memcpy(base + uint64_t{rank} * 4, &v, 4);
                break;
            }
            default: {  // Iat
                int64_t v = 0;
                if (rank > 0) {
                    uint64_t prev;
                    if (rank == s0) {
                        prev = sl.last_sel_ns;  // from an earlier batch
                    } else {
                        // previous payload packet of this flow in this batch
                        const int q = lpmax[p - 1];
                        prev = ts[static_cast<uint32_t>(skeys[q])];
                    }
                    v = pp::iat_us(t, prev);
                }
                memcpy(base + uint64_t{rank} * 8, &v, 8);
                break;
            }
            }
        }
    }
}

__global__ void k_update(const uint64_t* skeys, uint32_t n, const uint64_t* ts, const uint32_t* seg,
                         const uint32_t* csum, const uint32_t* cntsum, const int* lpmax, uint32_t h,
                         Slot* slots, Counters* ctr, uint32_t* completed) {
    GRID_STRIDE(p, n) {
        const uint32_t s = seg[p];
        if (s == kNoSlot) continue;
        if (!(p + 1 == n || seg[p + 1] != s)) continue;
        Slot& sl = slots[s];
        if (sl.done) continue;
        const uint32_t s0 = sl.selected;
        const uint32_t total = csum[p];
        sl.packets += cntsum[p];
        const uint32_t sel = s0 + total < h ? s0 + total : h;
        sl.selected = sel;
        if (sel == h) {
            sl.done = 1;
            completed[atomicAdd(&ctr->completed, 1u)] = s;
        } else if (total > 0) {
            sl.last_sel_ns = ts[static_cast<uint32_t>(skeys[lpmax[p]])];
        }
    }
}

__global__ void k_collect_rest(const Slot* slots, uint32_t nslots, Counters* ctr,
                               uint32_t* list) {
    GRID_STRIDE(s, nslots) {
        const Slot& sl = slots[s];
        if (sl.state == 2 && !sl.done && sl.selected > 0)
            list[atomicAdd(&ctr->completed, 1u)] = static_cast<uint32_t>(s);
    }
}

__global__ void k_gather(const uint32_t* list, uint32_t m, const Slot* slots, const uint8_t* rows,
                         uint64_t flow_bytes, Slot* out_slots, uint8_t* out_rows) {
    // one block per listed flow (grid-stride over flows), threads over bytes
    for (uint32_t k = blockIdx.x; k < m; k += gridDim.x) {
        const Slot& sl = slots[list[k]];
        if (threadIdx.x == 0) out_slots[k] = sl;
        const uint8_t* src = rows + uint64_t{sl.row1 - 1} * flow_bytes;
        uint8_t* dst = out_rows + uint64_t{k} * flow_bytes;
        for (uint64_t b = threadIdx.x; b < flow_bytes; b += blockDim.x) dst[b] = src[b];
    }
}

// Device output: emitted row perm[r] (flow_bytes each, features side by
// side) → row r of each feature's own tensor.
__global__ void k_split(const uint8_t* emitted, uint64_t flow_bytes, const uint32_t* perm,
                        uint32_t rows, const DevFeature* feats, uint32_t nfeat, uint8_t* const* outs) {
    for (uint32_t r = blockIdx.x; r < rows; r += gridDim.x) {
        const uint8_t* src = emitted + uint64_t{perm[r]} * flow_bytes;
        for (uint32_t f = 0; f < nfeat; ++f) {
            const DevFeature& ft = feats[f];
            const uint64_t rb = ft.kind == static_cast<uint32_t>(Kind::Sizes) ||
                                        ft.kind == static_cast<uint32_t>(Kind::Port)
                                    ? uint64_t{ft.h} * 4
                              : ft.kind == static_cast<uint32_t>(Kind::Iat) ? uint64_t{ft.h} * 8
                                             : uint64_t{ft.h} * ft.l;
            uint8_t* dst = outs[f] + uint64_t{r} * rb;
            for (uint64_t b = threadIdx.x; b < rb; b += blockDim.x) dst[b] = src[ft.off + b];
        }
    }
}

template <class T>
struct DevBuf {
    T* p = nullptr;
    size_t n = 0;
    DevBuf() = default;
    DevBuf(const DevBuf&) = delete;
    DevBuf& operator=(const DevBuf&) = delete;
    ~DevBuf() {
        if (p) cudaFree(p);
    }
    // Grows (contents lost) to at least m elements.
    cudaError_t reserve(size_t m) {
        if (m <= n) return cudaSuccess;
        if (p) cudaFree(p);
        p = nullptr;
        n = 0;
        const cudaError_t e = cudaMalloc(&p, std::max<size_t>(m, 1) * sizeof(T));
        if (e == cudaSuccess) n = m;
        return e;
    }
};

struct Emitted {
    FlowRow row;
    std::vector<uint8_t> buf;  // host rows; empty with device_output
    uint32_t dev_row = 0;      // device_output: its row in the device accumulation
};

class GpuExtractor final : public Extractor {
  public:
    GpuExtractor(std::vector<Feature> spec, const GpuOptions& opts)
        : spec_(std::move(spec)), opts_(opts), h_(max_packets(spec_)) {}

    ~GpuExtractor() override {
        for (cudaEvent_t e : ev_)
            if (e) cudaEventDestroy(e);
        if (stream_) cudaStreamDestroy(stream_);
        if (slots_) cudaFree(slots_);
        if (rows_) cudaFree(rows_);
        if (ctr_) cudaFree(ctr_);
        for (void* p : {h_bytes_, h_offs_, h_ts_})
            if (p) cudaFreeHost(p);
    }

    Result<void> init() {
        if (opts_.table_slots == 0 || opts_.table_slots >= kNoSlot)
            return make_error(ErrorKind::Usage, 0, "", "GPU feature extractor",
                              "table_slots must be in 1 .. 2^32-2");
        if (opts_.block_threads <= 0 || opts_.block_threads > 1024 || opts_.max_blocks < 0)
            return make_error(ErrorKind::Usage, 0, "", "GPU feature extractor",
                              "block_threads must be in 1..1024 and max_blocks >= 0");
        std::vector<DevFeature> df;
        uint64_t off = 0;
        for (const Feature& f : spec_) {
            df.push_back(DevFeature{static_cast<uint32_t>(f.kind), f.h, f.l, 0, off});
            feat_off_.push_back(off);
            off += f.row_bytes();
        }
        flow_bytes_ = off;
        nslots_ = static_cast<uint32_t>(opts_.table_slots);
        ETC_CUDA_TRY(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
        ETC_CUDA_TRY(cudaMalloc(&slots_, sizeof(Slot) * nslots_));
        ETC_CUDA_TRY(cudaMemsetAsync(slots_, 0, sizeof(Slot) * nslots_, stream_));
        ETC_CUDA_TRY(cudaMalloc(&ctr_, sizeof(Counters)));
        ETC_CUDA_TRY(cudaMemsetAsync(ctr_, 0, sizeof(Counters), stream_));
        ETC_CUDA_TRY(feats_.reserve(std::max<size_t>(df.size(), 1)));
        if (!df.empty())
            ETC_CUDA_TRY(cudaMemcpyAsync(feats_.p, df.data(), df.size() * sizeof(DevFeature),
                                         cudaMemcpyHostToDevice, stream_));
        ETC_CUDA_TRY(cudaStreamSynchronize(stream_));
        return {};
    }

    Result<void> push(const Batch& b) override {
        const size_t n = b.size();
        if (n == 0) return {};
        if (auto v = check_batch(b, next_index_); !v) return v;
        if (n >= 0xffffffffull)
            return make_error(ErrorKind::Usage, 0, "", "feature batch", "batch too large");
        next_index_ = b.first_index + n;
        const auto n32 = static_cast<uint32_t>(n);

        // 0. the batch on the device (events time the copy and the kernels)
        if (!ev_[0])
            for (auto& e : ev_) ETC_CUDA_TRY(cudaEventCreate(&e));
        ETC_CUDA_TRY(cudaEventRecord(ev_[0], stream_));
        const uint8_t* d_bytes;
        const uint64_t* d_offs;
        const uint64_t* d_ts;
        const size_t nbytes = b.offsets.back();
        if (opts_.mapped_host) {
            auto r = stage_mapped(b, n, nbytes);
            if (!r) return r.error();
            d_bytes = d_hbytes_;
            d_offs = d_hoffs_;
            d_ts = d_hts_;
        } else {
            ETC_CUDA_TRY(bytes_.reserve(nbytes));
            ETC_CUDA_TRY(offs_.reserve(n + 1));
            ETC_CUDA_TRY(ts_.reserve(n));
            if (nbytes)
                ETC_CUDA_TRY(cudaMemcpyAsync(bytes_.p, b.bytes.data(), nbytes,
                                             cudaMemcpyHostToDevice, stream_));
            ETC_CUDA_TRY(cudaMemcpyAsync(offs_.p, b.offsets.data(), (n + 1) * sizeof(uint64_t),
                                         cudaMemcpyHostToDevice, stream_));
            ETC_CUDA_TRY(cudaMemcpyAsync(ts_.p, b.ts_ns.data(), n * sizeof(uint64_t),
                                         cudaMemcpyHostToDevice, stream_));
            d_bytes = bytes_.p;
            d_offs = offs_.p;
            d_ts = ts_.p;
            timing_.h2d_bytes += nbytes + (2 * n + 1) * sizeof(uint64_t);
        }
        ETC_CUDA_TRY(cudaEventRecord(ev_[1], stream_));

        // per-batch scratch
        ETC_CUDA_TRY(pk_.reserve(n));
        ETC_CUDA_TRY(ok_.reserve(n));
        ETC_CUDA_TRY(keys_.reserve(n));
        ETC_CUDA_TRY(skeys_.reserve(n));
        ETC_CUDA_TRY(seg_.reserve(n));
        ETC_CUDA_TRY(pf_.reserve(n));
        ETC_CUDA_TRY(csum_.reserve(n));
        ETC_CUDA_TRY(cnt_.reserve(n));
        ETC_CUDA_TRY(cntsum_.reserve(n));
        ETC_CUDA_TRY(lp_.reserve(n));
        ETC_CUDA_TRY(lpmax_.reserve(n));
        ETC_CUDA_TRY(list_.reserve(n));
        {
            auto r = ensure_rows(rows_used_ + n);
            if (!r) return r;
        }
        {
            auto r = ensure_temp(n32);
            if (!r) return r;
        }

        const int threads = opts_.block_threads;
        const unsigned grid = grid_for(n);
        k_parse<<<grid, threads, 0, stream_>>>(d_bytes, d_offs, n32, pk_.p, ok_.p);
        ETC_CUDA_LAUNCHED(k_parse);
        k_insert<<<grid, threads, 0, stream_>>>(pk_.p, ok_.p, n32, slots_, nslots_, keys_.p, ctr_);
        ETC_CUDA_LAUNCHED(k_insert);
        size_t tb = temp_.n;
        ETC_CUDA_TRY(cub::DeviceRadixSort::SortKeys(temp_.p, tb, keys_.p, skeys_.p, n32, 0, 64,
                                                    stream_));
        k_flags<<<grid, threads, 0, stream_>>>(skeys_.p, n32, pk_.p, seg_.p, pf_.p, lp_.p);
        ETC_CUDA_LAUNCHED(k_flags);
        tb = temp_.n;
        ETC_CUDA_TRY(cub::DeviceScan::InclusiveSumByKey(temp_.p, tb, seg_.p, pf_.p, csum_.p, n32,
                                                        EqOp{}, stream_));
        tb = temp_.n;
        ETC_CUDA_TRY(cub::DeviceScan::InclusiveScanByKey(temp_.p, tb, seg_.p, lp_.p, lpmax_.p,
                                                         MaxOp{}, n32, EqOp{}, stream_));
        k_prepare<<<grid, threads, 0, stream_>>>(skeys_.p, n32, pk_.p, d_ts, b.first_index,
                                                 seg_.p, csum_.p, h_, slots_, ctr_, cnt_.p);
        ETC_CUDA_LAUNCHED(k_prepare);
        tb = temp_.n;
        ETC_CUDA_TRY(cub::DeviceScan::InclusiveSumByKey(temp_.p, tb, seg_.p, cnt_.p, cntsum_.p,
                                                        n32, EqOp{}, stream_));
        k_scatter<<<grid, threads, 0, stream_>>>(skeys_.p, n32, pk_.p, d_bytes, d_offs, d_ts,
                                                 seg_.p, csum_.p, lpmax_.p, h_, slots_, feats_.p,
                                                 static_cast<uint32_t>(spec_.size()), flow_bytes_,
                                                 rows_);
        ETC_CUDA_LAUNCHED(k_scatter);
        k_update<<<grid, threads, 0, stream_>>>(skeys_.p, n32, d_ts, seg_.p, csum_.p, cntsum_.p,
                                                lpmax_.p, h_, slots_, ctr_, list_.p);
        ETC_CUDA_LAUNCHED(k_update);
        ETC_CUDA_TRY(cudaEventRecord(ev_[2], stream_));

        Counters c{};
        ETC_CUDA_TRY(cudaMemcpyAsync(&c, ctr_, sizeof c, cudaMemcpyDeviceToHost, stream_));
        ETC_CUDA_TRY(cudaStreamSynchronize(stream_));
        {
            float copy_ms = 0, kern_ms = 0;
            ETC_CUDA_TRY(cudaEventElapsedTime(&copy_ms, ev_[0], ev_[1]));
            ETC_CUDA_TRY(cudaEventElapsedTime(&kern_ms, ev_[1], ev_[2]));
            timing_.h2d_s += copy_ms / 1e3;
            timing_.kernels_s += kern_ms / 1e3;
        }
        rows_used_ = c.rows;
        if (c.completed > 0) {
            auto r = gather(c.completed);
            if (!r) return r;
        }
        ETC_CUDA_TRY(cudaMemsetAsync(ctr_, 0, offsetof(Counters, rows), stream_));
        ETC_CUDA_TRY(cudaStreamSynchronize(stream_));
        if (c.dropped > 0) {
            dropped_total_ += c.dropped;
            return make_error(ErrorKind::Data, 0, "", "GPU feature extractor",
                              "flow table full (" + std::to_string(nslots_) +
                                  " slots): raise --table-slots (" +
                                  std::to_string(c.dropped) + " packets dropped in this batch)");
        }
        return {};
    }

    // Emits every remaining flow, resets the device state, sorts emitted_.
    Result<void> collect_all() {
        ETC_CUDA_TRY(list_.reserve(nslots_));
        ETC_CUDA_TRY(cudaMemsetAsync(ctr_, 0, offsetof(Counters, rows), stream_));
        k_collect_rest<<<grid_for(nslots_), opts_.block_threads, 0, stream_>>>(slots_, nslots_,
                                                                            ctr_, list_.p);
        ETC_CUDA_LAUNCHED(k_collect_rest);
        Counters c{};
        ETC_CUDA_TRY(cudaMemcpyAsync(&c, ctr_, sizeof c, cudaMemcpyDeviceToHost, stream_));
        ETC_CUDA_TRY(cudaStreamSynchronize(stream_));
        if (c.completed > 0) {
            auto r = gather(c.completed);
            if (!r) return r.error();
        }
        // reset the device state so the extractor could be reused
        ETC_CUDA_TRY(cudaMemsetAsync(slots_, 0, sizeof(Slot) * nslots_, stream_));
        ETC_CUDA_TRY(cudaMemsetAsync(ctr_, 0, sizeof(Counters), stream_));
        if (rows_used_ > 0)
            ETC_CUDA_TRY(cudaMemsetAsync(rows_, 0, rows_used_ * flow_bytes_, stream_));
        ETC_CUDA_TRY(cudaStreamSynchronize(stream_));
        rows_used_ = 0;
        next_index_ = 0;

        std::sort(emitted_.begin(), emitted_.end(), [](const Emitted& a, const Emitted& b) {
            return a.row.first_index < b.row.first_index;
        });
        return {};
    }

    Result<DeviceOutput> finish_device() override {
        if (!opts_.device_output)
            return make_error(ErrorKind::Usage, 0, "", "GPU feature extractor",
                              "made without device_output: use finish()");
        if (auto r = collect_all(); !r) return r.error();
        const uint32_t rows = static_cast<uint32_t>(emitted_.size());
        DeviceOutput out;
        out.spec = spec_;
        out.stream = stream_;
        out.rows.reserve(rows);
        std::vector<uint32_t> perm(rows);
        for (uint32_t r = 0; r < rows; ++r) {
            out.rows.push_back(emitted_[r].row);
            perm[r] = emitted_[r].dev_row;
        }
        while (dev_out_.size() < spec_.size()) dev_out_.push_back(std::make_unique<DevBuf<uint8_t>>());
        std::vector<uint8_t*> outs(spec_.size());
        for (size_t f = 0; f < spec_.size(); ++f) {
            ETC_CUDA_TRY(dev_out_[f]->reserve(std::max<size_t>(size_t{rows} * spec_[f].row_bytes(), 1)));
            outs[f] = dev_out_[f]->p;
            out.tensors.push_back(dev_out_[f]->p);
        }
        if (rows && flow_bytes_) {
            ETC_CUDA_TRY(perm_.reserve(rows));
            ETC_CUDA_TRY(outs_.reserve(outs.size()));
            ETC_CUDA_TRY(cudaMemcpyAsync(perm_.p, perm.data(), rows * sizeof(uint32_t),
                                         cudaMemcpyHostToDevice, stream_));
            ETC_CUDA_TRY(cudaMemcpyAsync(outs_.p, outs.data(), outs.size() * sizeof(uint8_t*),
                                         cudaMemcpyHostToDevice, stream_));
            const unsigned g = std::min<unsigned>(rows, 65535);
            k_split<<<g, 256, 0, stream_>>>(dev_emitted_.p, flow_bytes_, perm_.p, rows, feats_.p,
                                            static_cast<uint32_t>(spec_.size()), outs_.p);
            ETC_CUDA_LAUNCHED(k_split);
            // perm and outs are host vectors: the copies must finish before they go.
            ETC_CUDA_TRY(cudaStreamSynchronize(stream_));
        }
        emitted_.clear();
        dev_rows_ = 0;
        return out;
    }

    Result<Output> finish() override {
        if (opts_.device_output) {
            // The device output, brought to the host (tests compare it with
            // the host path byte for byte).
            auto d = finish_device();
            if (!d) return d.error();
            Output out;
            out.spec = d->spec;
            out.rows = std::move(d->rows);
            out.tensors.resize(spec_.size());
            for (size_t f = 0; f < spec_.size(); ++f) {
                out.tensors[f].resize(out.rows.size() * spec_[f].row_bytes());
                if (!out.tensors[f].empty())
                    ETC_CUDA_TRY(cudaMemcpy(out.tensors[f].data(), d->tensors[f], out.tensors[f].size(),
                                            cudaMemcpyDeviceToHost));
            }
            return out;
        }
        if (auto r = collect_all(); !r) return r.error();
        Output out;
        out.spec = spec_;
        out.rows.reserve(emitted_.size());
        out.tensors.resize(spec_.size());
        for (size_t f = 0; f < spec_.size(); ++f)
            out.tensors[f].resize(emitted_.size() * spec_[f].row_bytes());
        for (size_t r = 0; r < emitted_.size(); ++r) {
            out.rows.push_back(emitted_[r].row);
            for (size_t f = 0; f < spec_.size(); ++f) {
                const size_t rb = spec_[f].row_bytes();
                if (rb)
                    std::memcpy(out.tensors[f].data() + r * rb,
                                emitted_[r].buf.data() + feat_off_[f], rb);
            }
        }
        emitted_.clear();
        return out;
    }

    const char* name() const override { return "gpu"; }
    Timing timing() const override { return timing_; }

  private:
    unsigned grid_for(size_t n) const {
        const size_t t = static_cast<size_t>(opts_.block_threads);
        size_t g = (n + t - 1) / t;
        if (g == 0) g = 1;
        if (opts_.max_blocks > 0) g = std::min<size_t>(g, static_cast<size_t>(opts_.max_blocks));
        return static_cast<unsigned>(std::min<size_t>(g, 1u << 30));
    }

    Result<void> ensure_temp(uint32_t n) {
        size_t need = 0, s = 0;
        ETC_CUDA_TRY(cub::DeviceRadixSort::SortKeys(nullptr, s, keys_.p, skeys_.p, n, 0, 64,
                                                    stream_));
        need = std::max(need, s);
        s = 0;
        ETC_CUDA_TRY(cub::DeviceScan::InclusiveSumByKey(nullptr, s, seg_.p, pf_.p, csum_.p, n,
                                                        EqOp{}, stream_));
        need = std::max(need, s);
        s = 0;
        ETC_CUDA_TRY(cub::DeviceScan::InclusiveScanByKey(nullptr, s, seg_.p, lp_.p, lpmax_.p,
                                                         MaxOp{}, n, EqOp{}, stream_));
        need = std::max(need, s);
        if (need > temp_.n) {
            ETC_CUDA_TRY(cudaStreamSynchronize(stream_));
            ETC_CUDA_TRY(temp_.reserve(need));
        }
        return {};
    }

    // Row pool: at least `need` rows; contents kept, new rows zeroed.
    Result<void> ensure_rows(size_t need) {
        if (need <= rows_cap_ || flow_bytes_ == 0) return {};
        size_t cap = std::max<size_t>({need, rows_cap_ * 2, 1024});
        uint8_t* p = nullptr;
        const cudaError_t e = cudaMalloc(&p, cap * flow_bytes_);
        if (e != cudaSuccess)
            return make_error(ErrorKind::Io, 0, "cuda", "allocate the per-flow row pool",
                              std::to_string(cap) + " rows × " + std::to_string(flow_bytes_) +
                                  " bytes: " + cudaGetErrorString(e),
                              "use smaller batches or fewer/shorter features");
        ETC_CUDA_TRY(cudaMemsetAsync(p, 0, cap * flow_bytes_, stream_));
        if (rows_) {
            ETC_CUDA_TRY(cudaMemcpyAsync(p, rows_, rows_cap_ * flow_bytes_,
                                         cudaMemcpyDeviceToDevice, stream_));
            ETC_CUDA_TRY(cudaStreamSynchronize(stream_));
            ETC_CUDA_TRY(cudaFree(rows_));
        }
        rows_ = p;
        rows_cap_ = cap;
        return {};
    }

    Result<void> stage_mapped(const Batch& b, size_t n, size_t nbytes) {
        ETC_CUDA_TRY(cudaStreamSynchronize(stream_));  // kernels of the last batch are done
        auto grow = [&](void** h, size_t* cap, size_t need) -> cudaError_t {
            if (need <= *cap) return cudaSuccess;
            if (*h) cudaFreeHost(*h);
            *h = nullptr;
            *cap = 0;
            const cudaError_t e = cudaHostAlloc(h, std::max<size_t>(need, 64), cudaHostAllocMapped);
            if (e == cudaSuccess) *cap = need;
            return e;
        };
        ETC_CUDA_TRY(grow(&h_bytes_, &h_bytes_cap_, nbytes));
        ETC_CUDA_TRY(grow(&h_offs_, &h_offs_cap_, (n + 1) * sizeof(uint64_t)));
        ETC_CUDA_TRY(grow(&h_ts_, &h_ts_cap_, n * sizeof(uint64_t)));
        if (nbytes) std::memcpy(h_bytes_, b.bytes.data(), nbytes);
        std::memcpy(h_offs_, b.offsets.data(), (n + 1) * sizeof(uint64_t));
        std::memcpy(h_ts_, b.ts_ns.data(), n * sizeof(uint64_t));
        void* d = nullptr;
        ETC_CUDA_TRY(cudaHostGetDevicePointer(&d, h_bytes_, 0));
        d_hbytes_ = static_cast<const uint8_t*>(d);
        ETC_CUDA_TRY(cudaHostGetDevicePointer(&d, h_offs_, 0));
        d_hoffs_ = static_cast<const uint64_t*>(d);
        ETC_CUDA_TRY(cudaHostGetDevicePointer(&d, h_ts_, 0));
        d_hts_ = static_cast<const uint64_t*>(d);
        return {};
    }

    // Copies the listed flows (list_[0..m)) back to the host.
    Result<void> gather(uint32_t m) {
        ETC_CUDA_TRY(out_slots_.reserve(m));
        ETC_CUDA_TRY(out_rows_.reserve(size_t{m} * std::max<uint64_t>(flow_bytes_, 1)));
        const unsigned g = std::min<unsigned>(m, opts_.max_blocks > 0 ? opts_.max_blocks : 65535);
        k_gather<<<g, 256, 0, stream_>>>(list_.p, m, slots_, rows_, flow_bytes_, out_slots_.p,
                                         out_rows_.p);
        ETC_CUDA_LAUNCHED(k_gather);
        std::vector<Slot> hs(m);
        std::vector<uint8_t> hr(opts_.device_output ? 0 : size_t{m} * flow_bytes_);
        if (opts_.device_output && flow_bytes_) {
            // Append on the device; only the slots come to the host.
            const size_t need = (dev_rows_ + m) * flow_bytes_;
            if (need > dev_emitted_.n) {
                uint8_t* p = nullptr;
                const size_t cap = std::max(need, dev_emitted_.n * 2);
                ETC_CUDA_TRY(cudaMalloc(&p, cap));
                if (dev_rows_)
                    ETC_CUDA_TRY(cudaMemcpyAsync(p, dev_emitted_.p, dev_rows_ * flow_bytes_,
                                                 cudaMemcpyDeviceToDevice, stream_));
                ETC_CUDA_TRY(cudaStreamSynchronize(stream_));
                if (dev_emitted_.p) cudaFree(dev_emitted_.p);
                dev_emitted_.p = p;
                dev_emitted_.n = cap;
            }
            ETC_CUDA_TRY(cudaMemcpyAsync(dev_emitted_.p + dev_rows_ * flow_bytes_, out_rows_.p,
                                         size_t{m} * flow_bytes_, cudaMemcpyDeviceToDevice, stream_));
        }
        ETC_CUDA_TRY(cudaMemcpyAsync(hs.data(), out_slots_.p, m * sizeof(Slot),
                                     cudaMemcpyDeviceToHost, stream_));
        if (!hr.empty())
            ETC_CUDA_TRY(cudaMemcpyAsync(hr.data(), out_rows_.p, hr.size(), cudaMemcpyDeviceToHost,
                                         stream_));
        ETC_CUDA_TRY(cudaStreamSynchronize(stream_));
        for (uint32_t k = 0; k < m; ++k) {
            Emitted e;
            e.row.key = hs[k].key;
            e.row.initiator_is_a = static_cast<uint8_t>(hs[k].initiator_is_a);
            e.row.first_index = hs[k].first_index;
            e.row.first_ns = hs[k].first_ns;
            e.row.packets = hs[k].packets;
            e.row.selected = hs[k].selected;
            if (opts_.device_output)
                e.dev_row = static_cast<uint32_t>(dev_rows_ + k);
            else
                e.buf.assign(hr.begin() + static_cast<ptrdiff_t>(size_t{k} * flow_bytes_),
                             hr.begin() + static_cast<ptrdiff_t>(size_t{k + 1} * flow_bytes_));
            emitted_.push_back(std::move(e));
        }
        if (opts_.device_output) dev_rows_ += m;
        return {};
    }

    std::vector<Feature> spec_;
    GpuOptions opts_;
    uint32_t h_;
    std::vector<uint64_t> feat_off_;
    uint64_t flow_bytes_ = 0;
    uint32_t nslots_ = 0;
    uint64_t next_index_ = 0;
    unsigned long long dropped_total_ = 0;

    cudaStream_t stream_ = nullptr;
    cudaEvent_t ev_[3] = {nullptr, nullptr, nullptr};
    Timing timing_;
    Slot* slots_ = nullptr;
    Counters* ctr_ = nullptr;
    uint8_t* rows_ = nullptr;
    size_t rows_cap_ = 0;
    size_t rows_used_ = 0;

    DevBuf<DevFeature> feats_;
    DevBuf<uint8_t> bytes_;
    DevBuf<uint64_t> offs_, ts_;
    DevBuf<pp::Parsed> pk_;
    DevBuf<uint8_t> ok_;
    DevBuf<uint64_t> keys_, skeys_;
    DevBuf<uint32_t> seg_, pf_, csum_, cnt_, cntsum_, list_;
    DevBuf<int> lp_, lpmax_;
    DevBuf<uint8_t> temp_;
    DevBuf<Slot> out_slots_;
    DevBuf<uint8_t> out_rows_;
    // device_output: emitted rows accumulated on the device, and the
    // per-feature tensors finish_device() hands out.
    DevBuf<uint8_t> dev_emitted_;
    size_t dev_rows_ = 0;
    std::vector<std::unique_ptr<DevBuf<uint8_t>>> dev_out_;
    DevBuf<uint32_t> perm_;
    DevBuf<uint8_t*> outs_;

    void* h_bytes_ = nullptr;
    void* h_offs_ = nullptr;
    void* h_ts_ = nullptr;
    size_t h_bytes_cap_ = 0, h_offs_cap_ = 0, h_ts_cap_ = 0;
    const uint8_t* d_hbytes_ = nullptr;
    const uint64_t* d_hoffs_ = nullptr;
    const uint64_t* d_hts_ = nullptr;

    std::vector<Emitted> emitted_;
};

}  // namespace

bool cuda_gpu_available(std::string* why) {
    int n = 0;
    const cudaError_t e = cudaGetDeviceCount(&n);
    if (e != cudaSuccess) {
        if (why) *why = std::string("no usable CUDA device: ") + cudaGetErrorString(e);
        return false;
    }
    if (n == 0) {
        if (why) *why = "no CUDA device found";
        return false;
    }
    if (why) why->clear();
    return true;
}

Result<std::unique_ptr<Extractor>> cuda_make_gpu_extractor(const std::vector<Feature>& spec,
                                                           const GpuOptions& opts) {
    std::string why;
    if (!cuda_gpu_available(&why))
        return make_error(ErrorKind::Usage, 0, "", "GPU feature extractor", why,
                          "use the CPU extractor");
    auto x = std::make_unique<GpuExtractor>(spec, opts);
    auto r = x->init();
    if (!r) return r.error();
    return std::unique_ptr<Extractor>(std::move(x));
}

}  // namespace etcpipe::features
