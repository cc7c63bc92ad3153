#include "mdfeed/latency.hpp"

#include <algorithm>

#include "mdfeed/sockets.hpp"

namespace etcpipe::md {

LatencyRow summarize_ns(std::vector<uint64_t>& ns) {
    LatencyRow r;
    r.samples = ns.size();
    if (ns.empty()) return r;
    std::sort(ns.begin(), ns.end());
    auto at = [&](double p) {
        size_t rank = static_cast<size_t>(p * static_cast<double>(ns.size()) + 0.999999);
        rank = std::clamp<size_t>(rank, 1, ns.size());
        return static_cast<double>(ns[rank - 1]) / 1e3;
    };
    r.p50_us = at(0.50);
    r.p99_us = at(0.99);
    r.p999_us = at(0.999);
    r.max_us = static_cast<double>(ns.back()) / 1e3;
    return r;
}

LatencySink::LatencySink(const fast::TemplateSet& set, RecordSink* next, size_t reserve)
    : next_(next) {
    for (const fast::Template* t : set.templates())
        send_field_.emplace_back(t->id(), t->field_index("SendTimeNs"));
    s_.total.reserve(reserve);
    s_.to_xdp.reserve(reserve);
    s_.to_user.reserve(reserve);
    s_.decode.reserve(reserve);
}

void LatencySink::on_record(const fast::MessageView& m, const RecordContext& ctx) {
    const uint64_t now = monotonic_ns();
    int idx = -1;
    for (const auto& [id, i] : send_field_)
        if (id == m.template_id()) idx = i;
    const std::optional<uint64_t> sent = idx >= 0 ? m.uint_at(idx) : std::nullopt;
    if (!sent || *sent == 0 || *sent > now) {
        ++s_.unstamped;
    } else {
        s_.total.push_back(now - *sent);
        const uint64_t user = ctx.rx_ns ? ctx.rx_ns : now;
        if (ctx.xdp_ts_ns && ctx.xdp_ts_ns >= *sent && ctx.xdp_ts_ns <= user) {
            s_.to_xdp.push_back(ctx.xdp_ts_ns - *sent);
            s_.to_user.push_back(user - ctx.xdp_ts_ns);
        } else if (ctx.rx_ns) {
            s_.to_user.push_back(user - *sent);
        }
        if (ctx.rx_ns) s_.decode.push_back(now - user);
    }
    seen_.fetch_add(1, std::memory_order_relaxed);
    if (next_) next_->on_record(m, ctx);
}

void LatencySink::on_problem(const RecordContext& ctx, const std::string& what) {
    ++problems_;
    if (next_) next_->on_problem(ctx, what);
}

void print_latency(std::FILE* out, LatencySamples& s) {
    auto line = [&](const char* name, std::vector<uint64_t>& v) {
        if (v.empty()) return;
        const LatencyRow r = summarize_ns(v);
        std::fprintf(out, "latency %-22s p50 %8.2f us  p99 %8.2f us  p99.9 %8.2f us  max %8.2f us  (%zu)\n",
                     name, r.p50_us, r.p99_us, r.p999_us, r.max_us, r.samples);
    };
    line("send -> decoded", s.total);
    line("send -> XDP", s.to_xdp);
    line(s.to_xdp.empty() ? "send -> user space" : "XDP -> user space", s.to_user);
    line("user space -> decoded", s.decode);
    if (s.unstamped) std::fprintf(out, "latency: %llu records without SendTimeNs\n",
                                  static_cast<unsigned long long>(s.unstamped));
}

Result<std::unique_ptr<RecordRoute>> RecordRoute::open(const fast::TemplateSet& set,
                                                      const std::string& output, bool with_ts,
                                                      bool latency, RecordSink* own) {
    auto out = OutputFile::open(own ? "/dev/null" : output);
    if (!out) return out.error();
    JsonSinkOptions so;
    so.with_ts = with_ts;
    std::unique_ptr<RecordRoute> r(new RecordRoute(std::move(*out), so));
    r->own_ = own;
    if (latency && !own) r->lat_.emplace(set, &r->json_);
    return r;
}

Result<void> RecordRoute::finish() {
    if (lat_) print_latency(stderr, lat_->samples());
    return out_.flush();
}

}  // namespace etcpipe::md
