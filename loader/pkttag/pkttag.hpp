// The per-packet traffic tagger (bpf/pkttag.bpf.c, bpf/pkttag_meta.bpf.c)
// from user space: the packet parse and features, the integer reference
// network, and the XDP programs driven through BPF_PROG_TEST_RUN or
// attached to an interface. ABI: include/etcpipe/pkttag.h; parameters and
// class names: include/etcpipe/pkttag_model.h (scripts/train_pkttag.py).
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "etcpipe/pkttag.h"
#include "common/result.hpp"
#include "common/xdp_attach.hpp"

namespace etcpipe::pkttag {

using Features = std::array<uint8_t, PKTTAG_FEATURES>;

// What the reference read from one Ethernet frame.
struct Packet {
    bool ok = false;          // false: no tag (see include/etcpipe/pkttag.h)
    uint8_t family = 0;       // 4 or 6
    uint8_t proto = 0;        // IP protocol / IPv6 next header
    size_t l3_offset = 0;     // of the IP header in the frame
    std::string src, dst;     // addresses as text
    uint16_t sport = 0, dport = 0;
    Features x{};
};

// Parses the frame (Ethernet, up to two VLAN tags, IPv4/IPv6, TCP/UDP)
// and computes the network's features, written plainly (independent of the
// BPF code, which must agree with it).
[[nodiscard]] Packet parse(std::span<const uint8_t> frame);

// The integer network on x: the class index 0..classes()-1.
[[nodiscard]] int infer(const Features& x);

// The tag the XDP programs must give the frame: 0 or class + 1.
[[nodiscard]] uint32_t reference(std::span<const uint8_t> frame);

[[nodiscard]] int classes();
// The class name of a tag ("-" for 0, "?" past the classes).
[[nodiscard]] const char* tag_name(uint32_t tag);

enum class Variant {
    Dscp,  // xdp_pkttag (bpf/pkttag.bpf.c): tag into the DSCP; offloadable
    Meta,  // xdp_pkttag_meta (bpf/pkttag_meta.bpf.c): tag into the XDP metadata
};
[[nodiscard]] const char* object_file(Variant v);
[[nodiscard]] const char* prog_name(Variant v);

class Program {
  public:
    Program();
    ~Program();
    Program(Program&&) noexcept;
    Program& operator=(Program&&) noexcept;

    [[nodiscard]] static Result<Program> load(Variant v);
    [[nodiscard]] int prog_fd() const;
    [[nodiscard]] Variant variant() const;

    struct Run {
        int action = 0;
        // Meta: the tag in the metadata (0: none there). Dscp: the DSCP of
        // the frame that came back when the program changed the frame or
        // parse() calls it taggable, else 0 (the tests compare whole
        // frames instead).
        uint32_t tag = 0;
        std::span<const uint8_t> meta, frame;  // valid until the next run()
    };
    [[nodiscard]] Result<Run> run(std::span<const uint8_t> frame);

  private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

// The DSCP of an IPv4/IPv6 frame (the IP header at l3_offset).
[[nodiscard]] uint32_t dscp_of(std::span<const uint8_t> frame, size_t l3_offset, uint8_t family);

struct AttachOptions {
    Variant variant = Variant::Dscp;
};

// Attaches xdp_pkttag (or xdp_pkttag_meta) to iface: native/skb through
// libxdp, hw as an NFP offload (Dscp only: the metadata variant is not
// offloadable). No maps, nothing to configure.
[[nodiscard]] Result<AttachResult> attach(const std::string& iface, XdpMode mode,
                                          const AttachOptions& opts = {});

// How status and unload know both programs.
[[nodiscard]] ProgramKind program_kind();

}  // namespace etcpipe::pkttag
