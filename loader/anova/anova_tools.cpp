// ANOVA tools: split output (text, SVG), the user-space server and client,
// network namespaces, and the XDP_TX vs user-space latency benchmark.
#include "anova/anova_tools.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <net/if.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <x86intrin.h>

#include <bpf/libbpf.h>
#include <linux/if_link.h>

#include <algorithm>
#include <chrono>
#include <cinttypes>
#include <cstdarg>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <random>
#include <thread>

#include "common/fd.hpp"
#include "common/log.hpp"
#include "flowmgr/flowmgr.hpp"
#include "common/skeleton.hpp"
#include "common/xdp_attach.hpp"
#include "xdp_pass.skel.h"

extern char** environ;

namespace etcpipe::anova {

namespace {

std::string fmt(const char* f, ...) __attribute__((format(printf, 1, 2)));
std::string fmt(const char* f, ...) {
    char buf[512];
    va_list ap;
    va_start(ap, f);
    int n = std::vsnprintf(buf, sizeof buf, f, ap);
    va_end(ap);
    if (n < 0) return {};
    if (static_cast<size_t>(n) < sizeof buf) return std::string(buf, static_cast<size_t>(n));
    std::string s(static_cast<size_t>(n) + 1, '\0');
    va_start(ap, f);
    std::vsnprintf(s.data(), s.size(), f, ap);
    va_end(ap);
    s.resize(static_cast<size_t>(n));
    return s;
}

// A "nice" tick step (1, 2 or 5 × 10^k) giving about `target` ticks over span.
double nice_step(double span, int target) {
    if (!(span > 0)) return 1;
    double raw = span / target;
    double mag = std::pow(10.0, std::floor(std::log10(raw)));
    double r = raw / mag;
    double nice = r < 1.5 ? 1 : r < 3.5 ? 2 : r < 7.5 ? 5 : 10;
    return nice * mag;
}

// Tick label: no "-0", no 0.30000000000000004.
std::string tick_label(double v, double step) {
    if (std::fabs(v) < step * 1e-9) v = 0;
    int decimals = step >= 1 ? 0 : static_cast<int>(std::ceil(-std::log10(step) - 1e-9));
    return fmt("%.*f", std::clamp(decimals, 0, 9), v);
}

void put_le(uint8_t* p, uint64_t v, int bytes) {
    for (int i = 0; i < bytes; ++i) p[i] = static_cast<uint8_t>(v >> (8 * i));
}
uint64_t get_le(const uint8_t* p, int bytes) {
    uint64_t v = 0;
    for (int i = 0; i < bytes; ++i) v |= uint64_t{p[i]} << (8 * i);
    return v;
}

}  // namespace

// ---- output of `split` -----------------------------------------------------

std::string format_splits(std::span<const double> series, const SplitResult& r) {
    std::string out;
    for (size_t i : r.splits) {
        size_t b = i + ANOVA_HALF;
        if (b < series.size())
            out += fmt("window %zu  boundary %zu  value %g\n", i, b, series[b]);
        else
            out += fmt("window %zu  boundary %zu\n", i, b);
    }
    out += fmt("splits: %zu of %zu windows", r.splits.size(), r.windows);
    if (r.invalid) out += fmt(", %zu invalid", r.invalid);
    out += "\n";
    return out;
}

std::string xml_escape(const std::string& text) {
    std::string out;
    out.reserve(text.size());
    for (char c : text) {
        switch (c) {
        case '&': out += "&amp;"; break;
        case '<': out += "&lt;"; break;
        case '>': out += "&gt;"; break;
        case '"': out += "&quot;"; break;
        case '\'': out += "&apos;"; break;
        default:
            // XML 1.0 forbids most control characters, even escaped.
            if (static_cast<unsigned char>(c) < 0x20 && c != '\t' && c != '\n' && c != '\r')
                out += ' ';
            else
                out += c;
        }
    }
    return out;
}

std::string render_split_svg(std::span<const double> series, const SplitResult& r,
                             const std::string& title) {
    const double W = 1200, H = 500;
    const double ml = 80, mr = 30, mt = 50, mb = 70;  // margins
    const double pw = W - ml - mr, ph = H - mt - mb;  // plot area

    // Data ranges (finite values only), padded a little.
    double ymin = INFINITY, ymax = -INFINITY;
    for (double v : series)
        if (std::isfinite(v)) ymin = std::min(ymin, v), ymax = std::max(ymax, v);
    if (!(ymin <= ymax)) ymin = 0, ymax = 1;
    if (ymax - ymin < 1e-12) ymin -= 0.5, ymax += 0.5;
    const double pad = (ymax - ymin) * 0.05;
    ymin -= pad, ymax += pad;
    const double xmax = series.size() > 1 ? static_cast<double>(series.size() - 1) : 1.0;

    auto X = [&](double i) { return ml + i / xmax * pw; };
    auto Y = [&](double v) { return mt + (ymax - v) / (ymax - ymin) * ph; };

    std::string s;
    s += fmt("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
             "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" height=\"%.0f\" "
             "viewBox=\"0 0 %.0f %.0f\" font-family=\"sans-serif\" font-size=\"12\">\n",
             W, H, W, H);
    s += "<title>" + xml_escape(title) + "</title>\n";
    s += fmt("<rect x=\"0\" y=\"0\" width=\"%.0f\" height=\"%.0f\" fill=\"white\"/>\n", W, H);
    s += fmt("<text x=\"%.1f\" y=\"28\" text-anchor=\"middle\" font-size=\"16\" "
             "font-weight=\"bold\">%s</text>\n",
             W / 2, xml_escape(title).c_str());

    // Grid, ticks and tick labels.
    s += "<g class=\"axes\" stroke=\"#444\" stroke-width=\"1\">\n";
    const double xstep = nice_step(xmax, 12);
    for (double t = 0; t <= xmax + xstep * 1e-9; t += xstep) {
        s += fmt("<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#eee\"/>\n",
                 X(t), mt, X(t), mt + ph);
        s += fmt("<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\"/>\n", X(t), mt + ph,
                 X(t), mt + ph + 5);
    }
    const double ystep = nice_step(ymax - ymin, 8);
    for (double t = std::ceil(ymin / ystep) * ystep; t <= ymax; t += ystep) {
        s += fmt("<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#eee\"/>\n", ml,
                 Y(t), ml + pw, Y(t));
        s += fmt("<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\"/>\n", ml - 5, Y(t), ml,
                 Y(t));
    }
    // Axis lines.
    s += fmt("<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\"/>\n", ml, mt + ph, ml + pw,
             mt + ph);
    s += fmt("<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\"/>\n", ml, mt, ml, mt + ph);
    s += "</g>\n<g class=\"tick-labels\" fill=\"#222\">\n";
    for (double t = 0; t <= xmax + xstep * 1e-9; t += xstep)
        s += fmt("<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%s</text>\n", X(t),
                 mt + ph + 20, tick_label(t, xstep).c_str());
    for (double t = std::ceil(ymin / ystep) * ystep; t <= ymax; t += ystep)
        s += fmt("<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">%s</text>\n", ml - 8, Y(t) + 4,
                 tick_label(t, ystep).c_str());
    s += "</g>\n";
    s += fmt("<text class=\"axis-label\" x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">"
             "sample index</text>\n",
             ml + pw / 2, H - 20);
    s += fmt("<text class=\"axis-label\" x=\"20\" y=\"%.1f\" text-anchor=\"middle\" "
             "transform=\"rotate(-90 20 %.1f)\">value</text>\n",
             mt + ph / 2, mt + ph / 2);

    // Splits under the series, so the series stays readable.
    // Dense splits overlap: lighter lines keep the series visible.
    const double opacity = r.splits.size() > 200 ? 0.25 : 0.45;
    s += fmt("<g class=\"splits\" stroke=\"#d62728\" stroke-width=\"0.8\" "
             "stroke-opacity=\"%.2f\">\n",
             opacity);
    for (size_t i : r.splits) {
        double x = X(static_cast<double>(i + ANOVA_HALF));
        s += fmt("<line class=\"split\" x1=\"%.2f\" y1=\"%.1f\" x2=\"%.2f\" y2=\"%.1f\"/>\n", x,
                 mt, x, mt + ph);
    }
    s += "</g>\n";

    // The series.
    s += "<polyline class=\"series\" fill=\"none\" stroke=\"#1f77b4\" stroke-width=\"1\" "
         "stroke-linejoin=\"round\" points=\"";
    for (size_t i = 0; i < series.size(); ++i) {
        if (!std::isfinite(series[i])) continue;
        s += fmt("%.2f,%.2f ", X(static_cast<double>(i)), Y(series[i]));
    }
    s += "\"/>\n";

    // Legend (top right, inside the plot).
    const double lx = ml + pw - 230, ly = mt + 10;
    s += "<g class=\"legend\">\n";
    s += fmt("<rect x=\"%.1f\" y=\"%.1f\" width=\"220\" height=\"46\" fill=\"white\" "
             "fill-opacity=\"0.85\" stroke=\"#999\" stroke-width=\"0.5\"/>\n",
             lx, ly);
    s += fmt("<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#1f77b4\" "
             "stroke-width=\"1.5\"/>\n",
             lx + 10, ly + 15, lx + 40, ly + 15);
    s += fmt("<text x=\"%.1f\" y=\"%.1f\">series</text>\n", lx + 48, ly + 19);
    s += fmt("<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#d62728\" "
             "stroke-width=\"1.5\"/>\n",
             lx + 10, ly + 33, lx + 40, ly + 33);
    s += fmt("<text x=\"%.1f\" y=\"%.1f\">split (%zu of %zu windows)</text>\n", lx + 48, ly + 37,
             r.splits.size(), r.windows);
    s += "</g>\n</svg>\n";
    return s;
}

Result<void> write_split_svg(const std::string& path, std::span<const double> series,
                             const SplitResult& r, const std::string& title) {
    std::string doc = render_split_svg(series, r, title);
    std::ofstream f(path, std::ios::binary | std::ios::trunc);
    if (!f) return make_error(ErrorKind::Io, errno, path, "create SVG");
    f.write(doc.data(), static_cast<std::streamsize>(doc.size()));
    f.close();
    if (!f) return make_error(ErrorKind::Io, errno, path, "write SVG");
    return {};
}

// ---- wire helpers ----------------------------------------------------------

size_t message_size(anova_encoding enc) {
    return enc == ANOVA_ENC_F64 ? sizeof(anova_msg_f64) : sizeof(anova_msg_u32);
}

std::optional<std::vector<uint8_t>> encode_request(std::span<const double, ANOVA_SAMPLES> window,
                                                   anova_encoding enc, uint32_t frac_bits) {
    std::vector<uint8_t> m(message_size(enc));
    put_le(m.data(), ANOVA_MAGIC, 8);
    put_le(m.data() + 8, ANOVA_TAG_DECIDE, 8);
    for (size_t i = 0; i < ANOVA_SAMPLES; ++i) {
        if (enc == ANOVA_ENC_F64) {
            uint64_t bits;
            std::memcpy(&bits, &window[i], 8);
            put_le(m.data() + 16 + 8 * i, bits, 8);
        } else {
            auto v = to_fixed(window[i], frac_bits);
            if (!v) return std::nullopt;
            put_le(m.data() + 16 + 4 * i, *v, 4);
        }
    }
    return m;
}

const char* ignored_name(Ignored why) {
    switch (why) {
    case Ignored::None: return "none";
    case Ignored::Short: return "short";
    case Ignored::Magic: return "bad magic";
    case Ignored::Tag: return "tag not 0";
    }
    return "?";
}

Ignored answer_in_place(std::span<uint8_t> d, anova_encoding enc, const Params& params) {
    if (d.size() < sizeof(anova_hdr)) return Ignored::Short;
    if (get_le(d.data(), 8) != ANOVA_MAGIC) return Ignored::Magic;
    if (get_le(d.data() + 8, 8) != ANOVA_TAG_DECIDE) return Ignored::Tag;
    if (d.size() < message_size(enc)) return Ignored::Short;
    uint32_t tag;
    if (enc == ANOVA_ENC_F64) {
        std::array<double, ANOVA_SAMPLES> x;
        for (size_t i = 0; i < ANOVA_SAMPLES; ++i) {
            uint64_t bits = get_le(d.data() + 16 + 8 * i, 8);
            std::memcpy(&x[i], &bits, 8);
        }
        tag = decide_f64(x, params);
    } else {
        std::array<uint32_t, ANOVA_SAMPLES> x;
        for (size_t i = 0; i < ANOVA_SAMPLES; ++i)
            x[i] = static_cast<uint32_t>(get_le(d.data() + 16 + 4 * i, 4));
        tag = decide_u32(x, params);
    }
    put_le(d.data() + 8, tag, 8);
    return Ignored::None;
}

std::vector<uint8_t> build_udp_frame(std::span<const uint8_t> payload, uint16_t dst_port,
                                     uint16_t src_port) {
    const size_t ip_len = 20 + 8 + payload.size();
    std::vector<uint8_t> f(14 + ip_len, 0);
    const uint8_t dmac[6] = {0x02, 0x78, 0, 0, 0, 0x02}, smac[6] = {0x02, 0x78, 0, 0, 0, 0x01};
    std::memcpy(f.data(), dmac, 6);
    std::memcpy(f.data() + 6, smac, 6);
    f[12] = 0x08, f[13] = 0x00;
    uint8_t* ip = f.data() + 14;
    ip[0] = 0x45;
    ip[2] = static_cast<uint8_t>(ip_len >> 8), ip[3] = static_cast<uint8_t>(ip_len);
    ip[6] = 0x40;  // DF
    ip[8] = 64, ip[9] = IPPROTO_UDP;
    const uint8_t src[4] = {10, 78, 0, 1}, dst[4] = {10, 78, 0, 2};
    std::memcpy(ip + 12, src, 4);
    std::memcpy(ip + 16, dst, 4);
    uint32_t sum = 0;
    for (int i = 0; i < 20; i += 2) sum += uint32_t{ip[i]} << 8 | ip[i + 1];
    while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
    uint16_t csum = static_cast<uint16_t>(~sum);
    ip[10] = static_cast<uint8_t>(csum >> 8), ip[11] = static_cast<uint8_t>(csum);
    uint8_t* udp = ip + 20;
    const size_t udp_len = 8 + payload.size();
    udp[0] = static_cast<uint8_t>(src_port >> 8), udp[1] = static_cast<uint8_t>(src_port);
    udp[2] = static_cast<uint8_t>(dst_port >> 8), udp[3] = static_cast<uint8_t>(dst_port);
    udp[4] = static_cast<uint8_t>(udp_len >> 8), udp[5] = static_cast<uint8_t>(udp_len);
    if (!payload.empty()) std::memcpy(udp + 8, payload.data(), payload.size());
    // UDP checksum over the pseudo-header and the datagram.
    sum = 0;
    for (int i = 12; i < 20; i += 2) sum += uint32_t{ip[i]} << 8 | ip[i + 1];
    sum += IPPROTO_UDP + static_cast<uint32_t>(udp_len);
    for (size_t i = 0; i < udp_len; i += 2)
        sum += uint32_t{udp[i]} << 8 | (i + 1 < udp_len ? udp[i + 1] : 0u);
    while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
    csum = static_cast<uint16_t>(~sum);
    if (csum == 0) csum = 0xffff;
    udp[6] = static_cast<uint8_t>(csum >> 8), udp[7] = static_cast<uint8_t>(csum);
    return f;
}

// ---- sockets -----------------------------------------------------------------

namespace {

struct SockAddr {
    sockaddr_storage ss{};
    socklen_t len = 0;
    int family = AF_INET;
};

Result<SockAddr> resolve(const std::string& host, uint16_t port, bool passive) {
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_DGRAM;
    hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV | (passive ? AI_PASSIVE : 0);
    addrinfo* res = nullptr;
    const std::string service = std::to_string(port);
    int rc = getaddrinfo(host.c_str(), service.c_str(), &hints, &res);
    if (rc != 0 || !res)
        return Error{ErrorKind::Usage, 0, host, "parse address", gai_strerror(rc),
                     "give an IPv4 or IPv6 literal such as 127.0.0.1 or ::1"};
    SockAddr a;
    std::memcpy(&a.ss, res->ai_addr, res->ai_addrlen);
    a.len = res->ai_addrlen;
    a.family = res->ai_family;
    freeaddrinfo(res);
    return a;
}

std::string endpoint(const std::string& host, uint16_t port) {
    return host.find(':') != std::string::npos ? "[" + host + "]:" + std::to_string(port)
                                               : host + ":" + std::to_string(port);
}

using Clock = std::chrono::steady_clock;

int ms_until(Clock::time_point t) {
    auto d = std::chrono::duration_cast<std::chrono::microseconds>(t - Clock::now()).count();
    if (d <= 0) return 0;
    return static_cast<int>(std::min<int64_t>((d + 999) / 1000, 1000000));
}

// Does `reply` answer `req`: same length, magic and samples, a verdict tag.
bool is_reply_to(std::span<const uint8_t> reply, std::span<const uint8_t> req, uint32_t& tag) {
    if (reply.size() != req.size() || reply.size() < sizeof(anova_hdr)) return false;
    if (get_le(reply.data(), 8) != ANOVA_MAGIC) return false;
    uint64_t t = get_le(reply.data() + 8, 8);
    if (t < ANOVA_TAG_SPLIT || t > ANOVA_TAG_INVALID) return false;
    if (std::memcmp(reply.data() + 16, req.data() + 16, req.size() - 16) != 0) return false;
    tag = static_cast<uint32_t>(t);
    return true;
}

}  // namespace

// ---- serve -----------------------------------------------------------------

Result<ServeStats> serve(const ServeOptions& o) {
    if (o.encoding != ANOVA_ENC_U32 && o.encoding != ANOVA_ENC_F64)
        return Error{ErrorKind::Usage, 0, "serve", "check options", "unknown encoding", {}};
    if (o.params.frac_bits < 1 || o.params.frac_bits > 31)
        return Error{ErrorKind::Usage, 0, "serve", "check options", "frac_bits must be 1..31", {}};
    auto addr = resolve(o.bind, o.port, true);
    if (!addr) return addr.error();
    const std::string where = endpoint(o.bind, o.port);
    UniqueFd fd(::socket(addr->family, SOCK_DGRAM | SOCK_CLOEXEC, 0));
    if (fd.get() < 0) return make_error(ErrorKind::Io, errno, where, "create UDP socket");
    int one = 1;
    (void)setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (::bind(fd.get(), reinterpret_cast<const sockaddr*>(&addr->ss), addr->len) < 0)
        return make_error(ErrorKind::Io, errno, where, "bind", {},
                          errno == EADDRINUSE ? "another server uses this port; pick --port"
                                              : "");
    if (o.ready) o.ready->store(true);
    ETC_INFO("anova serve: listening on %s (udp)", where.c_str());

    ServeStats st;
    std::vector<uint8_t> buf(65536);
    const int poll_ms = std::clamp(o.poll_ms, 1, 1000);
    auto done = [&] {
        return (o.stop && o.stop->load(std::memory_order_relaxed)) ||
               (o.max_requests && st.requests >= o.max_requests);
    };
    while (!done()) {
        pollfd p{fd.get(), POLLIN, 0};
        int n = ::poll(&p, 1, poll_ms);
        if (n < 0) {
            if (errno == EINTR) continue;
            return make_error(ErrorKind::Io, errno, where, "poll");
        }
        if (n == 0) continue;
        // Drain what is queued, then look at the stop conditions again.
        while (!done()) {
            sockaddr_storage peer{};
            socklen_t plen = sizeof peer;
            ssize_t len = ::recvfrom(fd.get(), buf.data(), buf.size(), MSG_DONTWAIT,
                                     reinterpret_cast<sockaddr*>(&peer), &plen);
            if (len < 0) {
                if (errno == EINTR) continue;
                if (errno == EAGAIN || errno == EWOULDBLOCK) break;
                return make_error(ErrorKind::Io, errno, where, "recvfrom");
            }
            ++st.datagrams;
            std::span<uint8_t> d(buf.data(), static_cast<size_t>(len));
            switch (answer_in_place(d, o.encoding, o.params)) {
            case Ignored::Short: ++st.ignored_short; continue;
            case Ignored::Magic: ++st.ignored_magic; continue;
            case Ignored::Tag: ++st.ignored_tag; continue;
            case Ignored::None: break;
            }
            ++st.requests;
            uint64_t tag = get_le(d.data() + 8, 8);
            if (tag == ANOVA_TAG_SPLIT) ++st.splits;
            if (tag == ANOVA_TAG_INVALID) ++st.invalid;
            ssize_t sent = ::sendto(fd.get(), d.data(), d.size(), 0,
                                    reinterpret_cast<const sockaddr*>(&peer), plen);
            if (sent == static_cast<ssize_t>(d.size()))
                ++st.replies;
            else
                ++st.send_errors;
        }
    }
    return st;
}

std::string format_serve_stats(const ServeStats& s) {
    return fmt("datagrams %" PRIu64 "  requests %" PRIu64 "  replies %" PRIu64 "  splits %" PRIu64
               "  invalid %" PRIu64 "\nignored: short %" PRIu64 "  bad magic %" PRIu64
               "  tag not 0 %" PRIu64 "  send errors %" PRIu64 "\n",
               s.datagrams, s.requests, s.replies, s.splits, s.invalid, s.ignored_short,
               s.ignored_magic, s.ignored_tag, s.send_errors);
}

// ---- send ------------------------------------------------------------------

Result<SendResult> send_series(const SendOptions& o, std::span<const double> series) {
    if (o.timeout_ms <= 0 || o.retries < 0 || o.max_seconds <= 0)
        return Error{ErrorKind::Usage, 0, "send", "check options",
                     "timeout must be > 0 ms, retries ≥ 0, max_seconds > 0", {}};
    if (o.encoding == ANOVA_ENC_U32 && (o.frac_bits < 1 || o.frac_bits > 31))
        return Error{ErrorKind::Usage, 0, "send", "check options", "frac_bits must be 1..31", {}};
    auto addr = resolve(o.target, o.port, false);
    if (!addr) return addr.error();
    const std::string where = endpoint(o.target, o.port);
    UniqueFd fd(::socket(addr->family, SOCK_DGRAM | SOCK_CLOEXEC, 0));
    if (fd.get() < 0) return make_error(ErrorKind::Io, errno, where, "create UDP socket");
    if (!o.udp_checksum && addr->family == AF_INET) {
        int one = 1;
        if (::setsockopt(fd.get(), SOL_SOCKET, SO_NO_CHECK, &one, sizeof one) < 0)
            return make_error(ErrorKind::Io, errno, where, "set SO_NO_CHECK");
    }
    // Connected: only the target's datagrams arrive, ICMP errors are reported.
    if (::connect(fd.get(), reinterpret_cast<const sockaddr*>(&addr->ss), addr->len) < 0)
        return make_error(ErrorKind::Io, errno, where, "connect UDP socket");

    SendResult r;
    const size_t windows = series.size() >= ANOVA_SAMPLES ? series.size() - ANOVA_SAMPLES + 1 : 0;
    r.split.windows = windows;
    r.tags.assign(windows, 0);
    size_t refused = 0;
    const auto give_up = Clock::now() + std::chrono::seconds(o.max_seconds);
    std::vector<uint8_t> buf(65536);
    for (size_t i = 0; i < windows; ++i) {
        if (Clock::now() >= give_up) {
            ETC_WARN("anova send: %d s limit reached; %zu windows not sent", o.max_seconds,
                     windows - i);
            r.lost += windows - i;
            break;
        }
        auto req = encode_request(series.subspan(i).first<ANOVA_SAMPLES>(), o.encoding,
                                  o.frac_bits);
        if (!req) {
            ++r.unrepresentable;
            ++r.split.invalid;
            r.tags[i] = ANOVA_TAG_INVALID;
            continue;
        }
        uint32_t verdict = 0;
        for (int attempt = 0; attempt <= o.retries && !verdict; ++attempt) {
            ssize_t s = ::send(fd.get(), req->data(), req->size(), 0);
            if (s < 0 && errno == ECONNREFUSED)  // an ICMP error from an earlier datagram
                s = ::send(fd.get(), req->data(), req->size(), 0);
            if (s < 0) {
                if (errno == ECONNREFUSED) {
                    ++refused;
                    continue;
                }
                return make_error(ErrorKind::Io, errno, where, "send request");
            }
            ++r.sent;
            const auto until = Clock::now() + std::chrono::milliseconds(o.timeout_ms);
            while (!verdict) {
                int wait = ms_until(until);
                if (wait == 0) break;
                pollfd p{fd.get(), POLLIN, 0};
                int n = ::poll(&p, 1, wait);
                if (n < 0 && errno != EINTR) return make_error(ErrorKind::Io, errno, where, "poll");
                if (n <= 0) continue;
                ssize_t len = ::recv(fd.get(), buf.data(), buf.size(), MSG_DONTWAIT);
                if (len < 0) {
                    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) continue;
                    if (errno == ECONNREFUSED) {
                        ++refused;
                        break;
                    }
                    return make_error(ErrorKind::Io, errno, where, "receive reply");
                }
                uint32_t tag = 0;
                if (is_reply_to({buf.data(), static_cast<size_t>(len)}, *req, tag))
                    verdict = tag;
                else
                    ++r.stray;
            }
        }
        if (!verdict) {
            ++r.lost;
            continue;
        }
        ++r.answered;
        r.tags[i] = static_cast<uint8_t>(verdict);
        if (verdict == ANOVA_TAG_SPLIT) r.split.splits.push_back(i);
        if (verdict == ANOVA_TAG_INVALID) ++r.split.invalid;
    }
    if (windows && r.answered == 0 && refused)
        return Error{ErrorKind::Io, ECONNREFUSED, where, "send requests",
                     "every request was refused",
                     "nothing listens there: start `etcpipe anova serve` or attach xdp_anova"};
    return r;
}

std::string format_send_result(std::span<const double> series, const SendResult& r) {
    std::string out = format_splits(series, r.split);
    out += fmt("sent %zu  answered %zu  lost %zu  unrepresentable %zu  stray %zu\n", r.sent,
               r.answered, r.lost, r.unrepresentable, r.stray);
    return out;
}

// ---- processes and network namespaces ---------------------------------------

Result<void> run_command(const std::vector<std::string>& argv) {
    std::string cmdline;
    for (const auto& a : argv) cmdline += (cmdline.empty() ? "" : " ") + a;
    if (argv.empty()) return Error{ErrorKind::Usage, 0, "", "run command", "empty command", {}};
    int p[2];
    if (::pipe2(p, O_CLOEXEC) < 0) return make_error(ErrorKind::Io, errno, cmdline, "pipe");
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_adddup2(&fa, p[1], 1);
    posix_spawn_file_actions_adddup2(&fa, p[1], 2);
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    pid_t pid = -1;
    int rc = ::posix_spawnp(&pid, argv[0].c_str(), &fa, nullptr, args.data(), environ);
    posix_spawn_file_actions_destroy(&fa);
    ::close(p[1]);
    if (rc != 0) {
        ::close(p[0]);
        return make_error(ErrorKind::Io, rc, cmdline, "start command", {},
                          argv[0] == "ip" ? "install iproute2" : "");
    }
    std::string output;
    char chunk[1024];
    for (;;) {
        ssize_t n = ::read(p[0], chunk, sizeof chunk);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        if (output.size() < 4096) output.append(chunk, static_cast<size_t>(n));
    }
    ::close(p[0]);
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return {};
    while (!output.empty() && (output.back() == '\n' || output.back() == ' ')) output.pop_back();
    return Error{ErrorKind::Io, 0, cmdline, "run command",
                 output.empty() ? fmt("exit status %d", WIFEXITED(status) ? WEXITSTATUS(status)
                                                                          : -1)
                                : output, {}};
}

bool netns_exists(const std::string& name) {
    struct stat st{};
    return !name.empty() && ::stat(("/run/netns/" + name).c_str(), &st) == 0;
}

Result<void> enter_netns(const std::string& name) {
    const std::string path = "/run/netns/" + name;
    UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (fd.get() < 0) return make_error(ErrorKind::Io, errno, path, "open network namespace");
    if (::setns(fd.get(), CLONE_NEWNET) < 0)
        return make_error(ErrorKind::Io, errno, path, "enter network namespace", {},
                          errno == EPERM ? "needs CAP_SYS_ADMIN (run as root)" : "");
    return {};
}

ScopedNetns::~ScopedNetns() { reset(); }

ScopedNetns& ScopedNetns::operator=(ScopedNetns&& o) noexcept {
    if (this != &o) {
        reset();
        name_ = std::exchange(o.name_, {});
    }
    return *this;
}

void ScopedNetns::reset() {
    if (name_.empty()) return;
    if (auto r = run_command({"ip", "netns", "del", name_}); !r)
        ETC_WARN("%s", r.error().message().c_str());
    name_.clear();
}

Result<ScopedNetns> ScopedNetns::create(const std::string& name) {
    if (netns_exists(name))
        return Error{ErrorKind::Usage, EEXIST, name, "create network namespace", {},
                     "left over from an earlier run? remove it with `ip netns del " + name + "`"};
    if (auto r = run_command({"ip", "netns", "add", name}); !r) return r.error();
    ScopedNetns ns(name);
    if (auto r = run_command({"ip", "-n", name, "link", "set", "lo", "up"}); !r) return r.error();
    return ns;
}

namespace {

// Runs fn() on a fresh thread that entered namespace `ns` (setns is per thread).
Result<void> in_netns(const std::string& ns, const std::function<Result<void>()>& fn) {
    Result<void> res;
    std::thread t([&] {
        if (auto e = enter_netns(ns); !e) {
            res = e;
            return;
        }
        res = fn();
    });
    t.join();
    return res;
}

Result<void> write_proc(const std::string& path, const std::string& value) {
    UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CLOEXEC));
    if (fd.get() < 0) {
        if (errno == ENOENT) return {};  // no IPv6 in this kernel: nothing to turn off
        return make_error(ErrorKind::Io, errno, path, "open");
    }
    if (::write(fd.get(), value.data(), value.size()) != static_cast<ssize_t>(value.size()))
        return make_error(ErrorKind::Io, errno, path, "write");
    return {};
}

}  // namespace

Result<BenchTopology> BenchTopology::create() {
    if (::geteuid() != 0)
        return Error{ErrorKind::Usage, EPERM, "bench", "create network namespaces", {},
                     "run as root"};
    const std::string pid = std::to_string(::getpid());
    BenchTopology t;
    auto a = ScopedNetns::create("etcanA" + pid);
    if (!a) return a.error();
    t.a_ = std::move(*a);
    auto b = ScopedNetns::create("etcanB" + pid);
    if (!b) return b.error();  // t's destructor removes A
    t.b_ = std::move(*b);
    t.veth_a_ = "etcva" + pid;
    t.veth_b_ = "etcvb" + pid;
    const std::string mac_a = "02:78:00:00:00:01", mac_b = "02:78:00:00:00:02";
    for (const auto* ns : {&t.a_.name(), &t.b_.name()}) {
        auto r = in_netns(*ns, [] {
            for (const char* k : {"all", "default"})
                if (auto w = write_proc(std::string("/proc/sys/net/ipv6/conf/") + k +
                                            "/disable_ipv6",
                                        "1");
                    !w)
                    return w;
            return Result<void>{};
        });
        if (!r) return r.error();
    }
    const std::vector<std::vector<std::string>> steps = {
        {"ip", "-n", t.ns_a(), "link", "add", t.veth_a_, "address", mac_a, "type", "veth", "peer",
         "name", t.veth_b_, "address", mac_b, "netns", t.ns_b()},
        {"ip", "-n", t.ns_a(), "addr", "add", std::string(kAddrA) + "/24", "dev", t.veth_a_},
        {"ip", "-n", t.ns_b(), "addr", "add", std::string(kAddrB) + "/24", "dev", t.veth_b_},
        {"ip", "-n", t.ns_a(), "neigh", "replace", kAddrB, "lladdr", mac_b, "dev", t.veth_a_,
         "nud", "permanent"},
        {"ip", "-n", t.ns_b(), "neigh", "replace", kAddrA, "lladdr", mac_a, "dev", t.veth_b_,
         "nud", "permanent"},
        {"ip", "-n", t.ns_a(), "link", "set", t.veth_a_, "up"},
        {"ip", "-n", t.ns_b(), "link", "set", t.veth_b_, "up"},
    };
    for (const auto& s : steps)
        if (auto r = run_command(s); !r) return r.error();  // t's destructor cleans up
    return t;
}

// ---- latency benchmark ---------------------------------------------------------

namespace {

uint64_t rdtscp() {
    unsigned aux;
    return __rdtscp(&aux);
}

bool cpu_has_invariant_tsc() {
    std::ifstream f("/proc/cpuinfo");
    std::string line;
    while (std::getline(f, line)) {
        if (line.rfind("flags", 0) != 0) continue;
        line += ' ';
        return line.find(" constant_tsc ") != std::string::npos &&
               line.find(" nonstop_tsc ") != std::string::npos;
    }
    return false;
}

// TSC ticks per second, against CLOCK_MONOTONIC over ~100 ms.
double calibrate_tsc() {
    auto now_ns = [] {
        timespec ts{};
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return static_cast<int64_t>(ts.tv_sec) * 1000000000 + ts.tv_nsec;
    };
    int64_t t0 = now_ns();
    uint64_t c0 = rdtscp();
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    int64_t t1 = now_ns();
    uint64_t c1 = rdtscp();
    return static_cast<double>(c1 - c0) * 1e9 / static_cast<double>(t1 - t0);
}

// The program attached to an interface of a namespace; detached on destruction.
class XdpAttachment {
  public:
    XdpAttachment() = default;
    XdpAttachment(const XdpAttachment&) = delete;
    XdpAttachment& operator=(const XdpAttachment&) = delete;
    ~XdpAttachment() { detach(); }

    Result<void> attach(const std::string& ns, const std::string& iface, int prog_fd) {
        auto r = in_netns(ns, [&]() -> Result<void> {
            auto idx = interface_index(iface);
            if (!idx) return idx.error();
            int err = bpf_xdp_attach(*idx, prog_fd, XDP_FLAGS_DRV_MODE, nullptr);
            if (err)
                return make_error(ErrorKind::Bpf, err, iface, "attach XDP program (native)", {},
                                  "veth supports native XDP since Linux 4.19");
            ifindex_ = *idx;
            return {};
        });
        if (r) ns_ = ns;
        return r;
    }
    void detach() {
        if (ns_.empty()) return;
        auto r = in_netns(ns_, [&]() -> Result<void> {
            int err = bpf_xdp_detach(ifindex_, XDP_FLAGS_DRV_MODE, nullptr);
            if (err) return make_error(ErrorKind::Bpf, err, ns_, "detach XDP program");
            return {};
        });
        if (!r) ETC_WARN("%s", r.error().message().c_str());
        ns_.clear();
    }

  private:
    std::string ns_;
    int ifindex_ = 0;
};

// Stops and joins a thread on every exit path.
struct ThreadGuard {
    std::atomic<bool>& stop;
    std::thread& thread;
    ~ThreadGuard() {
        stop.store(true);
        if (thread.joinable()) thread.join();
    }
};

LatencyStats summarize(std::vector<uint64_t>& cycles, double tsc_hz, size_t lost, size_t wrong) {
    LatencyStats s;
    s.samples = cycles.size();
    s.lost = lost;
    s.wrong = wrong;
    if (cycles.empty()) return s;
    std::sort(cycles.begin(), cycles.end());
    auto us = [&](uint64_t c) { return static_cast<double>(c) / tsc_hz * 1e6; };
    auto pct = [&](double p) {
        size_t idx = static_cast<size_t>(std::ceil(p * static_cast<double>(cycles.size())));
        return us(cycles[std::min(cycles.size() - 1, idx ? idx - 1 : 0)]);
    };
    s.p50_us = pct(0.50);
    s.p99_us = pct(0.99);
    s.p999_us = pct(0.999);
    s.max_us = us(cycles.back());
    long double sum = 0;
    for (uint64_t c : cycles) sum += c;
    s.mean_us = us(static_cast<uint64_t>(sum / cycles.size()));
    return s;
}

// A deterministic random walk with level shifts: both verdicts occur.
std::vector<double> synthetic_series(size_t n) {
    std::mt19937_64 rng(0x5eed);
    std::normal_distribution<double> step(0.0, 0.02);
    std::uniform_real_distribution<double> u(0.0, 1.0);
    std::vector<double> v(n);
    double x = 10.0;
    for (size_t i = 0; i < n; ++i) {
        x += step(rng);
        if (u(rng) < 0.02) x += u(rng) < 0.5 ? -0.5 : 0.5;
        x = std::clamp(x, 1.0, 100.0);
        v[i] = x;
    }
    return v;
}

struct Request {
    std::vector<uint8_t> bytes;
    uint32_t ref = 0;  // decide_u32
};

// One client socket in namespace A, connected to B:port.
struct Target {
    UniqueFd fd;
    std::vector<uint64_t> cycles;
    size_t lost = 0, wrong = 0;
};

// 0: reply with the reference verdict; 1: lost; 2: wrong verdict.
int round_trip(Target& t, const Request& rq, int timeout_ms, std::vector<uint8_t>& buf,
               bool record) {
    const auto until = Clock::now() + std::chrono::milliseconds(timeout_ms);
    const uint64_t c0 = rdtscp();
    if (::send(t.fd.get(), rq.bytes.data(), rq.bytes.size(), 0) < 0) {
        ++t.lost;
        return 1;
    }
    for (;;) {
        ssize_t len = ::recv(t.fd.get(), buf.data(), buf.size(), MSG_DONTWAIT);
        if (len < 0) {
            if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) break;
            int wait = ms_until(until);
            if (wait == 0) break;
            pollfd p{t.fd.get(), POLLIN, 0};
            (void)::poll(&p, 1, wait);
            continue;
        }
        uint32_t tag = 0;
        if (!is_reply_to({buf.data(), static_cast<size_t>(len)}, rq.bytes, tag)) continue;
        const uint64_t c1 = rdtscp();
        if (record) t.cycles.push_back(c1 - c0);
        if (tag != rq.ref) {
            ++t.wrong;
            return 2;
        }
        return 0;
    }
    ++t.lost;
    return 1;
}

Result<Target> connect_target(uint16_t port) {
    Target t;
    t.fd = UniqueFd(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
    if (t.fd.get() < 0) return make_error(ErrorKind::Io, errno, "bench", "create UDP socket");
    // No UDP checksum (IPv4 allows 0, xdp_anova keeps it 0). A checksum
    // would leave veth as CHECKSUM_PARTIAL (pseudo-header sum only), which
    // XDP_TX sends back unfinished and the client would drop the reply.
    int one = 1;
    if (::setsockopt(t.fd.get(), SOL_SOCKET, SO_NO_CHECK, &one, sizeof one) < 0)
        return make_error(ErrorKind::Io, errno, "bench", "set SO_NO_CHECK");
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_port = htons(port);
    // Only ever the peer namespace's address.
    ::inet_pton(AF_INET, BenchTopology::kAddrB, &sa.sin_addr);
    if (::connect(t.fd.get(), reinterpret_cast<const sockaddr*>(&sa), sizeof sa) < 0)
        return make_error(ErrorKind::Io, errno, endpoint(BenchTopology::kAddrB, port), "connect");
    return t;
}

}  // namespace

Result<BenchResult> latency_bench(const BenchOptions& o) {
    if (o.windows == 0 || o.block == 0 || o.timeout_ms <= 0 || o.max_seconds <= 0 ||
        o.test_run_repeat == 0 || o.xdp_port == o.user_port)
        return Error{ErrorKind::Usage, 0, "bench", "check options",
                     "windows, block, timeout, max_seconds and repeat must be > 0; two ports",
                     {}};
    if (::geteuid() != 0)
        return Error{ErrorKind::Usage, EPERM, "bench", "start", "needs network namespaces and XDP",
                     "run as root"};
    BenchResult res;
    res.repeat = o.test_run_repeat;
    res.tsc_invariant = cpu_has_invariant_tsc();
    if (!res.tsc_invariant)
        ETC_WARN("bench: the CPU lacks constant_tsc/nonstop_tsc; TSC timings may be off");
    res.tsc_hz = calibrate_tsc();
    res.cpus = std::thread::hardware_concurrency();
    if (double la[1]; ::getloadavg(la, 1) == 1) res.loadavg = la[0];

    // Requests (u32 encoding) and their reference verdicts.
    std::vector<double> series;
    if (o.series_path.empty()) {
        series = synthetic_series(4096);
    } else {
        auto r = read_series(o.series_path);
        if (!r) return r.error();
        series = std::move(*r);
    }
    std::vector<Request> reqs;
    for (size_t i = 0; i + ANOVA_SAMPLES <= series.size(); ++i) {
        std::span<const double, ANOVA_SAMPLES> w(series.data() + i, ANOVA_SAMPLES);
        auto bytes = encode_request(w, ANOVA_ENC_U32, o.params.frac_bits);
        if (!bytes) continue;
        std::array<uint32_t, ANOVA_SAMPLES> x;
        for (size_t k = 0; k < ANOVA_SAMPLES; ++k) x[k] = *to_fixed(w[k], o.params.frac_bits);
        reqs.push_back({std::move(*bytes), decide_u32(x, o.params)});
    }
    if (reqs.empty())
        return Error{ErrorKind::Data, 0, o.series_path, "build requests",
                     "no representable 16-sample window", {}};

    // The programs: xdp_anova in tx mode, and xdp_pass as the floor.
    ProgramOptions popts;
    popts.params = o.params;
    popts.port = o.xdp_port;
    popts.reply = ANOVA_REPLY_TX;
    popts.encoding = ANOVA_ENC_U32;
    auto prog = Program::load(popts);
    if (!prog) return prog.error();
    auto pass = Skeleton<xdp_pass_bpf>::open("xdp_pass.bpf.o");
    if (!pass) return pass.error();
    if (auto r = pass->load("xdp_pass.bpf.o"); !r) return r.error();
    const int pass_fd = bpf_program__fd(pass->get()->progs.xdp_pass);

    // BPF_PROG_TEST_RUN: a fresh request frame per call (repeat 1), both
    // programs interleaved; then one call with repeat N on one frame.
    {
        std::vector<std::vector<uint8_t>> frames;
        for (size_t k = 0; k < std::min<size_t>(reqs.size(), 256); ++k)
            frames.push_back(build_udp_frame(reqs[k].bytes, o.xdp_port));
        TestRunBuffers bufs;
        uint64_t anova_ns = 0, pass_ns = 0;
        for (uint32_t i = 0; i < o.test_run_repeat; ++i) {
            const auto& f = frames[i % frames.size()];
            auto a = xdp_test_run(prog->prog_fd(), f, 0, 1, bufs);
            if (!a) return a.error();
            if (i == 0 && a->action != XDP_TX)
                return Error{ErrorKind::Bpf, 0, "xdp_anova", "test run",
                             "a request in tx mode returned action " + std::to_string(a->action),
                             "expected XDP_TX (3)"};
            auto b = xdp_test_run(pass_fd, f, 0, 1, bufs);
            if (!b) return b.error();
            anova_ns += a->duration_ns;
            pass_ns += b->duration_ns;
        }
        res.test_run_anova_ns = static_cast<double>(anova_ns) / o.test_run_repeat;
        res.test_run_pass_ns = static_cast<double>(pass_ns) / o.test_run_repeat;
        auto a = xdp_test_run(prog->prog_fd(), frames[0], 0, o.test_run_repeat, bufs);
        if (!a) return a.error();
        auto b = xdp_test_run(pass_fd, frames[0], 0, o.test_run_repeat, bufs);
        if (!b) return b.error();
        res.test_run_anova_rep_ns = a->duration_ns;
        res.test_run_pass_rep_ns = b->duration_ns;
    }

    // Topology, then the attachments (destroyed before it, in reverse order).
    auto topo = BenchTopology::create();
    if (!topo) return topo.error();
    XdpAttachment att_b, att_a;
    if (auto r = att_b.attach(topo->ns_b(), topo->veth_b(), prog->prog_fd()); !r) return r.error();
    // veth delivers XDP_TX frames only to a peer with NAPI on (an XDP
    // program or GRO): xdp_pass on veth A, the same for both targets.
    if (auto r = att_a.attach(topo->ns_a(), topo->veth_a(), pass_fd); !r) return r.error();

    // The user-space server in namespace B.
    std::atomic<bool> srv_stop{false}, srv_ready{false}, srv_done{false};
    Result<ServeStats> srv_result = Error{ErrorKind::Io, 0, "serve", "not run", {}, {}};
    std::thread srv([&] {
        if (auto e = enter_netns(topo->ns_b()); !e) {
            srv_result = e.error();
        } else {
            ServeOptions so;
            so.bind = BenchTopology::kAddrB;
            so.port = o.user_port;
            so.params = o.params;
            so.encoding = ANOVA_ENC_U32;
            so.stop = &srv_stop;
            so.ready = &srv_ready;
            so.poll_ms = 50;
            srv_result = serve(so);
        }
        srv_done.store(true);
    });
    ThreadGuard srv_guard{srv_stop, srv};
    const auto ready_by = Clock::now() + std::chrono::seconds(5);
    while (!srv_ready.load() && !srv_done.load() && Clock::now() < ready_by)
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
    if (!srv_ready.load()) {
        srv_stop.store(true);
        srv.join();
        return srv_result ? Error{ErrorKind::Io, ETIMEDOUT, "serve", "start", {}, {}}
                          : srv_result.error();
    }

    // The client in namespace A.
    Result<void> client_status;
    Target tx, tu;
    std::thread cli([&] {
        client_status = [&]() -> Result<void> {
            if (auto e = enter_netns(topo->ns_a()); !e) return e;
            auto a = connect_target(o.xdp_port);
            if (!a) return a.error();
            auto b = connect_target(o.user_port);
            if (!b) return b.error();
            tx = std::move(*a);
            tu = std::move(*b);
            std::vector<uint8_t> buf(2048);
            // Correctness first: both answer with decide_u32's verdict.
            for (size_t k = 0; k < std::min(o.verify, reqs.size()); ++k) {
                for (Target* t : {&tx, &tu}) {
                    int rc = round_trip(*t, reqs[k], 1000, buf, false);
                    const char* who = t == &tx ? "xdp_anova (XDP_TX)" : "user-space serve";
                    if (rc == 1)
                        return Error{ErrorKind::Io, ETIMEDOUT, who, "verify",
                                     "no reply to window " + std::to_string(k), {}};
                    if (rc == 2)
                        return Error{ErrorKind::Data, 0, who, "verify",
                                     "verdict of window " + std::to_string(k) +
                                         " differs from decide_u32",
                                     {}};
                }
                ++res.verified;
            }
            tx.lost = tx.wrong = tu.lost = tu.wrong = 0;
            tx.cycles.reserve(o.windows);
            tu.cycles.reserve(o.windows);
            // Timed phase: blocks, alternating which target goes first.
            const auto start = Clock::now();
            const auto give_up = start + std::chrono::seconds(o.max_seconds);
            size_t done = 0;
            for (size_t blk = 0; done < o.windows && !res.aborted; ++blk) {
                const size_t n = std::min(o.block, o.windows - done);
                Target* order[2] = {&tx, &tu};
                if (blk % 2) std::swap(order[0], order[1]);
                for (Target* t : order)
                    for (size_t j = 0; j < n; ++j) {
                        if (Clock::now() >= give_up || (o.stop && o.stop->load())) {
                            res.aborted = true;
                            break;
                        }
                        (void)round_trip(*t, reqs[(done + j) % reqs.size()], o.timeout_ms, buf,
                                         true);
                    }
                done += n;
            }
            res.seconds = std::chrono::duration<double>(Clock::now() - start).count();
            return {};
        }();
    });
    cli.join();
    srv_stop.store(true);
    srv.join();
    att_a.detach();
    att_b.detach();
    if (!client_status) return client_status.error();
    if (!srv_result) return srv_result.error();

    res.xdp = summarize(tx.cycles, res.tsc_hz, tx.lost, tx.wrong);
    res.user = summarize(tu.cycles, res.tsc_hz, tu.lost, tu.wrong);
    if (res.xdp.p50_us > 0) res.ratio_p50 = res.user.p50_us / res.xdp.p50_us;
    if (res.xdp.p99_us > 0) res.ratio_p99 = res.user.p99_us / res.xdp.p99_us;
    return res;
}

std::string format_bench(const BenchResult& r) {
    std::string s;
    s += fmt("ANOVA latency: one UDP request, decision, reply; client in netns A, veth to netns "
             "B; one request at a time\n");
    s += fmt("TSC %.3f GHz, calibrated against CLOCK_MONOTONIC over 100 ms; constant_tsc and "
             "nonstop_tsc: %s\n",
             r.tsc_hz / 1e9, r.tsc_invariant ? "yes" : "NO (timings may be unreliable)");
    if (r.loadavg >= 0)
        s += fmt("load average %.2f on %u CPUs at the start (the user-space path needs thread "
                 "wake-ups: load shows there first)\n",
                 r.loadavg, r.cpus);
    s += fmt("verified before timing: %zu windows per target agree with decide_u32\n",
             r.verified);
    s += fmt("timed phase: %.2f s%s\n\n", r.seconds,
             r.aborted ? " (ABORTED: time limit or signal; partial figures)" : "");
    s += fmt("%-34s %9s %6s %6s %9s %9s %9s %9s %9s\n", "round trip (µs)", "samples", "lost",
             "wrong", "mean", "p50", "p99", "p99.9", "max");
    auto row = [&](const char* name, const LatencyStats& l) {
        s += fmt("%-34s %9zu %6zu %6zu %9.2f %9.2f %9.2f %9.2f %9.2f\n", name, l.samples, l.lost,
                 l.wrong, l.mean_us, l.p50_us, l.p99_us, l.p999_us, l.max_us);
    };
    row("xdp_anova (native XDP, XDP_TX)", r.xdp);
    row("user-space serve (UDP socket)", r.user);
    auto ratio = [](double a, double b) { return b > 0 ? a / b : 0.0; };
    s += fmt("%-34s %9s %6s %6s %9.2f %9.2f %9.2f %9.2f %9.2f\n\n", "ratio user-space / XDP", "",
             "", "", ratio(r.user.mean_us, r.xdp.mean_us), ratio(r.user.p50_us, r.xdp.p50_us),
             ratio(r.user.p99_us, r.xdp.p99_us), ratio(r.user.p999_us, r.xdp.p999_us),
             ratio(r.user.max_us, r.xdp.max_us));
    s += fmt("BPF_PROG_TEST_RUN, kernel-measured ns per run, same run:\n");
    s += fmt("%-34s %12s %12s %12s\n", "", "xdp_anova", "xdp_pass", "difference");
    s += fmt("%-34s %12.1f %12.1f %12.1f\n",
             fmt("fresh request, repeat 1 (x%u)", r.repeat).c_str(), r.test_run_anova_ns,
             r.test_run_pass_ns, r.test_run_anova_ns - r.test_run_pass_ns);
    s += fmt("%-34s %12.1f %12.1f %12.1f\n", fmt("one frame, repeat %u", r.repeat).c_str(),
             r.test_run_anova_rep_ns, r.test_run_pass_rep_ns,
             r.test_run_anova_rep_ns - r.test_run_pass_rep_ns);
    s += "  (repeat N reuses the frame the previous run changed: after the first run it carries\n"
         "   a verdict and swapped ports, so only the first of the N runs decides; the repeat 1\n"
         "   row is the per-decision cost, including the kernel's timer overhead for both)\n";
    return s;
}

}  // namespace etcpipe::anova
