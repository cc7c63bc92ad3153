// ANOVA tools: split text and SVG output, the wire helpers, the user-space
// server and client (round trip inside a private network namespace), and the
// latency benchmark's topology (set up and removed, also after a failure).
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include <bpf/libbpf.h>
#include <linux/if_link.h>

#include "anova/latency_bench.hpp"
#include "anova/net_tools.hpp"
#include "anova/output.hpp"
#include "anova/wire.hpp"
#include "common/netns.hpp"
#include "common/fd.hpp"
#include "common/skeleton.hpp"
#include "common/xdp_attach.hpp"
#include "xdp_pass.skel.h"

namespace fs = std::filesystem;
using namespace etcpipe;
using namespace etcpipe::anova;

namespace {

// Checks that every tag is closed in order, and every '&' starts a known
// entity. Returns "" when well-formed, else what is wrong.
std::string xml_problem(const std::string& doc) {
    std::vector<std::string> stack;
    size_t i = 0;
    bool root_seen = false;
    while (i < doc.size()) {
        if (doc[i] == '&') {
            static const char* ents[] = {"&amp;", "&lt;", "&gt;", "&quot;", "&apos;"};
            bool ok = false;
            for (const char* e : ents)
                if (doc.compare(i, std::strlen(e), e) == 0) ok = true;
            if (!ok) return "bad entity at " + std::to_string(i);
            ++i;
            continue;
        }
        if (doc[i] == '>') return "stray '>' at " + std::to_string(i);
        if (doc[i] != '<') {
            ++i;
            continue;
        }
        size_t end = doc.find('>', i);
        if (end == std::string::npos) return "unterminated tag at " + std::to_string(i);
        std::string tag = doc.substr(i + 1, end - i - 1);
        i = end + 1;
        if (tag.empty()) return "empty tag";
        if (tag[0] == '?') continue;  // XML declaration
        if (tag.find('<') != std::string::npos) return "'<' inside a tag: " + tag;
        // Attribute values must be quoted pairs.
        if (std::count(tag.begin(), tag.end(), '"') % 2) return "unbalanced quotes: " + tag;
        if (tag[0] == '/') {
            std::string name = tag.substr(1);
            if (stack.empty() || stack.back() != name) return "unexpected </" + name + ">";
            stack.pop_back();
            continue;
        }
        std::string name = tag.substr(0, tag.find_first_of(" \t\n/"));
        if (stack.empty()) {
            if (root_seen) return "second root element " + name;
            root_seen = true;
        }
        if (tag.back() != '/') stack.push_back(name);
    }
    if (!stack.empty()) return "unclosed <" + stack.back() + ">";
    if (!root_seen) return "no root element";
    return "";
}

size_t count(const std::string& hay, const std::string& needle) {
    size_t n = 0;
    for (size_t p = hay.find(needle); p != std::string::npos; p = hay.find(needle, p + 1)) ++n;
    return n;
}

std::vector<double> ramp_series(size_t n) {
    std::vector<double> v(n);
    for (size_t i = 0; i < n; ++i) v[i] = 1.0 + 0.25 * static_cast<double>(i % 7) + (i > n / 2);
    return v;
}

std::string series_path() {
    if (fs::exists("testdata/anova/osh_000001SZ_daily.txt"))
        return "testdata/anova/osh_000001SZ_daily.txt";
    return "../shared/data/osh_000001SZ_daily.txt";
}

std::array<uint32_t, ANOVA_SAMPLES> fixed_window(std::span<const double> s, size_t i,
                                                 uint32_t frac_bits) {
    std::array<uint32_t, ANOVA_SAMPLES> x{};
    for (size_t k = 0; k < ANOVA_SAMPLES; ++k) x[k] = to_fixed(s[i + k], frac_bits).value();
    return x;
}

}  // namespace

// ---- text and SVG ----------------------------------------------------------

TEST(AnovaTools, FormatSplitsListsEachSplitAndSummary) {
    auto s = ramp_series(40);
    SplitResult r;
    r.windows = 25;
    r.splits = {2, 9};
    std::string out = format_splits(s, r);
    std::istringstream in(out);
    std::vector<std::string> lines;
    for (std::string l; std::getline(in, l);) lines.push_back(l);
    ASSERT_EQ(lines.size(), 3u) << out;
    EXPECT_NE(lines[0].find("window 2"), std::string::npos) << lines[0];
    EXPECT_NE(lines[0].find("boundary 10"), std::string::npos) << lines[0];
    EXPECT_NE(lines[1].find("boundary 17"), std::string::npos) << lines[1];
    EXPECT_EQ(lines[2], "splits: 2 of 25 windows");

    SplitResult none;
    none.windows = 3;
    EXPECT_EQ(format_splits(s, none), "splits: 0 of 3 windows\n");
}

TEST(AnovaTools, XmlEscape) {
    EXPECT_EQ(xml_escape("a<b>&\"c'"), "a&lt;b&gt;&amp;&quot;c&apos;");
    EXPECT_EQ(xml_escape(std::string("x\x01y")), "x y");
}

TEST(AnovaTools, SvgIsWellFormedWithOneLinePerSplit) {
    auto s = ramp_series(120);
    SplitResult r;
    r.windows = s.size() - 15;
    r.splits = {3, 40, 41, 100};
    const std::string title = "000001.SZ <daily> & \"splits\"";
    std::string doc = render_split_svg(s, r, title);
    EXPECT_EQ(xml_problem(doc), "") << doc.substr(0, 2000);
    EXPECT_EQ(count(doc, "class=\"split\""), r.splits.size());
    EXPECT_NE(doc.find(">sample index<"), std::string::npos);
    EXPECT_NE(doc.find(">value<"), std::string::npos);
    EXPECT_NE(doc.find(">series<"), std::string::npos);
    EXPECT_NE(doc.find("split (4 of 105 windows)"), std::string::npos);
    EXPECT_NE(doc.find("000001.SZ &lt;daily&gt; &amp; &quot;splits&quot;"), std::string::npos);
    EXPECT_EQ(doc.find("<daily>"), std::string::npos);
    EXPECT_NE(doc.find("width=\"1200\""), std::string::npos);

    // Each split line stands at the x of sample i+8 of the polyline.
    size_t p = doc.find("points=\"");
    ASSERT_NE(p, std::string::npos);
    std::istringstream pts(doc.substr(p + 8, doc.find('"', p + 8) - p - 8));
    std::vector<std::string> xs;
    for (std::string pt; pts >> pt;) xs.push_back(pt.substr(0, pt.find(',')));
    ASSERT_EQ(xs.size(), s.size());
    for (size_t i : r.splits)
        EXPECT_NE(doc.find("class=\"split\" x1=\"" + xs[i + 8] + "\""), std::string::npos)
            << "split at window " << i;
}

TEST(AnovaTools, SvgOfEmptyAndFlatSeriesIsWellFormed) {
    SplitResult r;
    EXPECT_EQ(xml_problem(render_split_svg({}, r, "")), "");
    std::vector<double> flat(30, 2.5);
    r.windows = 15;
    EXPECT_EQ(xml_problem(render_split_svg(flat, r, "flat")), "");
}

TEST(AnovaTools, WriteSvgToFileAndReportsErrors) {
    auto s = ramp_series(50);
    SplitResult r;
    r.windows = 35;
    r.splits = {5};
    const std::string path = "/tmp/etcpipe-test-anova-" + std::to_string(::getpid()) + ".svg";
    ASSERT_TRUE(write_split_svg(path, s, r, "t").ok());
    std::ifstream f(path);
    std::stringstream buf;
    buf << f.rdbuf();
    EXPECT_EQ(buf.str(), render_split_svg(s, r, "t"));
    fs::remove(path);
    auto bad = write_split_svg("/nonexistent-dir/x.svg", s, r, "t");
    ASSERT_FALSE(bad.ok());
    EXPECT_EQ(bad.error().kind, ErrorKind::Io);
}

// ---- wire helpers ------------------------------------------------------------

TEST(AnovaTools, EncodeRequestAndAnswerInPlace) {
    auto s = ramp_series(40);
    const Params p = osh_profile();
    for (size_t i = 0; i + 16 <= s.size(); ++i) {
        std::span<const double, ANOVA_SAMPLES> w(s.data() + i, ANOVA_SAMPLES);
        auto req = encode_request(w, ANOVA_ENC_U32, p.frac_bits);
        ASSERT_TRUE(req.has_value());
        ASSERT_EQ(req->size(), sizeof(anova_msg_u32));
        anova_msg_u32 m;
        std::memcpy(&m, req->data(), sizeof m);
        EXPECT_EQ(m.hdr.magic, ANOVA_MAGIC);
        EXPECT_EQ(m.hdr.tag, 0u);
        auto x = fixed_window(s, i, p.frac_bits);
        EXPECT_EQ(0, std::memcmp(m.x, x.data(), sizeof m.x));
        ASSERT_EQ(answer_in_place(*req, ANOVA_ENC_U32, p), Ignored::None);
        std::memcpy(&m, req->data(), sizeof m);
        EXPECT_EQ(m.hdr.tag, decide_u32(x, p)) << "window " << i;
        // The answered datagram is no request any more.
        EXPECT_EQ(answer_in_place(*req, ANOVA_ENC_U32, p), Ignored::Tag);
    }
    // f64: converted on the server side; a negative sample is invalid.
    std::array<double, ANOVA_SAMPLES> w{};
    for (size_t k = 0; k < 16; ++k) w[k] = 3.0 + (k >= 8 ? 1.0 : 0.0);
    auto req = encode_request(w, ANOVA_ENC_F64, 14);
    ASSERT_TRUE(req.has_value());
    ASSERT_EQ(req->size(), sizeof(anova_msg_f64));
    ASSERT_EQ(answer_in_place(*req, ANOVA_ENC_F64, p), Ignored::None);
    anova_msg_f64 m;
    std::memcpy(&m, req->data(), sizeof m);
    EXPECT_EQ(m.hdr.tag, decide_f64(w, p));
    w[3] = -1.0;
    EXPECT_FALSE(encode_request(w, ANOVA_ENC_U32, 14).has_value());
    req = encode_request(w, ANOVA_ENC_F64, 14);
    ASSERT_EQ(answer_in_place(*req, ANOVA_ENC_F64, p), Ignored::None);
    std::memcpy(&m, req->data(), sizeof m);
    EXPECT_EQ(m.hdr.tag, uint64_t{ANOVA_TAG_INVALID});
}

TEST(AnovaTools, AnswerInPlaceIgnoresBadDatagrams) {
    const Params p = osh_profile();
    std::vector<uint8_t> d(sizeof(anova_msg_u32), 0);
    anova_hdr h{ANOVA_MAGIC, 0};
    std::memcpy(d.data(), &h, sizeof h);
    EXPECT_EQ(answer_in_place(std::span<uint8_t>(d.data(), 7), ANOVA_ENC_U32, p), Ignored::Short);
    EXPECT_EQ(answer_in_place(std::span<uint8_t>(d.data(), 16), ANOVA_ENC_U32, p),
              Ignored::Short);
    EXPECT_EQ(answer_in_place(d, ANOVA_ENC_F64, p), Ignored::Short);  // u32-sized, f64 server
    auto bad = d;
    bad[0] ^= 1;
    EXPECT_EQ(answer_in_place(bad, ANOVA_ENC_U32, p), Ignored::Magic);
    bad = d;
    bad[8] = 5;
    EXPECT_EQ(answer_in_place(bad, ANOVA_ENC_U32, p), Ignored::Tag);
    EXPECT_EQ(answer_in_place(d, ANOVA_ENC_U32, p), Ignored::None);
}

TEST(AnovaTools, UdpFrameHasValidChecksums) {
    std::vector<uint8_t> payload(sizeof(anova_msg_u32), 0xab);
    payload.push_back(0x17);  // odd length
    auto f = build_udp_frame(payload, 9877, 1234);
    ASSERT_EQ(f.size(), 14 + 20 + 8 + payload.size());
    auto sum16 = [](const uint8_t* p, size_t n, uint32_t sum) {
        for (size_t i = 0; i < n; i += 2) sum += uint32_t{p[i]} << 8 | (i + 1 < n ? p[i + 1] : 0);
        while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
        return sum;
    };
    EXPECT_EQ(sum16(f.data() + 14, 20, 0), 0xffffu);
    const size_t udp_len = 8 + payload.size();
    uint32_t pseudo = sum16(f.data() + 14 + 12, 8, 0) + IPPROTO_UDP + udp_len;
    EXPECT_EQ(sum16(f.data() + 34, udp_len, pseudo), 0xffffu);
    EXPECT_EQ(f[36] << 8 | f[37], 9877);
    EXPECT_EQ(0, std::memcmp(f.data() + 42, payload.data(), payload.size()));
}

// ---- serve and send inside a private network namespace ------------------------

namespace {

bool is_root() { return ::geteuid() == 0; }

// A server thread in namespace `ns`; stopped and joined by the destructor.
struct ServerThread {
    std::atomic<bool> stop{false}, ready{false};
    Result<ServeStats> stats = Error{ErrorKind::Io, 0, "serve", "not run", {}, {}};
    std::thread thread;

    ServerThread(const std::string& ns, ServeOptions o) {
        thread = std::thread([this, ns, o]() mutable {
            if (auto e = enter_netns(ns); !e) {
                stats = e.error();
                ready = true;
                return;
            }
            o.stop = &stop;
            o.ready = &ready;
            o.poll_ms = 20;
            stats = serve(o);
            ready = true;  // also when bind failed
        });
        for (int i = 0; i < 5000 && !ready; ++i)
            std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    void finish() {
        stop = true;
        if (thread.joinable()) thread.join();
    }
    ~ServerThread() { finish(); }
};

// Runs fn on a thread inside namespace `ns`.
template <class F>
void run_in(const std::string& ns, F&& fn) {
    std::thread t([&] {
        auto e = enter_netns(ns);
        ASSERT_TRUE(e.ok()) << e.error().message();
        fn();
    });
    t.join();
}

}  // namespace

TEST(AnovaToolsNet, ServeAndSendAgreeWithDecideU32OnRealSeries) {
    if (!is_root()) GTEST_SKIP() << "needs root to create a network namespace";
    auto series = read_series(series_path());
    ASSERT_TRUE(series.ok()) << series.error().message();
    ASSERT_GE(series->size(), 100u);
    auto ns = ScopedNetns::create("etcat" + std::to_string(::getpid()));
    ASSERT_TRUE(ns.ok()) << ns.error().message();

    ServeOptions so;
    so.bind = "127.0.0.1";
    so.port = 9877;
    ServerThread srv(ns->name(), so);
    ASSERT_TRUE(srv.ready.load());

    Result<SendResult> sent = Error{ErrorKind::Io, 0, "send", "not run", {}, {}};
    std::vector<std::vector<uint8_t>> received;  // after the junk
    run_in(ns->name(), [&] {
        SendOptions o;
        o.target = "127.0.0.1";
        o.port = 9877;
        o.encoding = ANOVA_ENC_U32;
        o.frac_bits = 14;
        o.timeout_ms = 500;
        sent = send_series(o, *series);

        // Junk first, then one good request: only the good one is answered.
        UniqueFd fd(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
        sockaddr_in sa{};
        sa.sin_family = AF_INET;
        sa.sin_port = htons(9877);
        ::inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
        ASSERT_EQ(::connect(fd.get(), reinterpret_cast<sockaddr*>(&sa), sizeof sa), 0);
        std::span<const double, ANOVA_SAMPLES> w(series->data(), ANOVA_SAMPLES);
        auto good = encode_request(w, ANOVA_ENC_U32, 14).value();
        auto bad_magic = good;
        bad_magic[7] ^= 0x80;
        auto bad_tag = good;
        bad_tag[8] = ANOVA_TAG_SPLIT;
        std::vector<uint8_t> shorty(good.begin(), good.begin() + 40);
        for (const auto* d : {&bad_magic, &bad_tag, &shorty, &good})
            ASSERT_EQ(::send(fd.get(), d->data(), d->size(), 0), static_cast<ssize_t>(d->size()));
        for (;;) {
            pollfd p{fd.get(), POLLIN, 0};
            if (::poll(&p, 1, 300) <= 0) break;
            std::vector<uint8_t> buf(2048);
            ssize_t n = ::recv(fd.get(), buf.data(), buf.size(), 0);
            if (n < 0) break;
            buf.resize(static_cast<size_t>(n));
            received.push_back(buf);
        }
    });
    srv.finish();
    ASSERT_TRUE(sent.ok()) << sent.error().message();
    ASSERT_TRUE(srv.stats.ok()) << srv.stats.error().message();

    const size_t windows = series->size() - 15;
    EXPECT_EQ(sent->split.windows, windows);
    EXPECT_EQ(sent->answered, windows);
    EXPECT_EQ(sent->lost, 0u);
    ASSERT_EQ(sent->tags.size(), windows);
    size_t ref_splits = 0, mismatches = 0;
    for (size_t i = 0; i < windows; ++i) {
        uint32_t ref = decide_u32(fixed_window(*series, i, 14), osh_profile());
        ref_splits += ref == ANOVA_TAG_SPLIT;
        if (sent->tags[i] != ref && mismatches++ < 5)
            ADD_FAILURE() << "window " << i << ": serve said " << int{sent->tags[i]}
                          << ", decide_u32 " << ref;
    }
    EXPECT_EQ(mismatches, 0u);
    EXPECT_EQ(sent->split.splits.size(), ref_splits);
    if (windows == 3239) {
        EXPECT_EQ(ref_splits, 748u) << "SPEC §6 golden figure";
    }

    // The junk was counted and not answered; the good request was.
    ASSERT_EQ(received.size(), 1u);
    EXPECT_EQ(received[0].size(), sizeof(anova_msg_u32));
    EXPECT_EQ(srv.stats->ignored_magic, 1u);
    EXPECT_EQ(srv.stats->ignored_tag, 1u);
    EXPECT_EQ(srv.stats->ignored_short, 1u);
    EXPECT_EQ(srv.stats->requests, windows + 1);
    EXPECT_EQ(srv.stats->replies, windows + 1);
    EXPECT_EQ(srv.stats->splits, ref_splits + (sent->tags[0] == ANOVA_TAG_SPLIT));
    std::string text = format_send_result(*series, *sent);
    EXPECT_NE(text.find("splits: " + std::to_string(ref_splits) + " of " +
                        std::to_string(windows) + " windows"),
              std::string::npos);
}

TEST(AnovaToolsNet, F64ServerMarksUnrepresentableWindowsInvalid) {
    if (!is_root()) GTEST_SKIP() << "needs root to create a network namespace";
    auto ns = ScopedNetns::create("etcaf" + std::to_string(::getpid()));
    ASSERT_TRUE(ns.ok()) << ns.error().message();
    ServeOptions so;
    so.bind = "::1";
    so.port = 9000;
    so.encoding = ANOVA_ENC_F64;
    ServerThread srv(ns->name(), so);
    ASSERT_TRUE(srv.ready.load());
    auto s = ramp_series(40);
    s[20] = -2.0;  // windows 5..20 hold it
    Result<SendResult> f64 = Error{ErrorKind::Io, 0, "send", "not run", {}, {}};
    Result<SendResult> u32 = Error{ErrorKind::Io, 0, "send", "not run", {}, {}};
    Result<SendResult> closed = Error{ErrorKind::Io, 0, "send", "not run", {}, {}};
    run_in(ns->name(), [&] {
        SendOptions o;
        o.target = "::1";
        o.port = 9000;
        o.encoding = ANOVA_ENC_F64;
        f64 = send_series(o, s);
        o.encoding = ANOVA_ENC_U32;  // converted by the client: not sent at all
        o.port = 9001;               // nobody there
        u32 = send_series(o, std::span<const double>(s).subspan(5, 16));
        closed = send_series(o, std::span<const double>(s).first(20));
    });
    srv.finish();
    ASSERT_TRUE(f64.ok()) << f64.error().message();
    EXPECT_EQ(f64->split.windows, 25u);
    EXPECT_EQ(f64->split.invalid, 16u);
    for (size_t i = 0; i < 25; ++i) {
        std::array<double, ANOVA_SAMPLES> w;
        std::copy_n(s.begin() + static_cast<long>(i), 16, w.begin());
        EXPECT_EQ(f64->tags[i], decide_f64(w, osh_profile())) << "window " << i;
    }
    ASSERT_TRUE(u32.ok()) << u32.error().message();
    EXPECT_EQ(u32->unrepresentable, 1u);
    EXPECT_EQ(u32->sent, 0u);
    ASSERT_FALSE(closed.ok());
    EXPECT_EQ(closed.error().code, ECONNREFUSED);
    ASSERT_TRUE(srv.stats.ok());
    EXPECT_EQ(srv.stats->invalid, 16u);
}

TEST(AnovaToolsNet, ServeStopsAfterMaxRequests) {
    if (!is_root()) GTEST_SKIP() << "needs root to create a network namespace";
    auto ns = ScopedNetns::create("etcam" + std::to_string(::getpid()));
    ASSERT_TRUE(ns.ok()) << ns.error().message();
    std::atomic<bool> ready{false};
    Result<ServeStats> stats = Error{ErrorKind::Io, 0, "serve", "not run", {}, {}};
    std::thread srv([&] {
        if (auto e = enter_netns(ns->name()); !e) {
            stats = e.error();
            ready = true;
            return;
        }
        ServeOptions o;
        o.bind = "127.0.0.1";
        o.max_requests = 3;  // no stop flag: only the count ends it
        o.ready = &ready;
        stats = serve(o);
        ready = true;
    });
    for (int i = 0; i < 5000 && !ready; ++i)
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
    Result<SendResult> sent = Error{ErrorKind::Io, 0, "send", "not run", {}, {}};
    run_in(ns->name(), [&] {
        SendOptions o;
        o.timeout_ms = 100;
        sent = send_series(o, ramp_series(20));  // 5 windows, only 3 answered
    });
    srv.join();
    ASSERT_TRUE(stats.ok()) << stats.error().message();
    EXPECT_EQ(stats->requests, 3u);
    EXPECT_EQ(stats->replies, 3u);
    ASSERT_TRUE(sent.ok()) << sent.error().message();
    EXPECT_EQ(sent->answered, 3u);
    EXPECT_EQ(sent->lost, 2u);
}

// ---- the benchmark's topology -------------------------------------------------

TEST(AnovaToolsNet, BenchTopologyIsCreatedAndRemoved) {
    if (!is_root()) GTEST_SKIP() << "needs root to create network namespaces";
    std::string a, b;
    {
        auto t = BenchTopology::create();
        ASSERT_TRUE(t.ok()) << t.error().message();
        a = t->ns_a();
        b = t->ns_b();
        EXPECT_TRUE(netns_exists(a));
        EXPECT_TRUE(netns_exists(b));
        EXPECT_TRUE(run_command({"ip", "-n", a, "link", "show", t->veth_a()}).ok());
        EXPECT_TRUE(run_command({"ip", "-n", b, "link", "show", t->veth_b()}).ok());
        EXPECT_FALSE(run_command({"ip", "link", "show", t->veth_a()}).ok());  // not in ours
    }
    EXPECT_FALSE(netns_exists(a));
    EXPECT_FALSE(netns_exists(b));
}

TEST(AnovaToolsNet, BenchTopologyCleansUpAfterPartialFailure) {
    if (!is_root()) GTEST_SKIP() << "needs root to create network namespaces";
    const std::string pid = std::to_string(::getpid());
    auto squatter = ScopedNetns::create("etcanB" + pid);  // makes the second step fail
    ASSERT_TRUE(squatter.ok()) << squatter.error().message();
    auto t = BenchTopology::create();
    ASSERT_FALSE(t.ok());
    EXPECT_EQ(t.error().code, EEXIST) << t.error().message();
    EXPECT_FALSE(netns_exists("etcanA" + pid));
    EXPECT_TRUE(netns_exists("etcanB" + pid));  // not ours to remove
    squatter->reset();
    EXPECT_FALSE(netns_exists("etcanB" + pid));
}

TEST(AnovaToolsNet, SendToXdpTxOnVethAgreesWithDecideU32) {
    if (!is_root()) GTEST_SKIP() << "needs root for network namespaces and XDP";
    auto series = read_series(series_path());
    ASSERT_TRUE(series.ok()) << series.error().message();
    const std::vector<double>& head = *series;  // every window of the real series
    ProgramOptions po;
    po.reply = ANOVA_REPLY_TX;
    auto prog = Program::load(po);
    ASSERT_TRUE(prog.ok()) << prog.error().message();
    auto pass = Skeleton<xdp_pass_bpf>::open("xdp_pass");
    ASSERT_TRUE(pass.ok());
    ASSERT_TRUE(pass->load("xdp_pass").ok());
    auto topo = BenchTopology::create();
    ASSERT_TRUE(topo.ok()) << topo.error().message();
    // xdp_anova on B; xdp_pass on A so veth hands XDP_TX frames to A (NAPI).
    int if_b = 0, if_a = 0;
    run_in(topo->ns_b(), [&] {
        if_b = interface_index(topo->veth_b()).value();
        ASSERT_EQ(bpf_xdp_attach(if_b, prog->prog_fd(), XDP_FLAGS_DRV_MODE, nullptr), 0);
    });
    run_in(topo->ns_a(), [&] {
        if_a = interface_index(topo->veth_a()).value();
        ASSERT_EQ(bpf_xdp_attach(if_a, bpf_program__fd(pass->get()->progs.xdp_pass),
                                 XDP_FLAGS_DRV_MODE, nullptr),
                  0);
    });
    Result<SendResult> sent = Error{ErrorKind::Io, 0, "send", "not run", {}, {}};
    run_in(topo->ns_a(), [&] {
        SendOptions o;
        o.target = BenchTopology::kAddrB;
        o.udp_checksum = false;  // see SendOptions::udp_checksum
        o.timeout_ms = 500;
        sent = send_series(o, head);
    });
    run_in(topo->ns_b(), [&] { EXPECT_EQ(bpf_xdp_detach(if_b, XDP_FLAGS_DRV_MODE, nullptr), 0); });
    run_in(topo->ns_a(), [&] { EXPECT_EQ(bpf_xdp_detach(if_a, XDP_FLAGS_DRV_MODE, nullptr), 0); });
    ASSERT_TRUE(sent.ok()) << sent.error().message();
    ASSERT_EQ(sent->answered, head.size() - 15);
    size_t wrong = 0;
    for (size_t i = 0; i < sent->tags.size(); ++i) {
        uint32_t ref = decide_u32(fixed_window(head, i, 14), osh_profile());
        if (sent->tags[i] != ref && wrong++ < 5)
            ADD_FAILURE() << "window " << i << ": xdp_anova said " << int{sent->tags[i]}
                          << ", decide_u32 " << ref;
    }
    EXPECT_EQ(wrong, 0u);
}

TEST(AnovaToolsNet, LatencyBenchTinyRunLeavesNothingBehind) {
    if (!is_root()) GTEST_SKIP() << "needs root for network namespaces and XDP";
    BenchOptions o;
    o.round_trips = 200;
    o.block = 50;
    o.verify = 16;
    o.test_run_repeat = 100;
    o.series_path = series_path();
    auto r = latency_bench(o);
    const std::string pid = std::to_string(::getpid());
    EXPECT_FALSE(netns_exists("etcanA" + pid));
    EXPECT_FALSE(netns_exists("etcanB" + pid));
    ASSERT_TRUE(r.ok()) << r.error().message();
    EXPECT_EQ(r->verified, 16u);
    EXPECT_FALSE(r->aborted);
    EXPECT_EQ(r->xdp.samples + r->xdp.lost, 200u);
    EXPECT_EQ(r->user.samples + r->user.lost, 200u);
    EXPECT_EQ(r->xdp.wrong, 0u);
    EXPECT_EQ(r->user.wrong, 0u);
    EXPECT_GT(r->tsc_hz, 0.0);
    EXPECT_LE(r->xdp.p50_us, r->xdp.p99_us);
    EXPECT_LE(r->xdp.p99_us, r->xdp.max_us);
    EXPECT_NE(format_bench(*r).find("ratio user-space / XDP"), std::string::npos);
}
