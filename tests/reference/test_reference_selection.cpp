// The FlowManager (bpf/flowmgr.bpf.c, run with BPF_PROG_TEST_RUN) against an
// independent reference (reference_selector.hpp: its own parser, no BPF
// code) on every capture of the fetched nDPI set, packet for packet; and our
// flows against nDPI 4.2's expected per-flow results.
//
// Both tests read testdata/ndpi (`make testdata`); without it they skip.
// The first needs root (BPF_PROG_TEST_RUN of an XDP program); the second
// does not: it uses the reference, which the first proves equal to the
// program on the same captures.
#include <gtest/gtest.h>
#include <bpf/bpf.h>
#include <linux/bpf.h>
#include <arpa/inet.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cctype>
#include <cstdarg>
#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "etcpipe/flowmgr.h"
#include "flowmgr/flowmgr.hpp"
#include "common/pcap.hpp"
#include "reference_selector.hpp"
#include "tests/common/expect_ok.hpp"
#include "tests/common/skip.hpp"

namespace etcpipe::reference {
namespace {

namespace fs = std::filesystem;

// ---- shared helpers ----------------------------------------------------------

// testdata/ndpi, searched upwards from the working directory.
fs::path find_ndpi_root() {
    for (fs::path p = fs::current_path(); !p.empty(); p = p.parent_path()) {
        if (fs::is_directory(p / "testdata/ndpi/pcap")) return p / "testdata/ndpi";
        if (p == p.parent_path()) break;
    }
    return {};
}

std::vector<fs::path> list_captures(const fs::path& root) {
    std::vector<fs::path> files;
    for (const auto& e : fs::directory_iterator(root / "pcap")) {
        const auto ext = e.path().extension();
        if (e.is_regular_file() && (ext == ".pcap" || ext == ".pcapng" || ext == ".cap"))
            files.push_back(e.path());
    }
    std::sort(files.begin(), files.end());
    return files;
}

std::string fmt(const char* f, ...) __attribute__((format(printf, 1, 2)));
std::string fmt(const char* f, ...) {
    char buf[512];
    va_list ap;
    va_start(ap, f);
    std::vsnprintf(buf, sizeof(buf), f, ap);
    va_end(ap);
    return buf;
}

std::string hex_dump(std::span<const uint8_t> d, size_t max = 96) {
    std::string out;
    const size_t n = std::min(d.size(), max);
    for (size_t i = 0; i < n; i += 16) {
        out += fmt("      %04zx ", i);
        for (size_t j = i; j < std::min(n, i + 16); ++j) out += fmt(" %02x", d[j]);
        out += "\n";
    }
    if (n < d.size()) out += fmt("      ... (%zu bytes in all)\n", d.size());
    return out;
}

std::string endpoint_str(uint8_t family, const Endpoint& e) {
    std::string s;
    if (family == 4) {
        s = fmt("%u.%u.%u.%u", e.addr[0], e.addr[1], e.addr[2], e.addr[3]);
    } else {
        s = "[";
        for (int i = 0; i < 16; i += 2) s += fmt(i ? ":%x" : "%x", e.addr[i] << 8 | e.addr[i + 1]);
        s += "]";
    }
    return s + fmt(":%u", e.port);
}

std::string key_str(const FlowKey& k) {
    std::string s = fmt("proto %u ", k.proto) + endpoint_str(k.family, k.a) + " <-> " +
                    endpoint_str(k.family, k.b);
    if (k.vlan[0] || k.vlan[1]) s += fmt(" vlan %u/%u", k.vlan[0], k.vlan[1]);
    return s;
}

FlowKey from_bpf(const etc_flow_key& k) {
    FlowKey r;
    r.family = k.family;
    r.proto = k.proto;
    for (int i = 0; i < ETC_MAX_VLAN_DEPTH; ++i) r.vlan[i] = k.vlan[i];
    std::memcpy(r.a.addr.data(), k.addr_a, 16);
    std::memcpy(r.b.addr.data(), k.addr_b, 16);
    r.a.port = k.port_a;
    r.b.port = k.port_b;
    return r;
}

constexpr int kParseFirst = ETC_CNT_PARSE_TRUNC_ETH, kParseLast = ETC_CNT_PARSE_TRUNC_UDP;

// Frames of one capture, as Ethernet, with the reasons some were skipped.
struct FrameSource {
    std::optional<pcap::Reader> reader;
    std::vector<uint8_t> scratch;
    pcap::Frame frame;
    std::string error;  // open or read error (the frames before it were used)

    explicit FrameSource(const fs::path& path) {
        auto r = pcap::Reader::open(path.string());
        if (r)
            reader.emplace(std::move(r).value());
        else
            error = r.error().message();
    }
    // false at the end (or a read error). `eth` is empty when to_ethernet
    // refused the frame; `why` then says why.
    bool next(std::span<const uint8_t>& eth, std::string& why) {
        if (!reader) return false;
        auto n = reader->next(frame);
        if (!n) {
            error = n.error().message();
            return false;
        }
        if (!*n) return false;
        auto e = pcap::to_ethernet(frame, scratch);
        if (e) {
            eth = *e;
            why.clear();
        } else {
            eth = {};
            why = std::string("unsupported link-layer payload (") +
                  pcap::linktype_name(frame.linktype) + ")";
        }
        return true;
    }
    // The capture's time, or 1 when the record has none (0 would make the
    // program use its own clock).
    [[nodiscard]] uint64_t ts() const { return frame.ts_ns ? frame.ts_ns : 1; }
};

// ---- BPF vs reference ----------------------------------------------------------

struct Totals {
    size_t captures = 0, frames = 0, fed = 0, tracked = 0, selected = 0, flows = 0, expired = 0;
    size_t backwards = 0, mismatches = 0;
    std::map<std::string, size_t> skipped;    // reason → frames not given to either side
    std::map<std::string, size_t> untracked;  // parse reason → frames (both sides agree)
    std::map<std::string, std::string> read_errors;  // capture → error
    std::vector<std::string> failed;           // captures with mismatches
};

class CaptureCompare {
  public:
    // The reference takes the program's N, idle timeout and count_all.
    CaptureCompare(FlowManager& fm, std::string name, Totals& t)
        : fm_(fm), name_(std::move(name)), t_(t), ref_(config_of(fm.options())) {}

    static Config config_of(const FlowMgrOptions& o) {
        Config c;
        c.max_pkts = o.max_pkts;
        c.idle_timeout_ns = uint64_t{o.idle_timeout_s} * 1'000'000'000ull;
        c.count_all = o.count_all;
        return c;
    }

    // Call before the first frame.
    void start() {
        auto c0 = fm_.counters();
        if (!c0) return problem("read counters: " + c0.error().message());
        start_ = last_ = *c0;
    }

    void run(const fs::path& path) {
        FrameSource src(path);
        start();
        std::span<const uint8_t> eth;
        std::string why;
        uint64_t max_ts = 0;
        for (size_t index = 0; src.next(eth, why); ++index) {
            ++t_.frames;
            if (eth.empty()) {
                ++t_.skipped[why];
                continue;
            }
            const uint64_t ts = src.ts();
            if (ts < max_ts) ++t_.backwards;
            max_ts = std::max(max_ts, ts);
            frame(index, eth, ts);
        }
        if (!src.error.empty()) t_.read_errors[name_] = src.error;
        finish();
    }

    [[nodiscard]] const Selector& reference() const { return ref_; }

    void problem(const std::string& what) {
        if (mismatches_++ < 5) std::printf("  MISMATCH %s: %s\n", name_.c_str(), what.c_str());
    }
    void frame_problem(size_t index, std::span<const uint8_t> eth, uint64_t ts,
                       const std::string& what) {
        if (mismatches_ < 5)
            std::printf("  MISMATCH %s frame #%zu (ts %" PRIu64 ", %zu bytes): %s\n%s",
                        name_.c_str(), index, ts, eth.size(), what.c_str(), hex_dump(eth).c_str());
        ++mismatches_;
    }

    // One frame to both sides, compared.
    void frame(size_t index, std::span<const uint8_t> eth, uint64_t ts) {
        auto r = fm_.test_run(eth, ts);
        if (eth.size() < 14) {
            // The kernel refuses frames shorter than an Ethernet header; the
            // reference would call them trunc-eth. Neither side tracks them.
            if (r.ok() || r.error().code != EINVAL)
                frame_problem(index, eth, ts, "test_run of a frame < 14 bytes did not fail with EINVAL");
            ++t_.skipped["shorter than an Ethernet header (< 14 bytes)"];
            return;
        }
        if (!r) {
            ++t_.skipped["test_run failed"];
            return frame_problem(index, eth, ts, "test_run: " + r.error().message());
        }
        ++t_.fed;
        ++fed_;
        const Decision d = ref_.feed(eth, ts);
        std::string why;
        auto add = [&](const std::string& s) { why += (why.empty() ? "" : "; ") + s; };
        if (r->action != XDP_PASS) add(fmt("action %d, expected XDP_PASS", r->action));

        const bool ref_tracked = d.status == Parse::Ok;
        if (r->meta.has_value() != ref_tracked) {
            add(fmt("bpf %s, reference %s", r->meta ? "tracked" : "did not track",
                    ref_tracked ? "tracked" : parse_name(d.status)));
        } else if (ref_tracked) {
            const etc_meta& m = *r->meta;
            const auto flag = [&](uint16_t f) { return (m.flags & f) != 0; };
            ++t_.tracked;
            t_.selected += d.selected;
            if (flag(ETC_META_SELECTED) != d.selected)
                add(fmt("selected: bpf %d, ref %d", flag(ETC_META_SELECTED), d.selected));
            if (m.index != d.index) add(fmt("index: bpf %u, ref %u", m.index, d.index));
            if (flag(ETC_META_DIR_REPLY) != d.reply)
                add(fmt("reply: bpf %d, ref %d", flag(ETC_META_DIR_REPLY), d.reply));
            if (flag(ETC_META_NEW_FLOW) != d.new_flow)
                add(fmt("new flow: bpf %d, ref %d", flag(ETC_META_NEW_FLOW), d.new_flow));
            if (flag(ETC_META_PAYLOAD) != d.payload)
                add(fmt("payload: bpf %d, ref %d (payload %u bytes)", flag(ETC_META_PAYLOAD),
                        d.payload, d.payload_len));
            if (m.pkt_index != d.pkt_index)
                add(fmt("pkt_index: bpf %u, ref %u", m.pkt_index, d.pkt_index));
            if (m.ts_ns != ts) add(fmt("ts: bpf %" PRIu64, static_cast<uint64_t>(m.ts_ns)));
            if (m.orig_len != eth.size()) add(fmt("orig_len: bpf %u", m.orig_len));
            // Flow identity, one-to-one.
            auto [b2r, new_b] = bpf_to_ref_.emplace(m.flow_id, d.flow_id);
            auto [r2b, new_r] = ref_to_bpf_.emplace(d.flow_id, m.flow_id);
            if (b2r->second != d.flow_id || r2b->second != m.flow_id)
                add(fmt("flow identity: bpf flow %" PRIu64 " was ref flow %" PRIu64
                        ", ref flow %" PRIu64 " was bpf flow %" PRIu64,
                        static_cast<uint64_t>(m.flow_id), b2r->second, d.flow_id, r2b->second));
            if (new_b != d.new_flow || new_r != d.new_flow)
                add("first sighting of the flow id disagrees with new_flow");
        } else {
            // Untracked on both sides: the program's reason is the parse
            // counter (or FILTERED) that moved.
            auto c = fm_.counters();
            if (!c) {
                add("read counters: " + c.error().message());
            } else {
                std::string moved;
                int moved_n = 0, reason = -1;
                for (int i = kParseFirst; i <= kParseLast; ++i)
                    if ((*c)[i] != last_[i]) moved_n += static_cast<int>((*c)[i] - last_[i]), reason = i;
                if ((*c)[ETC_CNT_FILTERED] != last_[ETC_CNT_FILTERED]) ++moved_n, reason = ETC_CNT_FILTERED;
                if (moved_n != 1 || reason != static_cast<int>(d.status))
                    add(fmt("untracked: bpf reason %s (%d counter moves), ref %s",
                            reason < 0 ? "none" : counter_name(reason), moved_n, parse_name(d.status)));
                last_ = *c;
            }
            ++t_.untracked[parse_name(d.status)];
            ++untracked_[static_cast<int>(d.status)];
        }
        if (!why.empty()) frame_problem(index, eth, ts, why);
    }

    // Counters and the flow table against the reference's totals.
    void finish() {
        check_end();
        ++t_.captures;
        t_.mismatches += mismatches_;
        if (mismatches_) t_.failed.push_back(fmt("%s (%zu mismatches)", name_.c_str(), mismatches_));
    }

  private:
    void check_end() {
        auto c1 = fm_.counters();
        if (!c1) return problem("read counters: " + c1.error().message());
        Counters want{};
        want[ETC_CNT_RX] = fed_;
        want[ETC_CNT_VERDICT_PASS] = fed_;
        want[ETC_CNT_XSK_NO_SOCKET] = 0;
        std::map<uint64_t, const Flow*> current;
        for (const auto& [key, id] : ref_.current()) current[id] = &ref_.flows()[id - 1];
        for (const Flow& f : ref_.flows()) {
            want[ETC_CNT_SELECTED] += f.selected;
            want[ETC_CNT_NOT_SELECTED] += f.packets - f.selected;
            want[ETC_CNT_SKIP_NO_PAYLOAD] += f.packets - f.payload_pkts;
            want[ETC_CNT_SKIP_BEYOND_N] += f.payload_pkts - f.selected;
        }
        want[ETC_CNT_XSK_NO_SOCKET] = want[ETC_CNT_SELECTED];  // tap, no socket: passed
        want[ETC_CNT_FLOW_NEW] = current.size();
        want[ETC_CNT_FLOW_EXPIRED] = ref_.flows().size() - current.size();
        for (const auto& [reason, n] : untracked_) want[reason] = n;
        for (int i = 0; i < ETC_CNT_MAX; ++i) {
            const uint64_t got = (*c1)[i] - start_[i];
            if (got != want[i])
                problem(fmt("counter %s: bpf %" PRIu64 ", reference %" PRIu64, counter_name(i), got,
                            want[i]));
        }
        t_.flows += ref_.flows().size();
        t_.expired += ref_.flows().size() - current.size();

        size_t seen = 0;
        auto n = fm_.for_each_flow([&](const etc_flow_key& k, const etc_flow_value& v) {
            ++seen;
            auto m = bpf_to_ref_.find(v.flow_id);
            if (m == bpf_to_ref_.end() || !current.count(m->second))
                return problem(fmt("flow table: bpf flow %" PRIu64 " (%s) is not a current reference flow",
                                   static_cast<uint64_t>(v.flow_id), key_str(from_bpf(k)).c_str()));
            const Flow& f = *current[m->second];
            std::string why;
            auto cmp = [&](const char* what, uint64_t b, uint64_t r) {
                if (b != r) why += fmt(" %s bpf %" PRIu64 " ref %" PRIu64 ";", what, b, r);
            };
            if (from_bpf(k) != f.key) why += " key differs: ref " + key_str(f.key) + ";";
            cmp("packets", v.packets, f.packets);
            cmp("payload_pkts", v.payload_pkts, f.payload_pkts);
            cmp("selected", v.selected, f.selected);
            cmp("first_dir", v.first_dir, f.first_src_is_b);
            cmp("first_ns", v.first_ns, f.first_ns);
            cmp("last_ns", v.last_ns, f.last_ns);
            cmp("bytes", v.bytes, f.bytes);
            if (!why.empty()) problem("flow " + key_str(from_bpf(k)) + ":" + why);
        });
        if (!n) return problem("flow table: " + n.error().message());
        if (seen != current.size())
            problem(fmt("flow table holds %zu flows, the reference %zu", seen, current.size()));
    }

    FlowManager& fm_;
    std::string name_;
    Totals& t_;
    Selector ref_;
    Counters start_{}, last_{};
    size_t fed_ = 0, mismatches_ = 0;
    std::map<uint64_t, uint64_t> bpf_to_ref_, ref_to_bpf_;
    std::map<int, uint64_t> untracked_;  // parse counter → frames
};


// Empties the flow tables.
void clear_flows(FlowManager& fm) {
    auto n = fm.take_flows([](const etc_flow_key&, const etc_flow_value&) {});
    ASSERT_OK(n);
    size_t left = 0;
    n = fm.for_each_flow([&](const etc_flow_key&, const etc_flow_value&) { ++left; });
    ASSERT_OK(n);
    ASSERT_EQ(left, 0u) << "flow table not empty after clearing";
}

void print_totals(const Totals& t, double secs) {
    std::printf("\nBPF vs reference selection on the nDPI captures (%.1f s):\n", secs);
    std::printf("  captures compared:            %zu\n", t.captures);
    std::printf("  frames read:                  %zu\n", t.frames);
    std::printf("  frames compared (both sides): %zu\n", t.fed);
    std::printf("    tracked in a flow:          %zu\n", t.tracked);
    std::printf("    selected (compared):        %zu\n", t.selected);
    for (const auto& [why, n] : t.untracked)
        std::printf("    not tracked, %-20s %zu\n", (why + ":").c_str(), n);
    std::printf("  flows compared:               %zu (%zu of them restarts after idle)\n", t.flows,
                t.expired);
    std::printf("  frames with a timestamp older than an earlier one: %zu\n", t.backwards);
    size_t skipped = 0;
    for (const auto& [why, n] : t.skipped) skipped += n;
    std::printf("  frames skipped by both sides:  %zu\n", skipped);
    for (const auto& [why, n] : t.skipped) std::printf("    %s: %zu\n", why.c_str(), n);
    for (const auto& [file, err] : t.read_errors)
        std::printf("  read error (frames before it compared): %s\n", err.c_str());
    std::printf("  mismatches: %zu\n", t.mismatches);
}

// Ethernet + IPv4 + UDP with `payload` bytes, from 10.0.0.<src> to
// 10.0.0.<dst> (ports 1000+src → 1000+dst).
std::vector<uint8_t> udp_frame(uint8_t src, uint8_t dst, uint16_t payload) {
    std::vector<uint8_t> f(14 + 20 + 8 + payload, 0);
    f[12] = 0x08;  // IPv4
    uint8_t* ip = f.data() + 14;
    ip[0] = 0x45;
    const uint16_t total = static_cast<uint16_t>(20 + 8 + payload);
    ip[2] = static_cast<uint8_t>(total >> 8), ip[3] = static_cast<uint8_t>(total);
    ip[8] = 64, ip[9] = 17;
    ip[12] = 10, ip[15] = src, ip[16] = 10, ip[19] = dst;
    uint8_t* udp = ip + 20;
    udp[0] = 0x03, udp[1] = static_cast<uint8_t>(0xe8 + src);  // 1000 + src (small src)
    udp[2] = 0x03, udp[3] = static_cast<uint8_t>(0xe8 + dst);
    udp[4] = static_cast<uint8_t>((8 + payload) >> 8), udp[5] = static_cast<uint8_t>(8 + payload);
    return f;
}

}  // namespace

// The idle-expiry rule around its edges, where real captures rarely go:
// a gap of exactly the timeout, time going backwards, a gap that is over the
// timeout only when measured from a reordered (older) packet, and frames
// without a timestamp (ts 1).
TEST(ReferenceSelection, ExpiryRuleEqualsProgram) {
    SKIP_UNLESS_ROOT("for BPF_PROG_TEST_RUN of an XDP program");
    FlowMgrOptions o;
    o.flows = 1024;
    o.max_pkts = 3;
    auto fm = FlowManager::load(o);
    if (!fm) {
        if (fm.error().code == EPERM) GTEST_SKIP() << "cannot load BPF: " << fm.error().message();
        FAIL() << "FlowManager::load: " << fm.error().message();
    }
    constexpr uint64_t s = 1'000'000'000ull, t0 = 1'000'000 * s, idle = ETC_DEFAULT_IDLE_SEC * s;
    const auto ab = udp_frame(1, 2, 10), ba = udp_frame(2, 1, 10), ack = udp_frame(1, 2, 0);
    struct Step {
        const std::vector<uint8_t>* frame;
        uint64_t ts;
    };
    const Step steps[] = {
        {&ab, t0},                      // new flow
        {&ba, t0 + idle},               // exactly the timeout: same flow
        {&ab, t0 + 30 * s},             // backwards: same flow, last-seen stays
        {&ack, t0 + 30 * s + idle + s}, // > timeout after the reordered packet only: same flow
        {&ba, t0 + 3 * idle + 1},       // > timeout: restarts, first packet from b
        {&ab, t0 + 10 * s},             // far backwards: same flow
        {&ab, 1},                       // no timestamp: same flow
        {&ab, t0 + 4 * idle + 1},       // exactly the timeout again: same flow
        {&ab, t0 + 4 * idle + 1},       // same time: same flow, beyond N
        {&ba, t0 + 5 * idle + 2},       // one ns over: restarts
    };
    Totals t;
    CaptureCompare cmp(fm.value(), "synthetic expiry sequence", t);
    cmp.start();
    size_t i = 0;
    for (const auto& st : steps) cmp.frame(i++, *st.frame, st.ts);
    cmp.finish();
    EXPECT_EQ(t.mismatches, 0u);
    // The reference's own reading of the rule, spelled out.
    const auto& flows = cmp.reference().flows();
    ASSERT_EQ(flows.size(), 3u);
    EXPECT_EQ(flows[0].packets, 4u);
    EXPECT_EQ(flows[0].last_ns, t0 + 30 * s + idle + s);
    EXPECT_EQ(flows[1].packets, 5u);
    EXPECT_EQ(flows[1].selected, 3u);
    EXPECT_TRUE(flows[1].first_src_is_b);
    EXPECT_EQ(flows[2].packets, 1u);
}

TEST(ReferenceSelection, BpfEqualsReferenceOnNdpiCaptures) {
    const fs::path root = find_ndpi_root();
    if (root.empty()) GTEST_SKIP() << "testdata/ndpi not found (run `make testdata`)";
    SKIP_UNLESS_ROOT("for BPF_PROG_TEST_RUN of an XDP program");
    const auto files = list_captures(root);
    ASSERT_FALSE(files.empty()) << "no captures in " << (root / "pcap");

    FlowMgrOptions o;
    o.flows = 1u << 18;  // far more than any capture has: the LRU never evicts
    Totals t;
    const auto t0 = std::chrono::steady_clock::now();
    // One program for all captures (a load with a preallocated 2^18-entry
    // LRU table costs ~0.1 s of kernel time): between captures the flow
    // table is emptied; counters are compared as differences and flow ids
    // through a per-capture mapping, so nothing else carries over.
    auto fm = FlowManager::load(o);
    if (!fm) {
        if (fm.error().code == EPERM) GTEST_SKIP() << "cannot load BPF: " << fm.error().message();
        FAIL() << "FlowManager::load: " << fm.error().message();
    }
    for (const auto& path : files) {
        CaptureCompare(fm.value(), path.filename().string(), t).run(path);
        ASSERT_NO_FATAL_FAILURE(clear_flows(fm.value()));
    }
    const double secs =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    print_totals(t, secs);

    std::string failed;
    for (const auto& f : t.failed) failed += "\n  " + f;
    EXPECT_EQ(t.mismatches, 0u) << "captures with mismatches:" << failed;
    EXPECT_EQ(t.captures, files.size());
    EXPECT_GT(t.selected, 0u);
}



// ---- our flows vs nDPI's -------------------------------------------------------
//
// nDPI's flow definition is not ours, so the comparison is per conversation:
// (TCP or UDP, the two endpoints in canonical order), VLANs ignored, our
// flows summed over idle restarts and VLANs, nDPI's flow lines summed too.
// Our side is the reference selector, which the test above proves equal to
// the program packet for packet on the same captures (so this test needs no
// privilege).
//
// What the data shows (nDPI 4.2 ndpiReader results vs ours; the test prints
// the counts of each class, and fails on a difference that falls in none):
//  * Almost every conversation matches exactly, both directions.
//  * Snaplen-truncated packets: ndpiReader ignores a packet whose captured IP
//    bytes are fewer than its IP total length; we count it (our lengths come
//    from the headers, by design). badpackets.pcap (every packet truncated)
//    has an empty nDPI result. Such conversations match once those packets
//    are taken out of ours ("match without truncated packets").
//  * Tunnels: ndpiReader decapsulates IP-in-IP (4in4, 4in6, 6in4, 6in6), GTP-U
//    (UDP 2152), CAPWAP (UDP 5246/5247) and MPLS, and reports the inner flow
//    only; we key the outer headers (IP proto 4/41 flows, the outer UDP flow,
//    MPLS frames are not-IP). Hence "only nDPI" inner flows and "only ours"
//    outer UDP flows in captures that carry tunnels.
//  * Malformed L4 headers: a TCP data offset below 5 or beyond the IP
//    payload, or a cut-short TCP/UDP header, is a parse failure for us (the
//    packet is passed untracked and counted by reason); ndpiReader keeps such
//    packets, sometimes with ports 0. Both drop non-first IP fragments
//    (ip_fragmented_garbage.pcap: only the 29 first fragments are in nDPI's
//    flow, and they are exactly our 29 bad-tcp/trunc-tcp frames). The
//    remaining differences are all in captures with such malformed frames
//    (the fuzz-* regression inputs).
//  * nDPI 4.2 prints some IPv6 addresses wrongly (pinterest.pcap:
//    "[2600:1901::7a0b::]", two "::"); those lines are matched on the other
//    endpoint and both ports.
//  * Idle timeout: we restart a flow after 60 s idle; ndpiReader reports one
//    flow with all the packets where we have several (87 of the exact
//    matches), so our restarts are summed before comparing. Both split by
//    VLAN (nDPI prints one line per VLAN: "[VLAN: n]"); VLANs are ignored
//    here and the lines summed.
//  * Direction: totals can agree while nDPI attributes packets to the other
//    side (synscan.pcap, 1 conversation); counted, not a failure.
//  * Not compared: memcached.cap has no result file; fuzz-2021-10-13.pcap is
//    refused by our reader (a record's captured length 524501 > 256 KiB).
// The counts quoted here are from the run that wrote this; the test prints
// its own and asserts only that every difference falls in a class above and
// that exact matches are the large majority (> 90 %).
namespace {

// A TCP/UDP conversation without VLANs: (proto, family, canonical endpoints).
struct ConvKey {
    uint8_t proto = 0, family = 0;
    Endpoint a, b;
    auto operator<=>(const ConvKey&) const = default;
};

ConvKey conv_of(const FlowKey& k) { return ConvKey{k.proto, k.family, k.a, k.b}; }

struct Conv {
    uint64_t from_a = 0, from_b = 0;  // packets sent by endpoint a / b
    uint64_t truncated = 0;           // ours: packets whose capture is shorter than the IP length
    size_t entries = 0;               // flows (ours) or flow lines (nDPI) summed here
    std::set<std::array<uint16_t, ETC_MAX_VLAN_DEPTH>> vlans;
    [[nodiscard]] uint64_t packets() const { return from_a + from_b; }
};

std::string conv_str(const ConvKey& k) {
    return std::string(k.proto == 6 ? "TCP " : "UDP ") + endpoint_str(k.family, k.a) + " <-> " +
           endpoint_str(k.family, k.b);
}

// "1.2.3.4:80" or "[2001:db8::1]:443": the port, and the endpoint when the
// address parses.
struct ParsedEndpoint {
    bool port_ok = false, addr_ok = false;
    uint8_t family = 4;
    Endpoint ep;
};

ParsedEndpoint parse_endpoint(std::string_view s) {
    ParsedEndpoint r;
    const auto colon = s.rfind(':');
    if (colon == std::string_view::npos) return r;
    const std::string port_s(s.substr(colon + 1));
    char* end = nullptr;
    const unsigned long port = std::strtoul(port_s.c_str(), &end, 10);
    if (port_s.empty() || *end || port > 65535) return r;
    r.port_ok = true;
    r.ep.port = static_cast<uint16_t>(port);
    std::string host(s.substr(0, colon));
    if (host.size() > 2 && host.front() == '[' && host.back() == ']') {
        host = host.substr(1, host.size() - 2);
        r.family = 6;
    }
    r.addr_ok = inet_pton(r.family == 4 ? AF_INET : AF_INET6, host.c_str(), r.ep.addr.data()) == 1;
    return r;
}

// An nDPI flow line with one unparsable address.
struct LooseLine {
    uint8_t proto = 0;
    Endpoint known;          // the endpoint whose address parsed
    uint16_t other_port = 0;
    uint64_t packets = 0;
};

struct NdpiResult {
    std::map<ConvKey, Conv> convs;
    std::vector<LooseLine> loose;
    size_t lines = 0, bad = 0;
};

// The TCP and UDP flow lines of an ndpiReader result file:
//   "\t<n>\t<TCP|UDP> <src> <-> <dst> [...][<p> pkts/<b> bytes <-> <p> pkts/<b> bytes]..."
// ("->" when the second endpoint sent nothing).
NdpiResult parse_ndpi_result(const fs::path& path) {
    NdpiResult out;
    std::ifstream in(path, std::ios::binary);
    std::string line;
    while (std::getline(in, line)) {
        if (line.size() < 3 || line[0] != '\t' || !std::isdigit(static_cast<unsigned char>(line[1])))
            continue;
        const auto tab = line.find('\t', 1);
        if (tab == std::string::npos) continue;
        std::string_view rest(line);
        rest.remove_prefix(tab + 1);
        uint8_t proto;
        if (rest.starts_with("TCP "))
            proto = 6;
        else if (rest.starts_with("UDP "))
            proto = 17;
        else
            continue;
        ++out.lines;
        rest.remove_prefix(4);
        const auto sp1 = rest.find(' ');
        const auto sp2 = sp1 == std::string_view::npos ? sp1 : rest.find(' ', sp1 + 1);
        const auto sp3 = sp2 == std::string_view::npos ? sp2 : rest.find(' ', sp2 + 1);
        if (sp3 == std::string_view::npos) {
            ++out.bad;
            continue;
        }
        const ParsedEndpoint src = parse_endpoint(rest.substr(0, sp1));
        const ParsedEndpoint dst = parse_endpoint(rest.substr(sp2 + 1, sp3 - sp2 - 1));
        unsigned long long ps = 0, bs = 0, pd = 0, bd = 0;
        bool counts = false;
        for (size_t at = rest.find('['); at != std::string_view::npos; at = rest.find('[', at + 1)) {
            const std::string field(rest.substr(at, std::min<size_t>(96, rest.size() - at)));
            char arrow[4] = {};
            if (std::sscanf(field.c_str(), "[%llu pkts/%llu bytes %3s %llu pkts/%llu bytes]", &ps,
                            &bs, arrow, &pd, &bd) == 5) {
                counts = true;
                break;
            }
        }
        if (!counts || !src.port_ok || !dst.port_ok) {
            ++out.bad;
            continue;
        }
        if (src.addr_ok != dst.addr_ok) {
            const ParsedEndpoint& known = src.addr_ok ? src : dst;
            out.loose.push_back({proto, known.ep, (src.addr_ok ? dst : src).ep.port, ps + pd});
            continue;
        }
        if (!src.addr_ok || src.family != dst.family) {
            ++out.bad;
            continue;
        }
        ConvKey k;
        k.proto = proto;
        k.family = src.family;
        const bool src_is_b = dst.ep < src.ep;
        k.a = src_is_b ? dst.ep : src.ep;
        k.b = src_is_b ? src.ep : dst.ep;
        Conv& c = out.convs[k];
        (src_is_b ? c.from_b : c.from_a) += ps;
        (src_is_b ? c.from_a : c.from_b) += pd;
        ++c.entries;
    }
    return out;
}

bool tunnel_port(uint16_t p) { return p == 2152 || p == 5246 || p == 5247; }  // GTP-U, CAPWAP

// Our side of one capture.
struct OurCapture {
    std::map<ConvKey, Conv> convs;
    size_t tunnel_frames = 0;     // IP-in-IP, GTP-U, CAPWAP, MPLS
    size_t malformed_frames = 0;  // parse failures other than not-IP and non-first fragments
    std::string read_error;       // our reader refused (part of) the capture
};

OurCapture our_capture(const fs::path& path) {
    OurCapture o;
    Selector ref;
    FrameSource src(path);
    std::span<const uint8_t> eth;
    std::string why;
    while (src.next(eth, why)) {
        if (eth.size() < 14) continue;
        ref.feed(eth, src.ts());
        const ParsedFrame p = parse_frame(eth);
        if (p.status == Parse::Ok) {
            const FlowKey& k = p.key;
            o.tunnel_frames += k.proto == 4 || k.proto == 41 ||
                               (k.proto == 17 && (tunnel_port(k.a.port) || tunnel_port(k.b.port)));
            if ((k.proto == 6 || k.proto == 17) && eth.size() - p.ip_offset < p.ip_total_len)
                ++o.convs[conv_of(k)].truncated;
        } else if (p.status == Parse::NotIp) {
            const uint16_t et = static_cast<uint16_t>(eth[12] << 8 | eth[13]);
            o.tunnel_frames += et == 0x8847 || et == 0x8848;  // MPLS
        } else if (p.status != Parse::Fragment) {
            ++o.malformed_frames;
        }
    }
    o.read_error = src.error;
    for (const Flow& f : ref.flows()) {
        if (f.key.proto != 6 && f.key.proto != 17) continue;
        Conv& c = o.convs[conv_of(f.key)];
        c.from_a += f.packets_from_a;
        c.from_b += f.packets_from_b;
        ++c.entries;
        c.vlans.insert(f.key.vlan);
    }
    return o;
}

}  // namespace

TEST(ReferenceSelection, FlowCountsAgainstNdpi) {
    const fs::path root = find_ndpi_root();
    if (root.empty()) GTEST_SKIP() << "testdata/ndpi not found (run `make testdata`)";
    const auto files = list_captures(root);
    ASSERT_FALSE(files.empty());

    size_t captures = 0, lines = 0, bad_lines = 0, ndpi_convs = 0, our_convs = 0;
    std::map<std::string, size_t> cls;  // class → conversations
    size_t dir_differs = 0, idle_split = 0, vlan_split = 0, ndpi_multi = 0;
    std::vector<std::string> no_result, unexplained, examples;
    auto note = [&](const std::string& c, const std::string& name, const std::string& what) {
        if (cls[c]++ < 3) examples.push_back(c + ": " + name + " " + what);
    };
    for (const auto& path : files) {
        const std::string name = path.filename().string();
        const fs::path result = root / "result" / (name + ".out");
        if (!fs::exists(result)) {
            no_result.push_back(name);
            continue;
        }
        ++captures;
        NdpiResult nd = parse_ndpi_result(result);
        OurCapture ours = our_capture(path);
        lines += nd.lines;
        bad_lines += nd.bad;
        ndpi_convs += nd.convs.size() + nd.loose.size();
        std::set<ConvKey> matched;
        for (const auto& [k, n] : nd.convs) {
            ndpi_multi += n.entries > 1;
            auto it = ours.convs.find(k);
            const Conv o = it == ours.convs.end() ? Conv{} : it->second;
            const std::string what = conv_str(k) + fmt(": nDPI %" PRIu64 "+%" PRIu64 " packets, ours %" PRIu64
                                                       "+%" PRIu64 " (%" PRIu64 " truncated)",
                                                       n.from_a, n.from_b, o.from_a, o.from_b, o.truncated);
            if (o.entries) matched.insert(k);
            if (!ours.read_error.empty()) {
                note("capture our reader refuses", name, what);
            } else if (o.entries && o.packets() == n.packets()) {
                note("exact", name, what);
                dir_differs += o.from_a != n.from_a;
                idle_split += o.entries > n.entries;
                vlan_split += o.vlans.size() > 1;
            } else if (o.entries && o.truncated && o.packets() - o.truncated == n.packets()) {
                note("match without truncated packets", name, what);
            } else if (!o.entries && ours.tunnel_frames) {
                note("only nDPI: inner flow of a tunnel", name, what);
            } else if (ours.malformed_frames) {
                note(o.entries ? "differs, capture has malformed frames"
                               : "only nDPI, capture has malformed frames",
                     name, what);
            } else {
                unexplained.push_back(name + " " + what);
            }
        }
        // nDPI lines with an unprintable address: the other endpoint and both ports.
        for (const auto& l : nd.loose) {
            bool found = false;
            for (const auto& [k, o] : ours.convs) {
                if (matched.count(k) || k.proto != l.proto) continue;
                if ((k.a == l.known && k.b.port == l.other_port) ||
                    (k.b == l.known && k.a.port == l.other_port)) {
                    if (o.packets() == l.packets) {
                        matched.insert(k);
                        found = true;
                        note("exact, nDPI printed an invalid IPv6 address", name, conv_str(k));
                        break;
                    }
                }
            }
            if (!found && !ours.read_error.empty())
                note("capture our reader refuses", name, "(a line with an invalid address)");
            else if (!found)
                unexplained.push_back(name + ": nDPI line with an invalid address unmatched");
        }
        for (const auto& [k, o] : ours.convs) {
            if (matched.count(k) || !o.entries) continue;
            ++our_convs;
            const std::string what = conv_str(k) + fmt(": ours %" PRIu64 "+%" PRIu64 " packets",
                                                       o.from_a, o.from_b);
            if (o.truncated == o.packets())
                note("only ours: every packet truncated", name, what);
            else if (k.proto == 17 && (tunnel_port(k.a.port) || tunnel_port(k.b.port)))
                note("only ours: outer flow of a tunnel", name, what);
            else if (ours.malformed_frames)
                note("only ours, capture has malformed frames", name, what);
            else
                unexplained.push_back(name + " only ours: " + what);
        }
        our_convs += matched.size();
    }

    std::printf("\nOur TCP/UDP flows vs nDPI 4.2's expected results (per conversation: proto + "
                "endpoints, VLAN ignored):\n");
    std::printf("  captures with a result: %zu; without: %zu", captures, no_result.size());
    for (const auto& n : no_result) std::printf(" %s", n.c_str());
    std::printf("\n  nDPI TCP/UDP flow lines: %zu (%zu unparsable); conversations: nDPI %zu, ours %zu\n",
                lines, bad_lines, ndpi_convs, our_convs);
    for (const auto& [c, n] : cls) std::printf("  %-45s %zu\n", (c + ":").c_str(), n);
    std::printf("  of the exact matches: %zu with the direction split differing, %zu that we split "
                "into more flows than nDPI has lines (idle restarts), %zu over several VLANs; nDPI conversations with several flow "
                "lines: %zu\n",
                dir_differs, idle_split, vlan_split, ndpi_multi);
    std::printf("  examples:\n");
    for (const auto& e : examples) std::printf("    %s\n", e.c_str());
    std::printf("  unexplained: %zu\n", unexplained.size());
    for (size_t i = 0; i < std::min<size_t>(unexplained.size(), 20); ++i)
        std::printf("    %s\n", unexplained[i].c_str());

    EXPECT_TRUE(unexplained.empty()) << unexplained.size()
                                     << " differences from nDPI fall in no documented class";
    // Most conversations match exactly; the rest is explained above.
    EXPECT_GT(cls["exact"], ndpi_convs * 9 / 10);
    EXPECT_EQ(bad_lines, 0u);
}

}  // namespace etcpipe::reference
