// ANOVA state split from user space: the reference rule, the fixed-point
// conversion, series files, and the XDP program (bpf/anova.bpf.c or
// bpf/anova_f64.bpf.c, by encoding) through BPF_PROG_TEST_RUN.
#include "anova/anova.hpp"

#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/bpf.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstring>
#include <fstream>
#include <limits>

#include "anova/anova_object.hpp"
#include "common/test_run.hpp"

namespace etcpipe::anova {

static_assert(sizeof(anova_config) <= 56, "NFP map values are at most 56 bytes");
static_assert(sizeof(anova_msg_u32) == 16 + 4 * ANOVA_SAMPLES);
static_assert(sizeof(anova_msg_f64) == 16 + 8 * ANOVA_SAMPLES);

Params osh_profile() { return Params{}; }

// The seed report's variant (ANOVA_v2.c in the seed repository): 10
// fractional bits, ε = 0x66 (0.1 truncated) and ε² = 0x66·0x66.
Params report_profile() { return Params{10, 102, 102 * 102}; }

Result<void> check_frac_bits(uint32_t frac_bits) {
    if (frac_bits >= kMinFracBits && frac_bits <= kMaxFracBits) return {};
    return Error{ErrorKind::Usage, 0, "--frac-bits", "check ANOVA parameters",
                 "must be " + std::to_string(kMinFracBits) + ".." + std::to_string(kMaxFracBits) +
                     ", not " + std::to_string(frac_bits),
                 {}};
}

Result<void> check_params(const Params& p) {
    if (auto r = check_frac_bits(p.frac_bits); !r) return r;
    if (p.eps > 0xffffffffull || p.eps2 > 0xffffffffull)
        return Error{ErrorKind::Usage, 0, "--eps/--eps2", "check ANOVA parameters",
                     "must fit in 32 bits (NFP multiplies 32-bit operands)", {}};
    return {};
}

uint32_t decide_u32(const std::array<uint32_t, ANOVA_SAMPLES>& x, const Params& p) {
    // Unsigned 64-bit arithmetic that wraps, exactly as the XDP program.
    uint64_t s1 = 0, s2 = 0, lhs = 0;
    for (int i = 0; i < ANOVA_HALF; ++i) {
        s1 += x[i];
        s2 += uint64_t{x[i]} * x[i];
    }
    const uint64_t mean = s1 >> 3;
    const uint64_t var = (s2 >> 3) - mean * mean;
    for (int i = ANOVA_HALF; i < ANOVA_SAMPLES; ++i) {
        const uint64_t d = x[i] > mean ? x[i] - mean : mean - x[i];
        if (d >= p.eps) lhs += p.eps2;  // tot·ε², as the program sums it
    }
    return lhs > (var << 3) ? ANOVA_TAG_SPLIT : ANOVA_TAG_NO_SPLIT;
}

std::optional<uint32_t> to_fixed(double v, uint32_t frac_bits) {
    if (frac_bits > 32 || std::isnan(v) || std::isinf(v)) return std::nullopt;
    if (std::signbit(v)) {
        if (v == 0) return 0u;  // −0.0
        return std::nullopt;
    }
    if (v >= std::ldexp(1.0, 32 - static_cast<int>(frac_bits))) return std::nullopt;
    // Scaling by a power of two is exact (no overflow below 2^32), so the
    // cast truncates the exact product toward zero.
    return static_cast<uint32_t>(std::ldexp(v, static_cast<int>(frac_bits)));
}

uint32_t decide_f64(const std::array<double, ANOVA_SAMPLES>& x, const Params& p) {
    std::array<uint32_t, ANOVA_SAMPLES> fx{};
    for (int i = 0; i < ANOVA_SAMPLES; ++i) {
        auto v = to_fixed(x[i], p.frac_bits);
        if (!v) return ANOVA_TAG_INVALID;
        fx[i] = *v;
    }
    return decide_u32(fx, p);
}

// ---- the XDP program ----------------------------------------------------------

struct Program::Impl {
    Object obj;  // the object for opts.encoding
    ProgramOptions opts;
    TestRunBuffers bufs;
    std::vector<uint8_t> frame;  // request template, reused by decide()
};

Program::Program() = default;
Program::~Program() = default;
Program::Program(Program&&) noexcept = default;
Program& Program::operator=(Program&&) noexcept = default;

anova_config make_config(const ProgramOptions& o) {
    anova_config c{};  // padding zeroed
    c.eps = o.params.eps;
    c.eps2 = o.params.eps2;
    c.port = o.port;
    c.reply = static_cast<__u8>(o.reply);
    c.encoding = static_cast<__u8>(o.encoding);
    c.frac_bits = static_cast<__u8>(o.params.frac_bits);
    return c;
}

Result<Program> Program::load(const ProgramOptions& opts) {
    const char* what = object_file(opts.encoding);
    // The program masks ε and ε² to 32 bits for the NFP and passes every
    // packet when they are larger; refuse such a configuration here.
    if (auto r = check_params(opts.params); !r) return r.error();
    if (opts.port == 0)
        return Error{ErrorKind::Usage, EINVAL, what, "configure ANOVA program", "port 0", {}};

    auto obj = Object::open(opts.encoding);
    if (!obj) return obj.error();
    if (auto r = obj->load(); !r) return r.error();

    // Lookup-only in BPF (NFP firmware has no datapath map writes): the
    // configuration is written once, here.
    const anova_config cfg = make_config(opts);
    uint32_t key = 0;
    if (bpf_map_update_elem(bpf_map__fd(obj->config_map()), &key, &cfg, BPF_ANY))
        return make_error(ErrorKind::Bpf, errno, ANOVA_MAP_CONFIG, "write configuration");

    Program prog;
    prog.impl_ = std::make_unique<Impl>();
    prog.impl_->obj = std::move(*obj);
    prog.impl_->opts = opts;
    return prog;
}

int Program::prog_fd() const {
    return impl_ ? bpf_program__fd(impl_->obj.prog()) : -1;
}

const ProgramOptions& Program::options() const {
    static const ProgramOptions none{};
    return impl_ ? impl_->opts : none;
}

Result<Program::Run> Program::run(std::span<const uint8_t> frame) {
    if (!impl_) return Error{ErrorKind::Usage, EINVAL, "anova", "run", "program not loaded", {}};
    auto r = xdp_test_run(prog_fd(), frame, {}, 1, impl_->bufs);
    if (!r) {
        Error e = r.error();
        e.subject = ANOVA_PROG_NAME;
        return e;
    }
    // The program never moves data or data_end, so the output frame has the
    // input's length.
    Run out;
    out.action = r->action;
    out.frame.assign(impl_->bufs.out.begin(),
                     impl_->bufs.out.begin() + static_cast<std::ptrdiff_t>(frame.size()));
    return out;
}

namespace {

uint32_t csum_add(uint32_t sum, const uint8_t* p, size_t n) {
    for (size_t i = 0; i + 1 < n; i += 2) sum += static_cast<uint32_t>(p[i] << 8 | p[i + 1]);
    if (n & 1) sum += static_cast<uint32_t>(p[n - 1] << 8);
    return sum;
}

uint16_t csum_fold(uint32_t sum) {
    while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
    return static_cast<uint16_t>(~sum & 0xffff);
}

void put16(uint8_t* p, uint16_t v) {
    p[0] = static_cast<uint8_t>(v >> 8);
    p[1] = static_cast<uint8_t>(v & 0xff);
}

constexpr size_t kEth = 14, kIp = 20, kUdp = 8;

// Ethernet/IPv4/UDP from 192.0.2.1:40000 to 192.0.2.2:port (RFC 5737
// documentation addresses) around `payload`, checksums valid.
std::vector<uint8_t> request_frame(uint16_t port, std::span<const uint8_t> payload) {
    std::vector<uint8_t> f(kEth + kIp + kUdp + payload.size(), 0);
    const uint8_t dst[6] = {0x02, 0, 0, 0, 0, 0x02}, src[6] = {0x02, 0, 0, 0, 0, 0x01};
    std::memcpy(&f[0], dst, 6);
    std::memcpy(&f[6], src, 6);
    put16(&f[12], 0x0800);
    uint8_t* ip = &f[kEth];
    ip[0] = 0x45;
    put16(ip + 2, static_cast<uint16_t>(kIp + kUdp + payload.size()));
    ip[8] = 64;
    ip[9] = IPPROTO_UDP;
    const uint8_t saddr[4] = {192, 0, 2, 1}, daddr[4] = {192, 0, 2, 2};
    std::memcpy(ip + 12, saddr, 4);
    std::memcpy(ip + 16, daddr, 4);
    put16(ip + 10, csum_fold(csum_add(0, ip, kIp)));
    uint8_t* udp = ip + kIp;
    const uint16_t udp_len = static_cast<uint16_t>(kUdp + payload.size());
    put16(udp, 40000);
    put16(udp + 2, port);
    put16(udp + 4, udp_len);
    std::memcpy(udp + kUdp, payload.data(), payload.size());
    uint32_t sum = csum_add(0, ip + 12, 8) + IPPROTO_UDP + udp_len;
    uint16_t c = csum_fold(csum_add(sum, udp, udp_len));
    put16(udp + 6, c ? c : 0xffff);
    return f;
}

template <class Msg>
Result<uint32_t> decide_msg(Program& prog, const Msg& msg) {
    const auto* bytes = reinterpret_cast<const uint8_t*>(&msg);
    auto frame = request_frame(prog.options().port, {bytes, sizeof(msg)});
    auto r = prog.run(frame);
    if (!r) return r.error();
    if (r->action != XDP_PASS && r->action != XDP_TX)
        return Error{ErrorKind::Bpf, 0, ANOVA_PROG_NAME, "decide",
                     "unexpected XDP action " + std::to_string(r->action), {}};
    uint64_t tag = 0;
    std::memcpy(&tag, r->frame.data() + kEth + kIp + kUdp + offsetof(anova_hdr, tag), sizeof(tag));
    if (tag == ANOVA_TAG_DECIDE || tag > ANOVA_TAG_INVALID)
        return Error{ErrorKind::Bpf, 0, ANOVA_PROG_NAME, "decide",
                     "the program left tag " + std::to_string(tag) + " (request not matched?)",
                     {}};
    return static_cast<uint32_t>(tag);
}

}  // namespace

Result<uint32_t> Program::decide(const std::array<uint32_t, ANOVA_SAMPLES>& x) {
    if (options().encoding != ANOVA_ENC_U32)
        return Error{ErrorKind::Usage, EINVAL, ANOVA_PROG_NAME, "decide",
                     "u32 samples sent to a program configured for doubles", {}};
    anova_msg_u32 msg;
    msg.hdr.magic = ANOVA_MAGIC;  // little-endian hosts only, as the wire format
    msg.hdr.tag = ANOVA_TAG_DECIDE;
    std::memcpy(msg.x, x.data(), sizeof(msg.x));
    return decide_msg(*this, msg);
}

Result<uint32_t> Program::decide(const std::array<double, ANOVA_SAMPLES>& x) {
    if (options().encoding != ANOVA_ENC_F64)
        return Error{ErrorKind::Usage, EINVAL, ANOVA_PROG_NAME, "decide",
                     "doubles sent to a program configured for u32 fixed point", {}};
    anova_msg_f64 msg;
    msg.hdr.magic = ANOVA_MAGIC;
    msg.hdr.tag = ANOVA_TAG_DECIDE;
    std::memcpy(msg.x, x.data(), sizeof(msg.x));
    return decide_msg(*this, msg);
}

// Windows whose u32 samples cannot be represented never reach the program
// (there is nothing to send): they count as invalid, as the double
// encoding's ANOVA_TAG_INVALID answers do.
Result<SplitResult> split_series(Program& prog, std::span<const double> series) {
    SplitResult res;
    if (series.size() < ANOVA_SAMPLES) return res;
    res.windows = series.size() - (ANOVA_SAMPLES - 1);
    const bool f64 = prog.options().encoding == ANOVA_ENC_F64;
    const uint32_t frac = prog.options().params.frac_bits;
    for (size_t i = 0; i < res.windows; ++i) {
        Result<uint32_t> tag = uint32_t{ANOVA_TAG_INVALID};
        if (f64) {
            std::array<double, ANOVA_SAMPLES> w{};
            std::copy_n(series.begin() + static_cast<std::ptrdiff_t>(i), ANOVA_SAMPLES, w.begin());
            tag = prog.decide(w);
        } else {
            std::array<uint32_t, ANOVA_SAMPLES> w{};
            bool ok = true;
            for (int k = 0; k < ANOVA_SAMPLES && ok; ++k) {
                auto v = to_fixed(series[i + static_cast<size_t>(k)], frac);
                ok = v.has_value();
                w[static_cast<size_t>(k)] = v.value_or(0);
            }
            if (ok) tag = prog.decide(w);
        }
        if (!tag) return tag.error();
        if (*tag == ANOVA_TAG_SPLIT)
            res.splits.push_back(i);
        else if (*tag == ANOVA_TAG_INVALID)
            ++res.invalid;
    }
    return res;
}

}  // namespace etcpipe::anova
