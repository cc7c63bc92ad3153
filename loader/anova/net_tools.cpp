#include "anova/net_tools.hpp"

#include <poll.h>
#include <sys/socket.h>

#include <algorithm>
#include <cinttypes>
#include <functional>

#include "common/fmt.hpp"
#include "anova/output.hpp"
#include "anova/wire.hpp"
#include "common/fd.hpp"
#include "common/log.hpp"

namespace etcpipe::anova {

// ---- serve -----------------------------------------------------------------

namespace {

// Answers what is queued on fd without blocking, until EAGAIN or done().
Result<void> drain(int fd, const ServeOptions& o, const std::string& where,
                   std::vector<uint8_t>& buf, ServeStats& st, const std::function<bool()>& done) {
    return drain_udp(fd, buf, where, done,
                     [&](std::span<uint8_t> d, const sockaddr_storage& peer, socklen_t plen) {
        ++st.datagrams;
        switch (answer_in_place(d, o.encoding, o.params)) {
        case Ignored::Short: ++st.ignored_short; return;
        case Ignored::Magic: ++st.ignored_magic; return;
        case Ignored::Tag: ++st.ignored_tag; return;
        case Ignored::None: break;
        }
        ++st.requests;
        const uint64_t tag = message_tag(d);
        if (tag == ANOVA_TAG_SPLIT) ++st.splits;
        if (tag == ANOVA_TAG_INVALID) ++st.invalid;
        ssize_t sent = ::sendto(fd, d.data(), d.size(), 0,
                                reinterpret_cast<const sockaddr*>(&peer), plen);
        if (sent == static_cast<ssize_t>(d.size()))
            ++st.replies;
        else
            ++st.send_errors;
    });
}

}  // namespace

Result<ServeStats> serve(const ServeOptions& o) {
    if (o.encoding != ANOVA_ENC_U32 && o.encoding != ANOVA_ENC_F64)
        return Error{ErrorKind::Usage, 0, "serve", "check options", "unknown encoding", {}};
    if (auto v = check_params(o.params); !v) return v.error();
    const std::string where = endpoint(o.bind, o.port);
    auto fd = bind_udp(o.bind, o.port);
    if (!fd) return fd.error();
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
        pollfd p{fd->get(), POLLIN, 0};
        int n = ::poll(&p, 1, poll_ms);
        if (n < 0) {
            if (errno == EINTR) continue;
            return make_error(ErrorKind::Io, errno, where, "poll");
        }
        if (n == 0) continue;
        // Drain what is queued, then look at the stop conditions again.
        if (auto r = drain(fd->get(), o, where, buf, st, done); !r) return r.error();
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

namespace {

// One window's request on the connected socket: up to 1 + retries attempts,
// each waiting timeout_ms for its reply. Returns the verdict, 0 when none came.
Result<uint32_t> request_verdict(int fd, const SendOptions& o, const std::string& where,
                                 const std::vector<uint8_t>& req, std::vector<uint8_t>& buf,
                                 SendResult& r, size_t& refused) {
    uint32_t verdict = 0;
    for (int attempt = 0; attempt <= o.retries && !verdict; ++attempt) {
        ssize_t s = ::send(fd, req.data(), req.size(), 0);
        if (s < 0 && errno == ECONNREFUSED)  // an ICMP error from an earlier datagram
            s = ::send(fd, req.data(), req.size(), 0);
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
            pollfd p{fd, POLLIN, 0};
            int n = ::poll(&p, 1, wait);
            if (n < 0 && errno != EINTR) return make_error(ErrorKind::Io, errno, where, "poll");
            if (n <= 0) continue;
            ssize_t len = ::recv(fd, buf.data(), buf.size(), MSG_DONTWAIT);
            if (len < 0) {
                if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) continue;
                if (errno == ECONNREFUSED) {
                    ++refused;
                    break;
                }
                return make_error(ErrorKind::Io, errno, where, "receive reply");
            }
            uint32_t tag = 0;
            if (is_reply_to({buf.data(), static_cast<size_t>(len)}, req, tag))
                verdict = tag;
            else
                ++r.stray;
        }
    }
    return verdict;
}

}  // namespace

Result<SendResult> send_series(const SendOptions& o, std::span<const double> series) {
    if (o.timeout_ms <= 0 || o.retries < 0 || o.max_seconds <= 0)
        return Error{ErrorKind::Usage, 0, "send", "check options",
                     "timeout must be > 0 ms, retries ≥ 0, max_seconds > 0", {}};
    if (o.encoding == ANOVA_ENC_U32)
        if (auto v = check_frac_bits(o.frac_bits); !v) return v.error();
    const std::string where = endpoint(o.target, o.port);
    auto fd = connect_udp(o.target, o.port, o.udp_checksum);
    if (!fd) return fd.error();

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
        auto verdict = request_verdict(fd->get(), o, where, *req, buf, r, refused);
        if (!verdict) return verdict.error();
        if (!*verdict) {
            ++r.lost;
            continue;
        }
        ++r.answered;
        r.tags[i] = static_cast<uint8_t>(*verdict);
        if (*verdict == ANOVA_TAG_SPLIT) r.split.splits.push_back(i);
        if (*verdict == ANOVA_TAG_INVALID) ++r.split.invalid;
    }
    if (windows && r.answered == 0 && refused)
        return Error{ErrorKind::Io, ECONNREFUSED, where, "send requests",
                     "every request was refused",
                     "nothing listens there: start `etcpipe anova serve` or attach "
                     ANOVA_PROG_NAME};
    return r;
}

std::string format_send_result(std::span<const double> series, const SendResult& r) {
    std::string out = format_splits(series, r.split);
    out += fmt("sent %zu  answered %zu  lost %zu  unrepresentable %zu  stray %zu\n", r.sent,
               r.answered, r.lost, r.unrepresentable, r.stray);
    return out;
}

}  // namespace etcpipe::anova
