// `etcpipe nicnn bench` (loader/nicnn/latency_bench.hpp over
// common/udp_latency.hpp): a small run in its own two namespaces, through
// the library and through the CLI. Every reply, from xdp_nicnn (XDP_TX) and
// from the user-space server, must equal nicnn::reference of its image, and
// nothing may be left behind: no namespace, no libxdp dispatcher state.
// Needs root and python3-sklearn's digits; skipped with the reason without.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <string>

#include "common/netns.hpp"
#include "nicnn/latency_bench.hpp"
#include "tests/common/shell.hpp"

namespace etcpipe::test {
namespace {

namespace fs = std::filesystem;
using etcpipe::testing::sh;

#define SKIP_UNLESS_BENCH_CAN_RUN()                                                         \
    do {                                                                                    \
        if (geteuid() != 0) GTEST_SKIP() << "needs root for network namespaces and XDP";    \
        if (nicnn::default_digits_path().empty())                                           \
            GTEST_SKIP() << "python3-sklearn's digits.csv.gz is not installed";             \
    } while (0)

// libxdp's dispatcher state (bpffs): what an attachment left must be gone.
size_t libxdp_entries() {
    std::error_code ec;
    size_t n = 0;
    for (auto it = fs::directory_iterator("/sys/fs/bpf/xdp", ec);
         !ec && it != fs::directory_iterator(); it.increment(ec))
        ++n;
    return n;
}

TEST(NicnnBench, TinyRunAnswersRightAndLeavesNothingBehind) {
    SKIP_UNLESS_BENCH_CAN_RUN();
    const size_t xdp_before = libxdp_entries();
    nicnn::BenchOptions o;
    o.round_trips = 300;  // six blocks of 50 per target, fewer than the 450 test images
    o.block = 50;
    o.verify = 16;
    o.test_run_repeat = 100;
    o.reference_calls = 1000;
    o.max_seconds = 30;
    auto r = nicnn::latency_bench(o);
    const std::string pid = std::to_string(::getpid());
    EXPECT_FALSE(netns_exists("etcnnA" + pid));
    EXPECT_FALSE(netns_exists("etcnnB" + pid));
    EXPECT_EQ(libxdp_entries(), xdp_before);
    ASSERT_TRUE(r.ok()) << r.error().message();
    EXPECT_EQ(r->verified, 16u);
    EXPECT_FALSE(r->aborted);
    EXPECT_EQ(r->images, 1797u - nicnn::kTrainImages);
    // Every reply right; none lost on a quiet veth.
    EXPECT_EQ(r->xdp.wrong, 0u);
    EXPECT_EQ(r->user.wrong, 0u);
    EXPECT_EQ(r->xdp.samples + r->xdp.lost, 300u);
    EXPECT_EQ(r->user.samples + r->user.lost, 300u);
    EXPECT_LE(r->xdp.lost + r->user.lost, 3u);
    EXPECT_GT(r->tsc_hz, 0.0);
    EXPECT_GT(r->reference_ns, 0.0);
    EXPECT_GT(r->test_run_prog_ns, 0.0);
    EXPECT_LE(r->xdp.p50_us, r->xdp.p99_us);
    EXPECT_LE(r->xdp.p99_us, r->xdp.max_us);
    const std::string text = nicnn::format_bench(*r);
    EXPECT_NE(text.find("ratio user-space / XDP"), std::string::npos) << text;
    EXPECT_NE(text.find("xdp_nicnn (native XDP, XDP_TX)"), std::string::npos) << text;
    EXPECT_NE(text.find("nicnn::reference alone"), std::string::npos) << text;
}

TEST(NicnnBench, CliSmallRunExitsZeroAndRemovesItsNamespaces) {
    SKIP_UNLESS_BENCH_CAN_RUN();
    const std::string bin = testing::etcpipe_bin();
    if (!fs::exists(bin)) GTEST_SKIP() << bin << " not built (run make)";
    const size_t xdp_before = libxdp_entries();
    auto r = sh("timeout 60 " + bin + " nicnn bench --images 200 --split all");
    EXPECT_EQ(r.status, 0) << r.out << r.err;
    EXPECT_NE(r.out.find("verified before timing: 32 images per target agree with "
                         "nicnn::reference"),
              std::string::npos)
        << r.out;
    EXPECT_NE(r.out.find("1797 distinct images"), std::string::npos) << r.out;
    EXPECT_EQ(r.err.find("wrong results"), std::string::npos) << r.err;
    auto ns = sh("ip netns list");
    EXPECT_EQ(ns.out.find("etcnn"), std::string::npos) << ns.out;
    EXPECT_EQ(libxdp_entries(), xdp_before);
    // A refused run builds nothing either.
    auto bad = sh("timeout 20 " + bin + " nicnn bench --images -1");
    EXPECT_EQ(bad.status, 2) << bad.err;
    EXPECT_EQ(sh("ip netns list").out.find("etcnn"), std::string::npos);
}

}  // namespace
}  // namespace etcpipe::test
