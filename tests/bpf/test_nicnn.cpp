// BPF_PROG_TEST_RUN tests of bpf/nicnn.bpf.c through etcpipe::nicnn, and of
// the C++ reference. Tests that load the program need root; without it they
// are skipped with the reason. The digits are Debian python3-sklearn's.
//
// What is pinned down:
// - the XDP program's class, 10 scores and 10 base-2 softmax exponents equal the
//   plain C++ reference on all 1,797 real digit images, and on random bytes
//   (only the low 4 bits of a pixel count, in both);
// - the C++ reference gets as many test images right as the training
//   script's own NumPy integer model (NICNN_TEST_CORRECT, generated);
// - the UDP checksum stays valid; XDP_TX replies swap MACs, addresses and
//   ports; a request whose result area is not zero is not answered;
// - what is not a request passes byte-identical.
#include <gtest/gtest.h>
#include <linux/bpf.h>
#include <unistd.h>

#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <vector>

#include "common/test_run.hpp"
#include "common/udp_frame.hpp"
#include "etcpipe/nicnn_model.h"
#include "nicnn/nicnn.hpp"

namespace etcpipe::test {
namespace {

using nicnn::Image;
using nicnn::Pixels;

#define SKIP_UNLESS_ROOT()                                                                 \
    do {                                                                                   \
        if (geteuid() != 0) GTEST_SKIP() << "needs root (CAP_BPF, CAP_NET_ADMIN) to load BPF"; \
    } while (0)

std::vector<Image> digits_or_skip() {
    const std::string path = nicnn::default_digits_path();
    if (path.empty()) return {};
    auto d = nicnn::load_digits(path);
    if (!d) ADD_FAILURE() << d.error().message();
    return d ? *d : std::vector<Image>{};
}

void expect_same(const nicnn_result& got, const nicnn_result& want, size_t index) {
    EXPECT_EQ(got.cls, want.cls) << "image " << index;
    for (int k = 0; k < NICNN_CLASSES; ++k) {
        EXPECT_EQ(got.score[k], want.score[k]) << "image " << index << " class " << k;
        EXPECT_EQ(got.shift[k], want.shift[k]) << "image " << index << " class " << k;
    }
}

TEST(NicnnReference, MatchesTheTrainingScriptOnTheTestImages) {
    auto d = digits_or_skip();
    if (d.empty()) GTEST_SKIP() << "python3-sklearn's digits.csv.gz is not installed";
    ASSERT_EQ(d.size(), 1797u);
    int correct = 0;
    for (size_t i = nicnn::kTrainImages; i < d.size(); ++i)
        correct += static_cast<int>(nicnn::reference(d[i].px).cls) == d[i].label;
    EXPECT_EQ(correct, NICNN_TEST_CORRECT);
}

TEST(NicnnReference, OnlyTheLowFourBitsOfAPixelCount) {
    Pixels a{}, b{};
    for (size_t i = 0; i < a.size(); ++i) {
        a[i] = static_cast<uint8_t>((i * 7) % 16);
        b[i] = static_cast<uint8_t>(a[i] | ((i % 3) << 4) | 0x80);
    }
    const auto ra = nicnn::reference(a), rb = nicnn::reference(b);
    EXPECT_EQ(std::memcmp(&ra, &rb, sizeof(ra)), 0);
    EXPECT_EQ(nicnn::pixel_of(16), 15);
    EXPECT_EQ(nicnn::pixel_of(-1), 0);
    EXPECT_EQ(nicnn::pixel_of(7.4), 7);
}

TEST(NicnnXdp, EqualsTheReferenceOnEveryDigit) {
    SKIP_UNLESS_ROOT();
    auto d = digits_or_skip();
    if (d.empty()) GTEST_SKIP() << "python3-sklearn's digits.csv.gz is not installed";
    auto prog = nicnn::Program::load();
    ASSERT_TRUE(prog) << prog.error().message();
    size_t same = 0;
    for (size_t i = 0; i < d.size(); ++i) {
        auto v = prog->classify(d[i].px);
        ASSERT_TRUE(v) << v.error().message();
        EXPECT_EQ(v->action, XDP_PASS);
        EXPECT_TRUE(v->checksums_ok) << "image " << i;
        const auto want = nicnn::reference(d[i].px);
        expect_same(v->result, want, i);
        same += std::memcmp(&v->result, &want, sizeof(want)) == 0;
    }
    EXPECT_EQ(same, d.size());
}

TEST(NicnnXdp, EqualsTheReferenceOnRandomBytes) {
    SKIP_UNLESS_ROOT();
    auto prog = nicnn::Program::load();
    ASSERT_TRUE(prog) << prog.error().message();
    std::mt19937 rng(7);
    for (int n = 0; n < 2000; ++n) {
        Pixels px;
        for (auto& p : px) p = static_cast<uint8_t>(rng());
        auto v = prog->classify(px);
        ASSERT_TRUE(v) << v.error().message();
        expect_same(v->result, nicnn::reference(px), static_cast<size_t>(n));
    }
}

// Runs a frame and returns what came back.
std::vector<uint8_t> run_frame(int fd, const std::vector<uint8_t>& frame, int& action) {
    TestRunBuffers bufs;
    auto r = xdp_test_run(fd, frame, {}, 1, bufs);
    EXPECT_TRUE(r) << (r ? "" : r.error().message());
    if (!r) return {};
    action = r->action;
    return {r->frame.begin(), r->frame.end()};
}

TEST(NicnnXdp, ChecksumStaysValid) {
    SKIP_UNLESS_ROOT();
    auto prog = nicnn::Program::load();
    ASSERT_TRUE(prog) << prog.error().message();
    std::mt19937 rng(3);
    for (int n = 0; n < 200; ++n) {
        Pixels px;
        for (auto& p : px) p = static_cast<uint8_t>(rng() & 15);
        const auto req = nicnn::build_request(px, n % 2 == 1);
        const auto frame = build_udp_frame(req, NICNN_PORT);
        ASSERT_TRUE(udp_frame_checksums_ok(frame));
        int action = -1;
        const auto out = run_frame(prog->prog_fd(), frame, action);
        ASSERT_EQ(out.size(), frame.size());
        EXPECT_EQ(action, n % 2 == 1 ? XDP_TX : XDP_PASS);
        EXPECT_TRUE(udp_frame_checksums_ok(out)) << "request " << n;
        nicnn_msg m;
        std::memcpy(&m, out.data() + 42, sizeof(m));
        EXPECT_EQ(m.tag, static_cast<uint32_t>(NICNN_TAG_CLASSIFIED));
        const auto want = nicnn::reference(px);
        EXPECT_EQ(std::memcmp(&m.result, &want, sizeof(want)), 0);
    }
}

TEST(NicnnXdp, ReplySwapsEndpointsAndKeepsChecksums) {
    SKIP_UNLESS_ROOT();
    auto prog = nicnn::Program::load();
    ASSERT_TRUE(prog) << prog.error().message();
    Pixels px{};
    for (size_t i = 0; i < px.size(); ++i) px[i] = static_cast<uint8_t>(i % 16);
    const auto frame = build_udp_frame(nicnn::build_request(px, true), NICNN_PORT, 5555);
    int action = -1;
    const auto out = run_frame(prog->prog_fd(), frame, action);
    ASSERT_EQ(out.size(), frame.size());
    EXPECT_EQ(action, XDP_TX);
    EXPECT_TRUE(udp_frame_checksums_ok(out));
    EXPECT_EQ(std::memcmp(out.data(), frame.data() + 6, 6), 0);      // dst MAC = old src
    EXPECT_EQ(std::memcmp(out.data() + 6, frame.data(), 6), 0);      // src MAC = old dst
    EXPECT_EQ(std::memcmp(out.data() + 26, frame.data() + 30, 4), 0);  // addresses
    EXPECT_EQ(std::memcmp(out.data() + 30, frame.data() + 26, 4), 0);
    EXPECT_EQ(std::memcmp(out.data() + 34, frame.data() + 36, 2), 0);  // ports
    EXPECT_EQ(std::memcmp(out.data() + 36, frame.data() + 34, 2), 0);
}

TEST(NicnnXdp, WhatIsNotARequestPassesUntouched) {
    SKIP_UNLESS_ROOT();
    auto prog = nicnn::Program::load();
    ASSERT_TRUE(prog) << prog.error().message();
    Pixels px{};
    const auto good = nicnn::build_request(px, true);
    struct Case {
        const char* what;
        std::vector<uint8_t> frame;
    };
    std::vector<Case> cases;
    cases.push_back({"other port", build_udp_frame(good, NICNN_PORT + 1)});
    auto bad_magic = good;
    bad_magic[0] ^= 1;
    cases.push_back({"wrong magic", build_udp_frame(bad_magic, NICNN_PORT)});
    auto answered = good;
    answered[8] = NICNN_TAG_CLASSIFIED;
    cases.push_back({"already answered", build_udp_frame(answered, NICNN_PORT)});
    cases.push_back({"short", build_udp_frame(std::vector<uint8_t>(good.begin(), good.end() - 1), NICNN_PORT)});
    auto dirty = good;
    dirty[offsetof(nicnn_msg, result) + 7] = 1;  // a request's result area must be zero
    cases.push_back({"result area not zero", build_udp_frame(dirty, NICNN_PORT)});
    auto dirty_end = good;
    dirty_end.back() = 0x80;
    cases.push_back({"last result byte not zero", build_udp_frame(dirty_end, NICNN_PORT)});
    for (const auto& c : cases) {
        int action = -1;
        const auto out = run_frame(prog->prog_fd(), c.frame, action);
        EXPECT_EQ(action, XDP_PASS) << c.what;
        EXPECT_EQ(out, c.frame) << c.what;
    }
}

}  // namespace
}  // namespace etcpipe::test

namespace etcpipe::test {
namespace {

// A .npy file as NumPy writes it (format 1.0, little-endian, C order).
void write_npy(const std::string& path, const std::string& descr, const std::string& shape,
               const void* data, size_t bytes) {
    std::string h = "{'descr': '" + descr + "', 'fortran_order': False, 'shape': " + shape + ", }";
    while ((10 + h.size() + 1) % 64) h += ' ';
    h += '\n';
    std::FILE* f = std::fopen(path.c_str(), "wb");
    ASSERT_NE(f, nullptr);
    const uint8_t magic[8] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0};
    const uint16_t len = static_cast<uint16_t>(h.size());
    std::fwrite(magic, 1, 8, f);
    std::fwrite(&len, 2, 1, f);
    std::fwrite(h.data(), 1, h.size(), f);
    std::fwrite(data, 1, bytes, f);
    std::fclose(f);
}

TEST(NicnnImages, NpyFloatImagesAndIntegerLabelsReadAsTheDigits) {
    auto d = digits_or_skip();
    if (d.empty()) GTEST_SKIP() << "python3-sklearn's digits.csv.gz is not installed";
    const size_t n = 100;
    std::vector<double> px(n * 64);
    std::vector<int64_t> labels(n);
    for (size_t i = 0; i < n; ++i) {
        for (size_t j = 0; j < 64; ++j) px[i * 64 + j] = d[i].px[j];
        labels[i] = d[i].label;
    }
    char dir[] = "/tmp/etcpipe-nicnn-XXXXXX";
    ASSERT_NE(mkdtemp(dir), nullptr);
    const std::string img = std::string(dir) + "/x.npy", lab = std::string(dir) + "/y.npy";
    write_npy(img, "<f8", "(100, 8, 8)", px.data(), px.size() * sizeof(double));
    write_npy(lab, "<i8", "(100,)", labels.data(), labels.size() * sizeof(int64_t));
    auto got = nicnn::load_npy_images(img, lab);
    ASSERT_TRUE(got) << got.error().message();
    ASSERT_EQ(got->size(), n);
    for (size_t i = 0; i < n; ++i) {
        EXPECT_EQ((*got)[i].px, d[i].px) << i;
        EXPECT_EQ((*got)[i].label, d[i].label) << i;
    }
    // wrong shapes and label counts are refused with the reason
    write_npy(lab, "<i8", "(99,)", labels.data(), 99 * sizeof(int64_t));
    auto bad = nicnn::load_npy_images(img, lab);
    ASSERT_FALSE(bad);
    EXPECT_NE(bad.error().message().find("100 integer labels"), std::string::npos) << bad.error().message();
    write_npy(img, "<f8", "(50, 128)", px.data(), 50 * 128 * sizeof(double));
    EXPECT_FALSE(nicnn::load_npy_images(img));
    std::remove(img.c_str());
    std::remove(lab.c_str());
    rmdir(dir);
}

}  // namespace
}  // namespace etcpipe::test
