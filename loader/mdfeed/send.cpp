#include "mdfeed/send.hpp"

#include <sys/socket.h>
#include <time.h>

#include <cerrno>
#include <cmath>
#include <fstream>
#include <string_view>

#include "common/signals.hpp"
#include "mdfeed/sockets.hpp"

namespace etcpipe::md {
namespace {

// SSE main-board security ids the generator cycles through.
constexpr std::string_view kSecurities[] = {"600000", "600036", "601318", "600519", "601988", "600028"};

Result<std::vector<double>> read_prices(const std::string& path) {
    std::ifstream in(path);
    if (!in) return make_error(ErrorKind::Io, errno, path, "open price series");
    std::vector<double> v;
    std::string line;
    size_t n = 0;
    while (std::getline(in, line)) {
        ++n;
        if (line.empty() || line[0] == '#' || line == "\r") continue;
        char* end = nullptr;
        const double p = std::strtod(line.c_str(), &end);
        if (end == line.c_str() || !std::isfinite(p) || p <= 0)
            return Error{ErrorKind::Data, 0, path, "read price series",
                         "line " + std::to_string(n) + " is not a positive price: '" + line + "'", ""};
        v.push_back(p);
        if (v.size() > 10'000'000) break;
    }
    if (v.empty()) return Error{ErrorKind::Data, 0, path, "read price series", "no prices", ""};
    return v;
}

// Assigns an integer to a field keeping the field's own kind (signed or not).
void set_int(fast::Value& v, uint64_t x) {
    if (std::holds_alternative<int64_t>(v)) v = static_cast<int64_t>(x);
    else if (std::holds_alternative<uint64_t>(v)) v = x;
}

// A decimal with `exponent` (-3: prices to 0.001), or at the exponent the
// template fixes for the field (a constant exponent stays valid).
void set_decimal(fast::Value& v, double value, const fast::FieldInfo& f, int32_t exponent = -3) {
    auto* d = std::get_if<fast::Decimal>(&v);
    if (!d) {
        set_int(v, static_cast<uint64_t>(std::llround(value * 1000)));
        return;
    }
    const bool fixed = (f.split_decimal && f.exponent.op == fast::Operator::Constant) ||
                       (!f.split_decimal && f.op.op == fast::Operator::Constant);
    if (!fixed) d->exponent = exponent;
    d->mantissa = std::llround(value * std::pow(10.0, -d->exponent));
}

void set_text(fast::Value& v, std::string_view s) {
    if (std::holds_alternative<std::string>(v)) v = std::string(s);
}

// Sleeps (never spins: the receivers measured beside it need the cores)
// until CLOCK_MONOTONIC t.
void sleep_until(uint64_t t) {
    timespec ts{static_cast<time_t>(t / 1'000'000'000ull), static_cast<long>(t % 1'000'000'000ull)};
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, nullptr) == EINTR) {
        if (stop_flag().load(std::memory_order_relaxed)) return;
    }
}

}  // namespace

Result<FeedGenerator> FeedGenerator::create(const fast::TemplateSet& set,
                                            const std::vector<uint32_t>& template_ids,
                                            const std::string& series, uint64_t seed) {
    FeedGenerator g;
    auto prices = read_prices(series);
    if (!prices) return prices.error();
    g.prices_ = std::move(*prices);
    g.rng_.seed(seed);
    for (uint32_t id : template_ids) {
        const fast::Template* t = set.find(id);
        if (!t)
            return Error{ErrorKind::Usage, 0, std::to_string(id), "generate records",
                         "no template with this id in the template file", ""};
        Shape s;
        s.t = t;
        auto idx = [&](std::initializer_list<const char*> names) {
            for (const char* n : names)
                if (int i = t->field_index(n); i >= 0) return i;
            return -1;
        };
        s.send_time = idx({"SendTimeNs"});
        s.price = idx({"TradePrice", "OrderPrice", "Price"});
        s.qty = idx({"TradeQty", "OrderQty", "Balance", "Qty"});
        s.money = idx({"TradeMoney", "Money"});
        s.index = idx({"TradeIndex", "OrderIndex", "BizIndex"});
        s.time = idx({"TradeTime", "OrderTime"});
        s.data_time = idx({"DataTimeStamp"});
        s.biz_index = idx({"BizIndex"});
        s.security = idx({"SecurityID"});
        s.bs_flag = idx({"TradeBSFlag", "OrderBSFlag", "Side"});
        s.order_no = idx({"OrderNo"});
        s.buy_no = idx({"TradeBuyNo"});
        s.sell_no = idx({"TradeSellNo"});
        s.order_type = idx({"OrderType"});
        s.channel = idx({"TradeChannel", "OrderChannel", "Channel"});
        g.shapes_.push_back(std::move(s));
    }
    if (g.shapes_.empty())
        return Error{ErrorKind::Usage, 0, "", "generate records", "no template ids given", ""};
    return g;
}

// Quantities and ids random, prices along the series (one series value per
// 64 records, ±0.3 % around it, on the 0.01 tick), time moving forward.
void FeedGenerator::fill(Shape& s) {
    fast::RandomOptions ro;
    ro.absent_probability = 0;
    ro.extremes = false;
    ro.max_sequence_length = 3;
    s.rec = fast::random_record(*s.t, rng_, ro);
    auto& f = s.rec.fields;
    const double base = prices_[(tick_ / 64) % prices_.size()];
    std::uniform_real_distribution<double> jitter(-0.003, 0.003);
    const double price = std::max(0.01, std::round(base * (1 + jitter(rng_)) * 100) / 100);
    const uint64_t qty = 100 * std::uniform_int_distribution<uint64_t>(1, 100)(rng_);
    clock_ms_ += std::uniform_int_distribution<uint64_t>(0, 40)(rng_);
    ++index_;
    const auto& fi = s.t->fields();
    if (s.price >= 0) set_decimal(f[s.price], price, fi[s.price]);
    if (s.qty >= 0) set_int(f[s.qty], qty);
    if (s.money >= 0) set_decimal(f[s.money], price * static_cast<double>(qty), fi[s.money]);
    if (s.index >= 0) set_int(f[s.index], index_);
    if (s.biz_index >= 0) set_int(f[s.biz_index], index_);
    if (s.time >= 0) set_int(f[s.time], clock_ms_);
    if (s.data_time >= 0) set_int(f[s.data_time], clock_ms_);
    if (s.security >= 0) set_text(f[s.security], kSecurities[rng_() % std::size(kSecurities)]);
    if (s.bs_flag >= 0) set_text(f[s.bs_flag], rng_() & 1 ? "B" : "S");
    if (s.order_type >= 0) set_text(f[s.order_type], rng_() % 8 ? "A" : "D");
    if (s.order_no >= 0) set_int(f[s.order_no], 1'000'000 + index_);
    if (s.buy_no >= 0) set_int(f[s.buy_no], 1'000'000 + index_ - (rng_() % 500));
    if (s.sell_no >= 0) set_int(f[s.sell_no], 1'000'000 + index_ - (rng_() % 500));
    if (s.channel >= 0) set_int(f[s.channel], 1 + tick_ % 6 / 6);
    if (s.send_time >= 0) set_int(f[s.send_time], 0);
}

fast::Record& FeedGenerator::next() {
    Shape& s = shapes_[turn_++ % shapes_.size()];
    fill(s);
    ++tick_;
    ++produced_;
    return s.rec;
}

void FeedGenerator::stamp(fast::Record& r, uint64_t ns) const {
    for (const Shape& s : shapes_)
        if (s.t->id() == r.template_id && s.send_time >= 0) r.fields[s.send_time] = uint64_t{ns};
}

Result<SendSummary> run_send(const SendOptions& o) {
    auto templates = fast::TemplateSet::load(o.templates);
    if (!templates) return templates.error();
    auto gen = FeedGenerator::create(*templates, o.template_ids, o.series, o.seed);
    if (!gen) return gen.error();
    UniqueFd sock, listener;
    std::FILE* file = nullptr;
    struct Closer {
        std::FILE*& f;
        ~Closer() {
            if (f) std::fclose(f);
        }
    } closer{file};
    if (o.transport == Transport::File) {
        file = std::fopen(o.target.c_str(), "wb");
        if (!file) return make_error(ErrorKind::Io, errno, o.target, "create feed file");
    }
    Endpoint ep;
    if (o.transport != Transport::File) {
        auto e = parse_endpoint(o.target, o.transport == Transport::Tcp);
        if (!e) return e.error();
        ep = *e;
    }
    if (o.transport == Transport::File) {
        // nothing to connect
    } else if (o.transport == Transport::Udp) {
        auto s = udp_sender(ep);
        if (!s) return s.error();
        sock = std::move(*s);
    } else {
        auto l = tcp_listener(ep);
        if (!l) return l.error();
        listener = std::move(*l);
        if (o.on_listening) o.on_listening();
        auto c = tcp_accept(listener.get(), o.accept_timeout_ms);
        if (!c) return c.error();
        sock = std::move(*c);
    }
    install_stop_handlers();
    fast::Encoder enc(*templates);
    std::vector<uint8_t> fastbuf, msg;
    std::vector<fast::Record> batch;
    SendSummary sum;
    const uint64_t start = monotonic_ns();
    const uint64_t deadline = start + static_cast<uint64_t>(o.seconds * 1e9);
    const double interval = o.rate > 0 ? 1e9 / o.rate : 0;
    // STEP adds ~80 bytes of header and trailer around the FAST bytes.
    const size_t fast_target = o.transport != Transport::Udp ? (o.size > 120 ? o.size - 80 : 40)
                                                             : o.size - (o.seq_preamble ? 4 : 0);
    for (uint64_t i = 0; i < o.count; ++i) {
        if (stop_flag().load(std::memory_order_relaxed)) break;
        if (interval > 0 && !file) sleep_until(start + static_cast<uint64_t>(interval * static_cast<double>(i)));
        if (monotonic_ns() >= deadline) {
            sum.timed_out = true;
            break;
        }
        // The records are made first; the stamp is taken after, just before
        // they are encoded and sent (encoding is part of the latency).
        enc.reset();  // every datagram / STEP message starts with fresh dictionaries
        fastbuf.clear();
        msg.clear();
        if (o.transport == Transport::Udp && o.seq_preamble) {
            const uint32_t seq = static_cast<uint32_t>(i + 1);
            for (int b = 3; b >= 0; --b) msg.push_back(static_cast<uint8_t>(seq >> (8 * b)));
        }
        // Records are added until the message reaches its size, measured by
        // a trial encoding with a stamp of the same magnitude.
        batch.clear();
        fastbuf.clear();
        while (fastbuf.size() < fast_target || batch.empty()) {
            batch.push_back(gen->next());
            gen->stamp(batch.back(), monotonic_ns());
            if (auto e = enc.encode(batch.back(), fastbuf); !e) return e.error();
        }
        enc.reset();
        fastbuf.clear();
        const uint64_t stamp = monotonic_ns();
        for (fast::Record& r : batch) {
            gen->stamp(r, stamp);
            if (auto e = enc.encode(r, fastbuf); !e) return e.error();
            if (o.on_record) o.on_record(r);
        }
        const size_t records = batch.size();
        if (o.transport == Transport::Udp) {
            msg.insert(msg.end(), fastbuf.begin(), fastbuf.end());
            // A connected UDP socket reports an earlier ICMP port-unreachable
            // on the next send, which then did not go out: a feed does not
            // care whether anyone listens, so send it again.
            ssize_t n = ::send(sock.get(), msg.data(), msg.size(), 0);
            if (n < 0 && errno == ECONNREFUSED) n = ::send(sock.get(), msg.data(), msg.size(), 0);
            if (n < 0)
                return make_error(ErrorKind::Io, errno, o.target, "send datagram", {},
                                  errno == EMSGSIZE ? "--size is above the path MTU" : "");
        } else {
            char when[32];
            std::snprintf(when, sizeof(when), "%llu", static_cast<unsigned long long>(stamp));
            append_step(msg, fastbuf, i + 1, "UA3201", when);
            if (file) {
                if (std::fwrite(msg.data(), 1, msg.size(), file) != msg.size())
                    return make_error(ErrorKind::Io, errno ? errno : EIO, o.target, "write feed file");
            } else if (auto e = send_all(sock.get(), msg); !e) {
                return e.error();
            }
        }
        ++sum.messages;
        sum.records += records;
        sum.bytes += msg.size();
    }
    if (o.transport == Transport::Tcp) ::shutdown(sock.get(), SHUT_WR);
    if (file) {
        const int rc = std::fclose(file);
        file = nullptr;
        if (rc != 0) return make_error(ErrorKind::Io, errno, o.target, "write feed file");
    }
    sum.seconds = static_cast<double>(monotonic_ns() - start) / 1e9;
    return sum;
}

}  // namespace etcpipe::md
