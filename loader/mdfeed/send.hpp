// `etcpipe md send`: a feed generator. Records of the templates (prices
// walk the real daily series in testdata/anova/, so values look like a
// market), packed into messages of about --size bytes, sent as UDP
// datagrams or as STEP messages over a TCP connection the sender accepts
// (the sender plays the exchange). Each record carries the send time
// (CLOCK_MONOTONIC ns) in its SendTimeNs field when the template has one.
// Bounded by --count and --seconds, paced by --rate.
#pragma once

#include <cstdint>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "common/result.hpp"
#include "mdfeed/fast.hpp"
#include "mdfeed/framing.hpp"

namespace etcpipe::md {

// Records for the templates, values that look like a market.
class FeedGenerator {
  public:
    // series: one price per line (empty lines and # comments skipped).
    [[nodiscard]] static Result<FeedGenerator> create(const fast::TemplateSet& set,
                                                      const std::vector<uint32_t>& template_ids,
                                                      const std::string& series, uint64_t seed);
    // The next record, templates taken in turn; stamp it before encoding.
    fast::Record& next();
    // Writes ns into the record's SendTimeNs field (if its template has one).
    void stamp(fast::Record& r, uint64_t ns) const;
    [[nodiscard]] uint64_t produced() const { return produced_; }

  private:
    struct Shape {
        const fast::Template* t = nullptr;
        fast::Record rec;
        int send_time = -1, price = -1, qty = -1, money = -1, index = -1, time = -1, security = -1,
            bs_flag = -1, order_no = -1, buy_no = -1, sell_no = -1, order_type = -1, channel = -1,
            data_time = -1, biz_index = -1;
    };
    FeedGenerator() = default;
    void fill(Shape& s);

    std::vector<Shape> shapes_;
    std::vector<double> prices_;
    std::mt19937_64 rng_;
    size_t turn_ = 0, tick_ = 0;
    uint64_t produced_ = 0, index_ = 0, clock_ms_ = 93000000;  // HHMMSSmmm from 09:30:00.000
};

// Udp: datagrams; Tcp: STEP messages to the receiver that connects; File:
// STEP messages into a file (`md decode FILE --framing step` reads it back).
enum class Transport { Udp, Tcp, File };

struct SendOptions {
    std::string templates;
    std::vector<uint32_t> template_ids = {3201, 5801};
    std::string series = "testdata/anova/osh_000001SZ_daily.txt";
    Transport transport = Transport::Udp;
    std::string target;            // UDP: destination ADDR:PORT; TCP: listen ADDR:PORT; File: path
    uint64_t count = 1000;         // messages (datagrams or STEP messages)
    double rate = 10000;           // messages per second (0: as fast as possible)
    double seconds = 30;           // stop after this long whatever the count
    size_t size = 100;             // bytes per message: records are added until it is reached
    bool seq_preamble = false;     // UDP: 4-byte sequence number first
    int accept_timeout_ms = 10000; // TCP: wait this long for the receiver
    uint64_t seed = 1;
    // Every record sent, as sent (stamp included), in order (tests compare).
    std::function<void(const fast::Record&)> on_record;
    // TCP: called once listening (tests start the receiver then).
    std::function<void()> on_listening;
};

struct SendSummary {
    uint64_t messages = 0, records = 0, bytes = 0;
    double seconds = 0;
    bool timed_out = false;
};

[[nodiscard]] Result<SendSummary> run_send(const SendOptions& o);

}  // namespace etcpipe::md
