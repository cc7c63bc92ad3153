// The in-NIC digit CNN (bpf/nicnn.bpf.c) from user space: the integer C++
// reference, the request on the wire, the real digit images, and the XDP
// program driven through BPF_PROG_TEST_RUN. Wire format: include/etcpipe/nicnn.h;
// parameters: include/etcpipe/nicnn_model.h (scripts/train_nicnn.py).
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "etcpipe/nicnn.h"
#include "common/result.hpp"
#include "common/xdp_attach.hpp"

namespace etcpipe::nicnn {

using Pixels = std::array<uint8_t, NICNN_PIXELS>;

struct Image {
    Pixels px{};
    int label = -1;  // -1: not known
};

// The integer network written plainly (a 5x5 convolution over the 4x4
// outputs, max-pool, ReLU, fully connected, base-2 softmax exponents, argmax): what
// the XDP program must compute, bit for bit, for any 64 bytes (only their
// low 4 bits count, as in the program).
[[nodiscard]] nicnn_result reference(const Pixels& px);

// A pixel of sklearn's digits (0..16) as the NIC takes it (0..15).
[[nodiscard]] uint8_t pixel_of(double v);

// The UDP payload of a request for px (result area zeroed).
[[nodiscard]] std::vector<uint8_t> build_request(const Pixels& px, bool reply);

// What the XDP program does to a UDP payload, in user space: when it is a
// request (long enough, magic, tag NICNN_TAG_REQUEST), writes reference()
// of its pixels into the result and tag NICNN_TAG_CLASSIFIED, and returns
// true; anything else is left alone (false).
[[nodiscard]] bool answer_in_place(std::span<uint8_t> payload);

// ---- data --------------------------------------------------------------------

// Where Debian's python3-sklearn keeps the 1,797 8x8 digits (digits.csv.gz),
// or "" when it is not installed.
[[nodiscard]] std::string default_digits_path();
// The digits, in the file's order, pixels through pixel_of. Errors name the
// file and line.
[[nodiscard]] Result<std::vector<Image>> load_digits(const std::string& path);
// scripts/train_nicnn.py's fixed split: images [0, kTrainImages) train, the
// rest test.
inline constexpr size_t kTrainImages = 1347;

// Images from a NumPy file: shape (N, 64) or (N, 8, 8), dtype u1, i8 or f8
// (values through pixel_of); labels (optional) from an (N,) integer file.
[[nodiscard]] Result<std::vector<Image>> load_npy_images(const std::string& path,
                                                         const std::string& labels_path = {});

// ---- the XDP program ---------------------------------------------------------

class Program {
  public:
    Program();
    ~Program();
    Program(Program&&) noexcept;
    Program& operator=(Program&&) noexcept;

    [[nodiscard]] static Result<Program> load();
    [[nodiscard]] int prog_fd() const;

    struct Verdict {
        int action = 0;          // XDP_PASS / XDP_TX
        nicnn_result result{};   // as written into the packet
        bool checksums_ok = false;  // IPv4 and UDP checksums of the frame that came back
        uint32_t duration_ns = 0;
    };
    // One request through the program (BPF_PROG_TEST_RUN).
    [[nodiscard]] Result<Verdict> classify(const Pixels& px, bool reply = false);

  private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

// Attaches xdp_nicnn to an interface (native/skb through libxdp, hw as a
// device offload). Stateless: nothing to configure, requests choose
// pass or reply themselves (NICNN_F_REPLY).
[[nodiscard]] Result<AttachResult> attach(const std::string& iface, XdpMode mode);

// How status and unload know the program.
[[nodiscard]] ProgramKind program_kind();

}  // namespace etcpipe::nicnn
