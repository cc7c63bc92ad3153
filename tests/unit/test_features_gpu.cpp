// GPU feature extractor (gpu/features.cu) against the CPU extractor: the
// output must be byte-identical (rows and every tensor byte) on the nDPI
// captures and on synthetic stress inputs built here. Every test skips, with
// the reason printed, when no CUDA device is usable (or CUDA was not built).
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include "gpu/features.hpp"
#include "common/pcap.hpp"
#include "tests/common/expect_ok.hpp"
#include "tests/common/skip.hpp"

namespace fs = std::filesystem;
using namespace etcpipe;
using namespace etcpipe::features;

namespace {

using Bytes = std::vector<uint8_t>;

const char* kSpec = "payload:6x64,packet:5x80,sizes:6,iat:6,port:2";

std::vector<Feature> spec_of(const char* s) {
    auto r = parse_spec(s);
    EXPECT_OK(r);
    return r.ok() ? r.value() : std::vector<Feature>{};
}

// One synthetic frame: Ethernet (optional VLAN) / IPv4 or IPv6 / TCP, UDP or
// protocol 47 with `payload` bytes of L4 payload (bytes derived from seed).
struct Pkt {
    uint8_t family = 4;
    uint8_t proto = 6;
    uint32_t src = 0, dst = 0;  // address seeds
    uint16_t sport = 0, dport = 0;
    uint32_t payload = 0;
    uint16_t vlan = 0;
    uint32_t seed = 0;
    uint32_t truncate_to = 0;  // 0: full frame
};

Bytes build(const Pkt& p) {
    Bytes f;
    auto u8 = [&](uint32_t v) { f.push_back(static_cast<uint8_t>(v)); };
    auto u16 = [&](uint32_t v) {
        u8(v >> 8);
        u8(v);
    };
    for (int i = 0; i < 12; ++i) u8(0x10 + i);
    if (p.vlan) {
        u16(0x8100);
        u16(p.vlan);
    }
    const uint32_t l4h = p.proto == 6 ? 20 : p.proto == 17 ? 8 : 0;
    const uint32_t l4len = l4h + p.payload;
    if (p.family == 4) {
        u16(0x0800);
        u8(0x45);
        u8(0);
        u16(20 + l4len);
        u16(p.seed & 0xffff);
        u16(0);
        u8(64);
        u8(p.proto);
        u16(0);
        for (uint32_t a : {p.src, p.dst}) {
            u8(10);
            u8(a >> 16);
            u8(a >> 8);
            u8(a);
        }
    } else {
        u16(0x86dd);
        u8(0x60);
        u8(0);
        u16(0);
        u16(l4len);
        u8(p.proto);
        u8(64);
        for (uint32_t a : {p.src, p.dst}) {
            u16(0x2001);
            u16(0x0db8);
            for (int i = 0; i < 8; ++i) u8(0);
            u8(a >> 24);
            u8(a >> 16);
            u8(a >> 8);
            u8(a);
        }
    }
    if (p.proto == 6) {
        u16(p.sport);
        u16(p.dport);
        for (int i = 0; i < 8; ++i) u8(p.seed >> (i % 4 * 8));
        u8(0x50);
        u8(0x18);
        u16(1024);
        u16(0);
        u16(0);
    } else if (p.proto == 17) {
        u16(p.sport);
        u16(p.dport);
        u16(l4len);
        u16(0);
    }
    for (uint32_t i = 0; i < p.payload; ++i) u8((p.seed * 2654435761u + i * 7u) >> 5);
    if (p.truncate_to && p.truncate_to < f.size()) f.resize(p.truncate_to);
    return f;
}

struct Frame {
    Bytes data;
    uint64_t ts;
};

// Runs `frames` through an extractor in batches whose sizes come from `sizes`
// (cycled).
Result<Output> run(Extractor& x, const std::vector<Frame>& frames, std::vector<size_t> sizes) {
    Batch b;
    uint64_t index = 0;
    size_t si = 0;
    size_t i = 0;
    while (i < frames.size()) {
        const size_t want = std::max<size_t>(1, sizes[si++ % sizes.size()]);
        b.clear();
        b.first_index = index;
        for (size_t k = 0; k < want && i < frames.size(); ++k, ++i)
            b.add(frames[i].data, frames[i].ts);
        index += b.size();
        auto r = x.push(b);
        if (!r) return r.error();
    }
    return x.finish();
}

std::string key_str(const etc_flow_key& k) {
    char s[128];
    std::snprintf(s, sizeof s, "proto %u fam %u %u.%u.%u.%u:%u <-> %u.%u.%u.%u:%u vlan %u/%u",
                  k.proto, k.family, k.addr_a[0], k.addr_a[1], k.addr_a[2], k.addr_a[3],
                  k.port_a, k.addr_b[0], k.addr_b[1], k.addr_b[2], k.addr_b[3], k.port_b,
                  k.vlan[0], k.vlan[1]);
    return s;
}

// Byte-for-byte comparison; reports the first difference.
::testing::AssertionResult same_output(const Output& cpu, const Output& gpu) {
    if (cpu.rows.size() != gpu.rows.size())
        return ::testing::AssertionFailure()
               << "row count: cpu " << cpu.rows.size() << " gpu " << gpu.rows.size();
    for (size_t r = 0; r < cpu.rows.size(); ++r) {
        const FlowRow& a = cpu.rows[r];
        const FlowRow& b = gpu.rows[r];
        if (std::memcmp(&a.key, &b.key, sizeof a.key) != 0 || a.first_index != b.first_index ||
            a.first_ns != b.first_ns || a.initiator_is_a != b.initiator_is_a ||
            a.packets != b.packets || a.selected != b.selected)
            return ::testing::AssertionFailure()
                   << "row " << r << ": cpu {" << key_str(a.key) << " first " << a.first_index
                   << " ns " << a.first_ns << " init " << int{a.initiator_is_a} << " packets "
                   << a.packets << " selected " << a.selected << "} gpu {" << key_str(b.key)
                   << " first " << b.first_index << " ns " << b.first_ns << " init "
                   << int{b.initiator_is_a} << " packets " << b.packets << " selected "
                   << b.selected << "}";
    }
    if (cpu.tensors.size() != gpu.tensors.size())
        return ::testing::AssertionFailure() << "tensor count differs";
    for (size_t f = 0; f < cpu.tensors.size(); ++f) {
        const auto& a = cpu.tensors[f];
        const auto& b = gpu.tensors[f];
        const size_t rb = cpu.spec[f].row_bytes();
        if (a.size() != b.size())
            return ::testing::AssertionFailure() << "feature " << cpu.spec[f].name()
                                                 << ": size cpu " << a.size() << " gpu "
                                                 << b.size();
        for (size_t i = 0; i < a.size(); ++i)
            if (a[i] != b[i])
                return ::testing::AssertionFailure()
                       << "feature " << cpu.spec[f].name() << " row " << i / rb << " ("
                       << key_str(cpu.rows[i / rb].key) << ") byte offset " << i % rb
                       << " (packet " << i % rb / (rb / cpu.spec[f].h) << "): cpu "
                       << int{a[i]} << " gpu " << int{b[i]};
    }
    return ::testing::AssertionSuccess();
}

void compare(const std::vector<Frame>& frames, const std::vector<size_t>& sizes,
             const GpuOptions& gopt, const char* spec_s = kSpec, size_t min_rows = 1) {
    const auto spec = spec_of(spec_s);
    ASSERT_FALSE(spec.empty());
    auto cpu = make_cpu_extractor(spec, CpuOptions{3});
    auto co = run(*cpu, frames, sizes);
    ASSERT_TRUE(co.ok()) << co.error().message();
    auto gx = make_gpu_extractor(spec, gopt);
    ASSERT_TRUE(gx.ok()) << gx.error().message();
    auto go = run(**gx, frames, sizes);
    ASSERT_TRUE(go.ok()) << go.error().message();
    EXPECT_GE(co->rows.size(), min_rows);
    EXPECT_TRUE(same_output(*co, *go));
}

// Many interleaved flows over both families, TCP/UDP/GRE, VLANs, both
// directions, empty payloads, truncated captures and time running backwards.
std::vector<Frame> interleaved(unsigned flows, unsigned packets, uint32_t seed) {
    std::mt19937 rng(seed);
    std::vector<Pkt> base(flows);
    for (unsigned f = 0; f < flows; ++f) {
        Pkt& p = base[f];
        p.family = rng() % 4 == 0 ? 6 : 4;
        const unsigned pr = rng() % 10;
        p.proto = pr < 6 ? 6 : pr < 9 ? 17 : 47;
        p.src = rng() % 5000;
        p.dst = rng() % 5000;
        p.sport = static_cast<uint16_t>(1024 + rng() % 60000);
        p.dport = static_cast<uint16_t>(rng() % 3 == 0 ? 443 : rng() % 65536);
        p.vlan = rng() % 8 == 0 ? static_cast<uint16_t>(1 + rng() % 4000) : 0;
    }
    std::vector<Frame> out;
    uint64_t ts = 1'700'000'000'000'000'000ull;
    for (unsigned i = 0; i < packets; ++i) {
        // skewed flow choice: some flows get many packets
        const unsigned f = rng() % 3 == 0 ? rng() % std::min(flows, 20u) : rng() % flows;
        Pkt p = base[f];
        if (rng() % 2) {
            std::swap(p.src, p.dst);
            std::swap(p.sport, p.dport);
        }
        const unsigned k = rng() % 10;
        p.payload = k < 3 ? 0 : k < 9 ? rng() % 200 : 1000 + rng() % 400;
        p.seed = static_cast<uint32_t>(rng());
        if (rng() % 50 == 0) p.truncate_to = 40 + rng() % 60;
        ts += rng() % 5000000;
        uint64_t t = ts;
        if (rng() % 40 == 0) t -= rng() % 3000000;  // backwards
        Bytes b = build(p);
        if (rng() % 200 == 0) b.resize(10);  // unparsable
        out.push_back(Frame{std::move(b), t});
    }
    return out;
}

// The Ethernet frames of a capture. A corrupt capture (the nDPI set has
// fuzzed ones) yields the frames before the damage: both extractors get the
// same input either way.
std::vector<Frame> pcap_frames(const fs::path& path, size_t* skipped, size_t* corrupt) {
    std::vector<Frame> out;
    auto rd = pcap::Reader::open(path.string());
    if (!rd.ok()) {
        ++*corrupt;
        return out;
    }
    pcap::Frame fr;
    std::vector<uint8_t> scratch;
    for (;;) {
        auto more = rd->next(fr);
        if (!more.ok()) {
            ++*corrupt;
            break;
        }
        if (!*more) break;
        auto eth = pcap::to_ethernet(fr, scratch);
        if (!eth.ok()) {
            ++*skipped;
            continue;
        }
        out.push_back(Frame{Bytes(eth->begin(), eth->end()), fr.ts_ns});
    }
    return out;
}

fs::path find_ndpi_dir() {
    for (fs::path p = fs::current_path(); !p.empty(); p = p.parent_path()) {
        if (fs::is_directory(p / "testdata/ndpi/pcap")) return p / "testdata/ndpi/pcap";
        if (p == p.parent_path()) break;
    }
    return {};
}

}  // namespace

TEST(GpuFeatures, AvailabilityReason) {
    std::string why;
    const bool ok = gpu_available(&why);
    if (!ok) {
        EXPECT_FALSE(why.empty());
    }
    std::printf("gpu_available: %s%s\n", ok ? "yes" : "no: ", why.c_str());
    if (!ok) {
        auto x = make_gpu_extractor(spec_of(kSpec), GpuOptions{});
        EXPECT_FALSE(x.ok());
    }
}

TEST(GpuFeatures, MatchesCpuOnNdpiCaptures) {
    SKIP_WITHOUT_GPU(gpu_available);
    const fs::path dir = find_ndpi_dir();
    if (dir.empty()) GTEST_SKIP() << "testdata/ndpi/pcap not found (run scripts/fetch-testdata.sh)";
    std::vector<fs::path> files;
    for (const auto& e : fs::directory_iterator(dir))
        if (e.is_regular_file() && (e.path().extension() == ".pcap" ||
                                    e.path().extension() == ".pcapng" ||
                                    e.path().extension() == ".cap"))
            files.push_back(e.path());
    std::sort(files.begin(), files.end());
    ASSERT_FALSE(files.empty());
    const auto spec = spec_of("payload:10x256,packet:10x128,sizes:10,iat:10");
    size_t total_rows = 0, total_frames = 0, skipped = 0, corrupt = 0;
    for (const fs::path& f : files) {
        const auto frames = pcap_frames(f, &skipped, &corrupt);
        total_frames += frames.size();
        auto cpu = make_cpu_extractor(spec, CpuOptions{4});
        auto co = run(*cpu, frames, {4096});
        ASSERT_TRUE(co.ok()) << f << ": " << co.error().message();
        auto gx = make_gpu_extractor(spec, GpuOptions{});
        ASSERT_TRUE(gx.ok()) << gx.error().message();
        auto go = run(**gx, frames, {4096});
        ASSERT_TRUE(go.ok()) << f << ": " << go.error().message();
        EXPECT_TRUE(same_output(*co, *go)) << "capture " << f;
        // The same with the rows kept on the device (finish_device, copied back).
        GpuOptions dev;
        dev.device_output = true;
        auto dx = make_gpu_extractor(spec, dev);
        ASSERT_TRUE(dx.ok()) << dx.error().message();
        auto dout = run(**dx, frames, {4096});
        ASSERT_TRUE(dout.ok()) << f << ": " << dout.error().message();
        EXPECT_TRUE(same_output(*co, *dout)) << "device output, capture " << f;
        total_rows += co->rows.size();
    }
    std::printf("%zu captures (%zu unreadable or truncated), %zu frames (%zu not convertible "
                "to Ethernet), %zu flows compared\n",
                files.size(), corrupt, total_frames, skipped, total_rows);
}

TEST(GpuFeatures, InterleavedFlowsMatchCpu) {
    SKIP_WITHOUT_GPU(gpu_available);
    const auto frames = interleaved(3000, 60000, 1);
    compare(frames, {4096}, GpuOptions{}, kSpec, 100);
    compare(frames, {1000, 7, 333, 4096, 1}, GpuOptions{}, kSpec, 100);
}

TEST(GpuFeatures, SeedLaunchShapeAndMappedHostMatchCpu) {
    SKIP_WITHOUT_GPU(gpu_available);
    const auto frames = interleaved(500, 20000, 2);
    GpuOptions seed;
    seed.block_threads = 1024;
    seed.max_blocks = 1;
    compare(frames, {4096}, seed);
    GpuOptions mapped;
    mapped.mapped_host = true;
    compare(frames, {4096, 17}, mapped);
    GpuOptions odd;
    odd.block_threads = 96;
    odd.max_blocks = 3;
    odd.table_slots = 4096;
    compare(frames, {2500}, odd);
}

TEST(GpuFeatures, FlowSplitAcrossManySmallBatches) {
    SKIP_WITHOUT_GPU(gpu_available);
    std::vector<Frame> frames;
    uint64_t ts = 5'000'000'000ull;
    for (unsigned i = 0; i < 300; ++i) {
        Pkt p{4, 6, 1, 2, 40000, 443, 0, 0, i, 0};
        if (i % 3 == 1) {
            std::swap(p.src, p.dst);
            std::swap(p.sport, p.dport);
        }
        p.payload = i % 4 == 0 ? 0 : 1 + (i * 37) % 300;
        ts += (i % 7 == 0) ? 0 : 1234567 + i;
        frames.push_back(Frame{build(p), i % 11 == 5 ? ts - 999999 : ts});
    }
    // flows longer than H with a large H too
    compare(frames, {1}, GpuOptions{}, kSpec);
    compare(frames, {2, 1, 3}, GpuOptions{}, "payload:40x100,sizes:64,iat:64,packet:3x60");
    compare(frames, {5}, GpuOptions{}, "iat:200,sizes:250");
}

// Device-resident output (GpuOptions::device_output): rows accumulated on
// the device across batches and finishes, split per feature by a kernel.
TEST(GpuFeatures, DeviceOutputMatchesCpu) {
    SKIP_WITHOUT_GPU(gpu_available);
    const auto frames = interleaved(3000, 60000, 99);
    GpuOptions dev;
    dev.device_output = true;
    compare(frames, {4096}, dev, kSpec, 100);
    compare(frames, {1000, 7, 333, 4096, 1}, dev, "payload:40x100,sizes:64,iat:64,packet:3x60", 100);
    // One extractor, two inputs: the device accumulation restarts at each finish.
    const auto spec = spec_of(kSpec);
    auto cpu = make_cpu_extractor(spec, CpuOptions{2});
    auto co = run(*cpu, frames, {2048});
    ASSERT_TRUE(co.ok());
    auto gx = make_gpu_extractor(spec, dev);
    ASSERT_TRUE(gx.ok()) << gx.error().message();
    for (int round = 0; round < 2; ++round) {
        auto go = run(**gx, frames, {2048});
        ASSERT_TRUE(go.ok()) << go.error().message();
        EXPECT_TRUE(same_output(*co, *go)) << "round " << round;
    }
    // finish_device hands out device pointers on the extractor's stream.
    features::Batch b;
    for (const Frame& f : frames) b.add(f.data, f.ts);
    ASSERT_TRUE((*gx)->push(b).ok());
    auto d = (*gx)->finish_device();
    ASSERT_TRUE(d.ok()) << d.error().message();
    EXPECT_EQ(d->rows.size(), co->rows.size());
    ASSERT_EQ(d->tensors.size(), spec.size());
    EXPECT_NE(d->stream, nullptr);
    // Without device_output there is nothing on the device to hand out.
    auto plain = make_gpu_extractor(spec, GpuOptions{});
    ASSERT_TRUE(plain.ok());
    EXPECT_FALSE((*plain)->finish_device().ok());
}

TEST(GpuFeatures, HashCollisionsInTinyTable) {
    SKIP_WITHOUT_GPU(gpu_available);
    const auto frames = interleaved(50, 3000, 3);
    GpuOptions o;
    o.table_slots = 64;
    compare(frames, {4096}, o);
    compare(frames, {100, 3}, o);
    o.table_slots = 50;  // exactly full (every key distinct? at most 50 keys)
    compare(frames, {512}, o);
}

TEST(GpuFeatures, TableFullIsAnError) {
    SKIP_WITHOUT_GPU(gpu_available);
    const auto spec = spec_of(kSpec);
    std::vector<Frame> frames;
    for (unsigned f = 0; f < 20; ++f) {
        Pkt p{4, 17, f, 1000 + f, 5000, 53, 10, 0, f, 0};
        frames.push_back(Frame{build(p), 1000ull * f});
    }
    GpuOptions o;
    o.table_slots = 8;
    auto gx = make_gpu_extractor(spec, o);
    ASSERT_TRUE(gx.ok()) << gx.error().message();
    Batch b;
    b.first_index = 0;
    for (const Frame& fr : frames) b.add(fr.data, fr.ts);
    auto r = (*gx)->push(b);
    ASSERT_FALSE(r.ok());
    EXPECT_NE(r.error().message().find("flow table full (8 slots)"), std::string::npos)
        << r.error().message();
    EXPECT_NE(r.error().message().find("--table-slots"), std::string::npos);
}
