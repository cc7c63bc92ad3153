#include "pkttag/pkttag.hpp"

#include <arpa/inet.h>
#include <bpf/libbpf.h>
#include <linux/bpf.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <variant>

#include "etcpipe/pkttag_model.h"
#include "common/skeleton.hpp"
#include "common/test_run.hpp"
#include "pkttag.skel.h"
#include "pkttag_meta.skel.h"

namespace etcpipe::pkttag {

static_assert(PKTTAG_CLASSES <= PKTTAG_MAX_TAG, "tags must fit the six DSCP bits");

namespace {

uint16_t be16(std::span<const uint8_t> f, size_t off) {
    return static_cast<uint16_t>(f[off] << 8 | f[off + 1]);
}

std::string addr_text(int af, const uint8_t* p) {
    char buf[INET6_ADDRSTRLEN] = {};
    inet_ntop(af, p, buf, sizeof(buf));
    return buf;
}

}  // namespace

Packet parse(std::span<const uint8_t> f) {
    Packet p;
    if (f.size() < 14) return p;
    size_t off = 14;
    uint16_t type = be16(f, 12);
    for (int i = 0; i < 2 && (type == 0x8100 || type == 0x88a8); ++i) {
        if (f.size() < off + 4) return p;
        type = be16(f, off + 2);
        off += 4;
    }
    if (type == 0x8100 || type == 0x88a8) return p;  // more than two tags

    size_t l4 = 0;
    uint32_t l3len = 0, plen = 0;
    if (type == 0x0800) {
        if (f.size() < off + 20) return p;
        const uint8_t vihl = f[off];
        const size_t hdr = size_t{vihl & 15u} * 4;
        if (vihl >> 4 != 4 || hdr < 20 || f.size() < off + hdr) return p;
        const uint32_t tot = be16(f, off + 2);
        if (tot < hdr || (be16(f, off + 6) & 0x1fff)) return p;
        p.family = 4;
        p.proto = f[off + 9];
        p.src = addr_text(AF_INET, &f[off + 12]);
        p.dst = addr_text(AF_INET, &f[off + 16]);
        l3len = tot;
        plen = tot - static_cast<uint32_t>(hdr);
        l4 = off + hdr;
    } else if (type == 0x86dd) {
        if (f.size() < off + 40 || f[off] >> 4 != 6) return p;
        p.family = 6;
        p.proto = f[off + 6];
        p.src = addr_text(AF_INET6, &f[off + 8]);
        p.dst = addr_text(AF_INET6, &f[off + 24]);
        plen = be16(f, off + 4);
        l3len = plen + 40;
        l4 = off + 40;
    } else {
        return p;
    }
    p.l3_offset = off;

    size_t pay = l4;
    uint32_t pl = plen, flags = 0;
    if (p.proto == 6) {
        if (f.size() < l4 + 20) return p;
        const uint32_t hl = (f[l4 + 12] >> 4) * 4u;
        if (hl < 20 || hl > plen || f.size() < l4 + hl) return p;
        p.sport = be16(f, l4);
        p.dport = be16(f, l4 + 2);
        flags = f[l4 + 13];
        pay = l4 + hl;
        pl = plen - hl;
    } else if (p.proto == 17) {
        if (f.size() < l4 + 8 || plen < 8) return p;
        p.sport = be16(f, l4);
        p.dport = be16(f, l4 + 2);
        pay = l4 + 8;
        pl = plen - 8;
    }
    uint8_t b[4] = {0, 0, 0, 0};
    if (pl >= 4 && f.size() >= pay + 4) std::memcpy(b, &f[pay], 4);

    const uint32_t lo = std::min(p.sport, p.dport), hi = std::max(p.sport, p.dport);
    auto& x = p.x;
    const bool tcp = p.proto == 6, udp = p.proto == 17;
    x[PKTTAG_X_TCP] = tcp ? 15 : 0;
    x[PKTTAG_X_UDP] = udp ? 15 : 0;
    x[PKTTAG_X_IPV6] = p.family == 6 ? 15 : 0;
    x[PKTTAG_X_OTHER] = tcp || udp ? 0 : 15;
    x[PKTTAG_X_LO_PORT_N3] = static_cast<uint8_t>(lo >> 12);
    x[PKTTAG_X_LO_PORT_N2] = static_cast<uint8_t>(lo >> 8 & 15);
    x[PKTTAG_X_LO_PORT_N1] = static_cast<uint8_t>(lo >> 4 & 15);
    x[PKTTAG_X_LO_PORT_N0] = static_cast<uint8_t>(lo & 15);
    x[PKTTAG_X_HI_PORT_N3] = static_cast<uint8_t>(hi >> 12);
    x[PKTTAG_X_LEN_128] = static_cast<uint8_t>(std::min<uint32_t>(l3len >> 7, 15));
    x[PKTTAG_X_LEN_8] = static_cast<uint8_t>(std::min<uint32_t>(l3len >> 3, 15));
    x[PKTTAG_X_TCP_FLAGS_LO] = static_cast<uint8_t>(flags & 15);
    x[PKTTAG_X_TCP_FLAGS_HI] = static_cast<uint8_t>(flags >> 4);
    x[PKTTAG_X_PAYLOAD_LEN] = static_cast<uint8_t>(std::min<uint32_t>(pl, 15));
    for (int i = 0; i < 4; ++i) {
        x[PKTTAG_X_B0_HI + 2 * i] = static_cast<uint8_t>(b[i] >> 4);
        x[PKTTAG_X_B0_LO + 2 * i] = static_cast<uint8_t>(b[i] & 15);
    }
    p.ok = true;
    return p;
}

int infer(const Features& x) {
    int32_t h[PKTTAG_HIDDEN];
    for (int j = 0; j < PKTTAG_HIDDEN; ++j) {
        int32_t a = pkttag_b1[j];
        for (int i = 0; i < PKTTAG_FEATURES; ++i) a += pkttag_w1[j][i] * int32_t{x[static_cast<size_t>(i)]};
        h[j] = std::max(0, a);
    }
    int best_k = 0;
    int64_t best = 0;
    for (int k = 0; k < PKTTAG_CLASSES; ++k) {
        int64_t s = pkttag_b2[k];
        for (int j = 0; j < PKTTAG_HIDDEN; ++j) s += int64_t{pkttag_w2[k][j]} * h[j];
        if (k == 0 || s > best) best = s, best_k = k;
    }
    return best_k;
}

uint32_t reference(std::span<const uint8_t> frame) {
    const Packet p = parse(frame);
    return p.ok ? static_cast<uint32_t>(infer(p.x)) + 1 : PKTTAG_NONE;
}

int classes() { return PKTTAG_CLASSES; }

const char* tag_name(uint32_t tag) {
    if (tag == PKTTAG_NONE) return "-";
    return tag <= PKTTAG_CLASSES ? pkttag_class_names[tag - 1] : "?";
}

const char* object_file(Variant v) { return v == Variant::Meta ? "pkttag_meta.bpf.o" : "pkttag.bpf.o"; }
const char* prog_name(Variant v) { return v == Variant::Meta ? PKTTAG_META_PROG_NAME : PKTTAG_PROG_NAME; }

uint32_t dscp_of(std::span<const uint8_t> f, size_t l3, uint8_t family) {
    if (family == 4) return f.size() > l3 + 1 ? f[l3 + 1] >> 2 : 0;
    if (family == 6) return f.size() > l3 + 1 ? ((f[l3] & 15u) << 2) | (f[l3 + 1] >> 6) : 0;
    return 0;
}

// ---- the programs ------------------------------------------------------------

struct Program::Impl {
    std::variant<Skeleton<pkttag_bpf>, Skeleton<pkttag_meta_bpf>> skel;
    Variant variant = Variant::Dscp;
    TestRunBuffers bufs;
};

Program::Program() = default;
Program::~Program() = default;
Program::Program(Program&&) noexcept = default;
Program& Program::operator=(Program&&) noexcept = default;

namespace {
template <class T>
Result<Skeleton<T>> open_load(const char* what) {
    auto s = Skeleton<T>::open(what);
    if (!s) return s.error();
    if (auto r = s->load(what); !r) return r.error();
    return s;
}
}  // namespace

Result<Program> Program::load(Variant v) {
    Program p;
    p.impl_ = std::make_unique<Impl>();
    p.impl_->variant = v;
    if (v == Variant::Meta) {
        auto s = open_load<pkttag_meta_bpf>(object_file(v));
        if (!s) return s.error();
        p.impl_->skel = std::move(*s);
    } else {
        auto s = open_load<pkttag_bpf>(object_file(v));
        if (!s) return s.error();
        p.impl_->skel = std::move(*s);
    }
    return p;
}

int Program::prog_fd() const {
    if (!impl_) return -1;
    if (impl_->variant == Variant::Meta)
        return bpf_program__fd(std::get<1>(impl_->skel)->progs.xdp_pkttag_meta);
    return bpf_program__fd(std::get<0>(impl_->skel)->progs.xdp_pkttag);
}

Variant Program::variant() const { return impl_ ? impl_->variant : Variant::Dscp; }

Result<Program::Run> Program::run(std::span<const uint8_t> frame) {
    if (!impl_) return make_error(ErrorKind::Usage, EINVAL, "pkttag", "run", "not loaded");
    auto r = xdp_test_run(prog_fd(), frame, {}, 1, impl_->bufs);
    if (!r) return r.error();
    Run out;
    out.action = r->action;
    out.meta = r->meta;
    out.frame = r->frame;
    if (impl_->variant == Variant::Meta) {
        if (r->meta.size() >= sizeof(pkttag_meta)) {
            pkttag_meta m;
            std::memcpy(&m, r->meta.data() + r->meta.size() - sizeof(m), sizeof(m));
            if (m.magic == PKTTAG_META_MAGIC) out.tag = m.tag;
        }
    } else {
        const Packet p = parse(frame);
        const bool changed = r->frame.size() != frame.size() ||
                             !std::equal(frame.begin(), frame.end(), r->frame.begin());
        if (p.family && (changed || p.ok)) out.tag = dscp_of(r->frame, p.l3_offset, p.family);
    }
    return out;
}

Result<AttachResult> attach(const std::string& iface, XdpMode mode, const AttachOptions& o) {
    if (o.variant == Variant::Meta && mode == XdpMode::Hw)
        return make_error(ErrorKind::Usage, EINVAL, PKTTAG_META_PROG_NAME, "offload",
                          "the NFP has no XDP metadata (bpf_xdp_adjust_meta)",
                          "offload the DSCP variant (xdp_pkttag)");
    // No maps: the attached program lives on after the skeleton is gone.
    if (o.variant == Variant::Meta) {
        auto s = Skeleton<pkttag_meta_bpf>::open(object_file(o.variant));
        if (!s) return s.error();
        return attach_object(iface, mode, (*s)->obj, PKTTAG_META_PROG_NAME, {});
    }
    auto s = Skeleton<pkttag_bpf>::open(object_file(o.variant));
    if (!s) return s.error();
    return attach_object(iface, mode, (*s)->obj, PKTTAG_PROG_NAME, {});
}

ProgramKind program_kind() {
    ProgramKind k;
    k.application = "pkttag";
    k.prog_names = {PKTTAG_PROG_NAME, PKTTAG_META_PROG_NAME};
    k.describe = [](int, bool, std::FILE* out) {
        std::fprintf(out, "    per-packet tagger: %d classes, stateless\n", classes());
    };
    return k;
}

}  // namespace etcpipe::pkttag
