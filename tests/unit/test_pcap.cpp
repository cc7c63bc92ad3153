// Unit tests for loader/pcap: every capture is crafted here, byte by byte, by
// the small builders below, so each test states exactly what the file holds.
// One test also reads the real nDPI captures when testdata/ndpi/pcap exists.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "common/pcap.hpp"

namespace fs = std::filesystem;
using namespace etcpipe;
using namespace etcpipe::pcap;

namespace {

using Bytes = std::vector<uint8_t>;

// Appends integers in a chosen byte order.
struct Out {
    Bytes b;
    bool big_endian = false;

    Out& u8(uint8_t v) {
        b.push_back(v);
        return *this;
    }
    Out& u16(uint16_t v) {
        return big_endian ? u8(static_cast<uint8_t>(v >> 8)).u8(static_cast<uint8_t>(v))
                          : u8(static_cast<uint8_t>(v)).u8(static_cast<uint8_t>(v >> 8));
    }
    Out& u32(uint32_t v) {
        return big_endian ? u16(static_cast<uint16_t>(v >> 16)).u16(static_cast<uint16_t>(v))
                          : u16(static_cast<uint16_t>(v)).u16(static_cast<uint16_t>(v >> 16));
    }
    Out& u64(uint64_t v) {
        return big_endian ? u32(static_cast<uint32_t>(v >> 32)).u32(static_cast<uint32_t>(v))
                          : u32(static_cast<uint32_t>(v)).u32(static_cast<uint32_t>(v >> 32));
    }
    Out& raw(const Bytes& v) {
        b.insert(b.end(), v.begin(), v.end());
        return *this;
    }
    Out& pad4() {
        while (b.size() % 4) b.push_back(0);
        return *this;
    }
};

// Classic pcap: file header, then records.
struct PcapBuilder {
    Out o;
    PcapBuilder(bool big_endian, bool nanosecond, uint32_t linktype_field) {
        o.big_endian = big_endian;
        o.u32(nanosecond ? 0xa1b23c4d : 0xa1b2c3d4).u16(2).u16(4).u32(0).u32(0).u32(65535);
        o.u32(linktype_field);
    }
    PcapBuilder& record(uint32_t sec, uint32_t frac, const Bytes& data, uint32_t origlen = 0) {
        o.u32(sec).u32(frac).u32(static_cast<uint32_t>(data.size()));
        o.u32(origlen ? origlen : static_cast<uint32_t>(data.size())).raw(data);
        return *this;
    }
};

// pcapng: blocks with padding and both length fields; byte order per section.
struct NgBuilder {
    Out o;
    NgBuilder& block(uint32_t type, const Bytes& body) {
        const auto len = static_cast<uint32_t>(12 + (body.size() + 3) / 4 * 4);
        o.u32(type).u32(len).raw(body).pad4().u32(len);
        return *this;
    }
    Out body() const { return Out{{}, o.big_endian}; }
    NgBuilder& shb(bool big_endian) {
        o.big_endian = big_endian;
        Out b = body();
        b.u32(0x1a2b3c4d).u16(1).u16(0).u64(~uint64_t{0});  // section length unknown
        return block(0x0a0d0d0a, b.b);
    }
    // tsresol < 0: option left out (default 10^-6).
    NgBuilder& idb(uint16_t linktype, int tsresol = -1, std::optional<int64_t> tsoffset = {},
                   uint32_t snaplen = 0) {
        Out b = body();
        b.u16(linktype).u16(0).u32(snaplen);
        b.u16(2).u16(4).raw({'e', 't', 'h', '0'});  // if_name: an option to step over
        if (tsresol >= 0) b.u16(9).u16(1).u8(static_cast<uint8_t>(tsresol)).pad4();
        if (tsoffset) b.u16(14).u16(8).u64(static_cast<uint64_t>(*tsoffset));
        b.u16(0).u16(0);
        return block(1, b.b);
    }
    NgBuilder& epb(uint32_t iface, uint64_t ts_units, const Bytes& data, uint32_t origlen = 0) {
        Out b = body();
        b.u32(iface).u32(static_cast<uint32_t>(ts_units >> 32));
        b.u32(static_cast<uint32_t>(ts_units)).u32(static_cast<uint32_t>(data.size()));
        b.u32(origlen ? origlen : static_cast<uint32_t>(data.size())).raw(data).pad4();
        b.u16(2).u16(4).u32(1).u16(0).u16(0);  // epb_flags option after the data
        return block(6, b.b);
    }
    NgBuilder& pb(uint16_t iface, uint64_t ts_units, const Bytes& data) {
        Out b = body();
        b.u16(iface).u16(0).u32(static_cast<uint32_t>(ts_units >> 32));
        b.u32(static_cast<uint32_t>(ts_units)).u32(static_cast<uint32_t>(data.size()));
        b.u32(static_cast<uint32_t>(data.size())).raw(data);
        return block(2, b.b);
    }
    NgBuilder& spb(const Bytes& data, uint32_t origlen = 0) {
        Out b = body();
        b.u32(origlen ? origlen : static_cast<uint32_t>(data.size())).raw(data);
        return block(3, b.b);
    }
};

Bytes payload(size_t n, uint8_t first) {
    Bytes v(n);
    for (size_t i = 0; i < n; ++i) v[i] = static_cast<uint8_t>(first + i);
    return v;
}

// Minimal network-layer headers (only the version nibble matters here).
const Bytes kIpv4 = {0x45, 0x00, 0x00, 0x1c, 0x00, 0x01, 0x00, 0x00, 0x40, 0x11,
                     0x00, 0x00, 10,   0,    0,    1,    10,   0,    0,    2};
const Bytes kIpv6 = {0x60, 0x00, 0x00, 0x00, 0x00, 0x08, 0x11, 0x40, 0xfe, 0x80, 0, 0, 0, 0, 0, 0,
                     0,    0,    0,    0,    0,    0,    0,    1};

Bytes cat(Bytes a, const Bytes& b) {
    a.insert(a.end(), b.begin(), b.end());
    return a;
}

bool contains(const std::string& hay, const std::string& needle) {
    return hay.find(needle) != std::string::npos;
}

class PcapTest : public ::testing::Test {
  protected:
    void SetUp() override {
        std::string tmpl = (fs::temp_directory_path() / "test_pcap.XXXXXX").string();
        ASSERT_NE(mkdtemp(tmpl.data()), nullptr) << std::strerror(errno);
        dir_ = tmpl;
    }
    void TearDown() override {
        std::error_code ec;
        fs::remove_all(dir_, ec);
    }

    std::string write_file(const std::string& name, const Bytes& data) {
        const std::string p = (dir_ / name).string();
        std::ofstream f(p, std::ios::binary | std::ios::trunc);
        f.write(reinterpret_cast<const char*>(data.data()), static_cast<std::streamsize>(data.size()));
        EXPECT_TRUE(f.good()) << p;
        return p;
    }

    // Opens `path`, reads every frame; stops at the first error, which it returns.
    struct ReadAll {
        std::vector<Frame> frames;
        std::vector<Bytes> data;  // copies, so they outlive the reader
        std::optional<Error> error;
    };
    static ReadAll read_all(const std::string& path) {
        ReadAll out;
        auto r = Reader::open(path);
        if (!r) {
            out.error = r.error();
            return out;
        }
        Frame f;
        for (;;) {
            auto more = r->next(f);
            if (!more) {
                out.error = more.error();
                EXPECT_EQ(r->frames_read(), out.frames.size());
                break;
            }
            if (!*more) break;
            out.frames.push_back(f);
            out.data.emplace_back(f.data.begin(), f.data.end());
        }
        return out;
    }

    fs::path dir_;
};

// ---- classic pcap ------------------------------------------------------------------

TEST_F(PcapTest, ClassicBothByteOrdersMicroAndNanoseconds) {
    for (bool big : {false, true}) {
        for (bool ns : {false, true}) {
            SCOPED_TRACE(std::string(big ? "big" : "little") + "-endian, " + (ns ? "ns" : "us"));
            const uint32_t frac1 = ns ? 123456789 : 123456;
            const uint32_t frac2 = ns ? 999999999 : 999999;
            PcapBuilder b(big, ns, kLinktypeEthernet);
            b.record(1700000000, frac1, payload(60, 1))
                .record(1700000001, frac2, payload(100, 7), 1514)
                .record(0, 0, {});
            const auto path = write_file("c.pcap", b.o.b);

            auto r = Reader::open(path);
            ASSERT_TRUE(r) << r.error().message();
            EXPECT_EQ(r->format(), Format::Pcap);
            Frame f;
            auto more = r->next(f);
            ASSERT_TRUE(more && *more);
            EXPECT_EQ(f.ts_ns, ns ? 1700000000'123456789ull : 1700000000'123456000ull);
            EXPECT_EQ(f.caplen, 60u);
            EXPECT_EQ(f.origlen, 60u);
            EXPECT_EQ(f.linktype, kLinktypeEthernet);
            EXPECT_EQ(f.interface_id, 0u);
            EXPECT_EQ(f.file_offset, 24u);
            EXPECT_EQ(f.index, 0u);
            EXPECT_EQ(Bytes(f.data.begin(), f.data.end()), payload(60, 1));

            more = r->next(f);
            ASSERT_TRUE(more && *more);
            EXPECT_EQ(f.ts_ns, ns ? 1700000001'999999999ull : 1700000001'999999000ull);
            EXPECT_EQ(f.caplen, 100u);
            EXPECT_EQ(f.origlen, 1514u);
            EXPECT_EQ(f.file_offset, 24u + 16 + 60);
            EXPECT_EQ(f.index, 1u);
            EXPECT_EQ(Bytes(f.data.begin(), f.data.end()), payload(100, 7));

            more = r->next(f);  // an empty record is legal
            ASSERT_TRUE(more && *more);
            EXPECT_EQ(f.caplen, 0u);
            EXPECT_TRUE(f.data.empty());

            more = r->next(f);
            ASSERT_TRUE(more);
            EXPECT_FALSE(*more);
            EXPECT_EQ(r->frames_read(), 3u);
            EXPECT_EQ(r->offset(), b.o.b.size());
            more = r->next(f);  // end of file stays end of file
            ASSERT_TRUE(more);
            EXPECT_FALSE(*more);
        }
    }
}

TEST_F(PcapTest, ClassicFcsBitsInLinktypeAreMasked) {
    // Upper bits: FCS length 4 (in 16-bit words... here just bits 28-31) and the F flag.
    for (uint32_t field : {0x34000001u, 0x04000071u, 0xf4000065u}) {
        SCOPED_TRACE(field);
        PcapBuilder b(false, true, field);
        b.record(1, 2, payload(20, 0x45));
        auto all = read_all(write_file("fcs.pcap", b.o.b));
        ASSERT_FALSE(all.error) << all.error->message();
        ASSERT_EQ(all.frames.size(), 1u);
        EXPECT_EQ(all.frames[0].linktype, field & 0x03ffffff);
    }
}

TEST_F(PcapTest, ReaderMoveKeepsFrameData) {
    PcapBuilder b(false, false, kLinktypeEthernet);
    b.record(1, 1, payload(64, 3)).record(2, 2, payload(64, 9));
    auto r = Reader::open(write_file("m.pcap", b.o.b));
    ASSERT_TRUE(r);
    Frame f;
    ASSERT_TRUE(r->next(f));
    Reader moved = std::move(r.value());
    EXPECT_EQ(Bytes(f.data.begin(), f.data.end()), payload(64, 3));
    auto more = moved.next(f);
    ASSERT_TRUE(more && *more);
    EXPECT_EQ(Bytes(f.data.begin(), f.data.end()), payload(64, 9));
    EXPECT_EQ(moved.frames_read(), 2u);
}

// ---- pcapng --------------------------------------------------------------------------

TEST_F(PcapTest, PcapngInterfacesResolutionsOffsetsAndBlockKinds) {
    NgBuilder b;
    b.shb(false)
        .idb(kLinktypeEthernet, 9, {}, 13)           // 10^-9, snaplen 13 (for the SPB)
        .idb(kLinktypeRaw, 0x80 | 10, int64_t{100})  // 2^-10, +100 s
        .idb(kLinktypeLinuxSll)                      // default 10^-6
        .block(4, {1, 0, 4, 0, 10, 0, 0, 1, 0, 0, 0, 0})  // NRB: skipped
        .epb(0, 1700000000'123456789ull, payload(60, 1))
        .epb(1, (uint64_t{5} << 10) | 3, kIpv4, 1500)   // 5 s + 3/1024 s
        .block(5, Bytes(20, 0))                       // ISB: skipped
        .block(0x00000bad, Bytes(9, 0xee))            // custom block with padding: skipped
        .block(10, Bytes(16, 0))                      // DSB: skipped
        .epb(2, 1700000000'654321ull, payload(30, 2))
        .spb(payload(13, 4), 200)                     // interface 0, no timestamp
        .pb(1, 1024, kIpv6);                          // obsolete packet block
    const auto path = write_file("multi.pcapng", b.o.b);

    auto r = Reader::open(path);
    ASSERT_TRUE(r) << r.error().message();
    EXPECT_EQ(r->format(), Format::PcapNg);
    auto all = read_all(path);
    ASSERT_FALSE(all.error) << all.error->message();
    ASSERT_EQ(all.frames.size(), 5u);

    EXPECT_EQ(all.frames[0].interface_id, 0u);
    EXPECT_EQ(all.frames[0].linktype, kLinktypeEthernet);
    EXPECT_EQ(all.frames[0].ts_ns, 1700000000'123456789ull);
    EXPECT_EQ(all.data[0], payload(60, 1));

    EXPECT_EQ(all.frames[1].interface_id, 1u);
    EXPECT_EQ(all.frames[1].linktype, kLinktypeRaw);
    // 3/1024 s = 2929687.5 ns, truncated; plus the 100 s offset.
    EXPECT_EQ(all.frames[1].ts_ns, 105'002929687ull);
    EXPECT_EQ(all.frames[1].caplen, kIpv4.size());
    EXPECT_EQ(all.frames[1].origlen, 1500u);
    EXPECT_EQ(all.data[1], kIpv4);

    EXPECT_EQ(all.frames[2].interface_id, 2u);
    EXPECT_EQ(all.frames[2].linktype, kLinktypeLinuxSll);
    EXPECT_EQ(all.frames[2].ts_ns, 1700000000'654321000ull);
    EXPECT_EQ(all.data[2], payload(30, 2));

    EXPECT_EQ(all.frames[3].ts_ns, 0u);
    EXPECT_EQ(all.frames[3].interface_id, 0u);
    EXPECT_EQ(all.frames[3].linktype, kLinktypeEthernet);
    EXPECT_EQ(all.frames[3].caplen, 13u);
    EXPECT_EQ(all.frames[3].origlen, 200u);
    EXPECT_EQ(all.data[3], payload(13, 4));

    EXPECT_EQ(all.frames[4].interface_id, 1u);
    EXPECT_EQ(all.frames[4].ts_ns, 101'000000000ull);
    EXPECT_EQ(all.data[4], kIpv6);

    for (size_t i = 0; i < all.frames.size(); ++i) EXPECT_EQ(all.frames[i].index, i);
}

TEST_F(PcapTest, PcapngSectionsOfDifferentByteOrder) {
    NgBuilder b;
    b.shb(false)
        .idb(kLinktypeEthernet, 9)
        .idb(kLinktypeRaw, 9)
        .epb(1, 1'000000001ull, kIpv4)
        .shb(true)  // new section: big-endian, interfaces start again at 0
        .idb(kLinktypeLinuxSll2, 3)
        .epb(0, 2'500ull, payload(24, 8), 99)
        .shb(false)
        .idb(kLinktypeIpv6)
        .epb(0, 3'000001ull, kIpv6);
    auto all = read_all(write_file("sections.pcapng", b.o.b));
    ASSERT_FALSE(all.error) << all.error->message();
    ASSERT_EQ(all.frames.size(), 3u);
    EXPECT_EQ(all.frames[0].linktype, kLinktypeRaw);
    EXPECT_EQ(all.frames[0].ts_ns, 1'000000001ull);
    EXPECT_EQ(all.frames[1].linktype, kLinktypeLinuxSll2);
    EXPECT_EQ(all.frames[1].interface_id, 0u);
    EXPECT_EQ(all.frames[1].ts_ns, 2'500000000ull);
    EXPECT_EQ(all.frames[1].origlen, 99u);
    EXPECT_EQ(all.data[1], payload(24, 8));
    EXPECT_EQ(all.frames[2].linktype, kLinktypeIpv6);
    EXPECT_EQ(all.frames[2].ts_ns, 3'000001000ull);
    EXPECT_EQ(all.data[2], kIpv6);

    // Interface 1 belonged to the first section only.
    NgBuilder bad;
    bad.shb(false).idb(1).idb(1).epb(1, 0, kIpv4).shb(true).idb(1).epb(1, 0, kIpv4);
    auto res = read_all(write_file("stale_iface.pcapng", bad.o.b));
    ASSERT_TRUE(res.error);
    EXPECT_EQ(res.frames.size(), 1u);
    EXPECT_TRUE(contains(res.error->detail, "interface 1")) << res.error->message();
}

TEST_F(PcapTest, PcapngStructuralErrors) {
    {  // trailing length differs from the leading one
        NgBuilder b;
        b.shb(false).idb(1).epb(0, 1, payload(20, 0));
        Bytes bytes = b.o.b;
        bytes[bytes.size() - 4] ^= 4;
        auto all = read_all(write_file("trail.pcapng", bytes));
        ASSERT_TRUE(all.error);
        EXPECT_TRUE(contains(all.error->detail, "trailing length")) << all.error->message();
    }
    {  // byte-order magic broken
        NgBuilder b;
        b.shb(false).idb(1);
        b.o.b[8] = 0x00;
        auto all = read_all(write_file("bom.pcapng", b.o.b));
        ASSERT_TRUE(all.error);
        EXPECT_TRUE(contains(all.error->detail, "byte-order magic")) << all.error->message();
    }
    {  // packet before any interface
        NgBuilder b;
        b.shb(false).epb(0, 1, payload(20, 0));
        auto all = read_all(write_file("noidb.pcapng", b.o.b));
        ASSERT_TRUE(all.error);
        EXPECT_EQ(all.error->kind, ErrorKind::Data);
    }
    {  // captured length beyond kMaxCaplen inside a block big enough to hold it
        NgBuilder b;
        b.shb(false).idb(1).epb(0, 1, Bytes(kMaxCaplen + 4, 0));
        auto all = read_all(write_file("huge.pcapng", b.o.b));
        ASSERT_TRUE(all.error);
        EXPECT_TRUE(contains(all.error->detail, "exceeds the limit")) << all.error->message();
    }
}

// if_tsoffset is a signed 64-bit count of seconds from the file: near its
// limits the sum with the packet's seconds, or its scaling to nanoseconds,
// used to overflow a signed add (UBSan) and give wrong timestamps with exit 0.
TEST_F(PcapTest, PcapngTsoffsetAtTheLimitsIsADataErrorNotWrappedTime) {
    for (const int64_t off : {INT64_MAX, INT64_MAX - 5, INT64_MIN, int64_t{-100}}) {
        SCOPED_TRACE(off);
        NgBuilder b;
        b.shb(false).idb(kLinktypeEthernet, 0, off).epb(0, 5, payload(60, 1));
        auto all = read_all(write_file("tsoffset.pcapng", b.o.b));
        ASSERT_TRUE(all.error);
        EXPECT_TRUE(contains(all.error->detail, "timestamp out of range")) << all.error->message();
        EXPECT_TRUE(all.frames.empty());
    }
    // Still fine where the time fits: 5 s + 100 s.
    NgBuilder ok;
    ok.shb(false).idb(kLinktypeEthernet, 0, int64_t{100}).epb(0, 5, payload(60, 1));
    auto all = read_all(write_file("tsoffset_ok.pcapng", ok.o.b));
    ASSERT_FALSE(all.error) << all.error->message();
    ASSERT_EQ(all.frames.size(), 1u);
    EXPECT_EQ(all.frames[0].ts_ns, 105'000'000'000ull);
}

// ---- to_ethernet ---------------------------------------------------------------------------

struct LinkCase {
    const char* name;
    uint32_t linktype;
    Bytes link_header;
    Bytes network;
    uint16_t ethertype;
    Bytes src_mac = Bytes(6, 0);
};

TEST(ToEthernet, EveryLinkTypeGetsASyntheticHeader) {
    const Bytes mac = {0x02, 0x11, 0x22, 0x33, 0x44, 0x55};
    // SLL: packet type, ARPHRD, addr len, 8 address bytes, protocol.
    auto sll = [&](uint16_t alen, uint16_t proto) {
        Bytes h = {0, 0, 0, 1, static_cast<uint8_t>(alen >> 8), static_cast<uint8_t>(alen)};
        h.insert(h.end(), mac.begin(), mac.end());
        h.push_back(0xaa);
        h.push_back(0xbb);  // address padding to 8 bytes
        h.push_back(static_cast<uint8_t>(proto >> 8));
        h.push_back(static_cast<uint8_t>(proto));
        return h;
    };
    // SLL2: protocol, reserved, ifindex, ARPHRD, packet type, addr len, 8 address bytes.
    auto sll2 = [&](uint8_t alen, uint16_t proto) {
        Bytes h = {static_cast<uint8_t>(proto >> 8), static_cast<uint8_t>(proto), 0, 0, 0, 0, 0, 7,
                   0, 1, 4, alen};
        h.insert(h.end(), mac.begin(), mac.end());
        h.push_back(0);
        h.push_back(0);
        return h;
    };
    const Bytes vlan_payload = {0x00, 0x05, 0x08, 0x00, 0x45, 0x00};
    const std::vector<LinkCase> cases = {
        {"NULL little-endian AF_INET", kLinktypeNull, {2, 0, 0, 0}, kIpv4, 0x0800},
        {"NULL big-endian AF_INET", kLinktypeNull, {0, 0, 0, 2}, kIpv4, 0x0800},
        {"NULL AF_INET6 (BSD 24)", kLinktypeNull, {24, 0, 0, 0}, kIpv6, 0x86dd},
        {"NULL AF_INET6 (FreeBSD 28)", kLinktypeNull, {28, 0, 0, 0}, kIpv6, 0x86dd},
        {"NULL AF_INET6 (Darwin 30)", kLinktypeNull, {0, 0, 0, 30}, kIpv6, 0x86dd},
        {"NULL AF_INET6 (Linux 10)", kLinktypeNull, {10, 0, 0, 0}, kIpv6, 0x86dd},
        {"LOOP AF_INET", kLinktypeLoop, {0, 0, 0, 2}, kIpv4, 0x0800},
        {"LOOP AF_INET6", kLinktypeLoop, {0, 0, 0, 24}, kIpv6, 0x86dd},
        {"RAW IPv4", kLinktypeRaw, {}, kIpv4, 0x0800},
        {"RAW IPv6", kLinktypeRaw, {}, kIpv6, 0x86dd},
        {"IPV4", kLinktypeIpv4, {}, kIpv4, 0x0800},
        {"IPV6", kLinktypeIpv6, {}, kIpv6, 0x86dd},
        {"LINUX_SLL with MAC", kLinktypeLinuxSll, sll(6, 0x0800), kIpv4, 0x0800, mac},
        {"LINUX_SLL no address", kLinktypeLinuxSll, sll(0, 0x86dd), kIpv6, 0x86dd},
        {"LINUX_SLL VLAN kept", kLinktypeLinuxSll, sll(6, 0x8100), vlan_payload, 0x8100, mac},
        {"LINUX_SLL2 with MAC", kLinktypeLinuxSll2, sll2(6, 0x86dd), kIpv6, 0x86dd, mac},
        {"LINUX_SLL2 8-byte address", kLinktypeLinuxSll2, sll2(8, 0x0800), kIpv4, 0x0800},
        {"PPP with address/control", kLinktypePpp, {0xff, 0x03, 0x00, 0x21}, kIpv4, 0x0800},
        {"PPP without address/control", kLinktypePpp, {0x00, 0x57}, kIpv6, 0x86dd},
        {"PPP compressed protocol", kLinktypePpp, {0xff, 0x03, 0x21}, kIpv4, 0x0800},
        {"PPP carrying Cisco HDLC", kLinktypePpp, {0x0f, 0x00, 0x08, 0x00}, kIpv4, 0x0800},
        {"C_HDLC IPv4", kLinktypeCHdlc, {0x0f, 0x00, 0x08, 0x00}, kIpv4, 0x0800},
        {"C_HDLC IPv6", kLinktypeCHdlc, {0x8f, 0x00, 0x86, 0xdd}, kIpv6, 0x86dd},
    };
    std::vector<uint8_t> scratch;
    for (const auto& c : cases) {
        SCOPED_TRACE(c.name);
        const Bytes frame = cat(c.link_header, c.network);
        Frame f;
        f.linktype = c.linktype;
        f.data = frame;
        f.caplen = static_cast<uint32_t>(frame.size());
        auto eth = to_ethernet(f, scratch);
        ASSERT_TRUE(eth) << eth.error().message();
        ASSERT_EQ(eth->size(), 14 + c.network.size());
        EXPECT_EQ(Bytes(eth->begin(), eth->begin() + 6), Bytes(6, 0));  // destination
        EXPECT_EQ(Bytes(eth->begin() + 6, eth->begin() + 12), c.src_mac);
        EXPECT_EQ((*eth)[12] << 8 | (*eth)[13], c.ethertype);
        EXPECT_EQ(Bytes(eth->begin() + 14, eth->end()), c.network);
    }
}

TEST(ToEthernet, EthernetIsReturnedWithoutCopy) {
    const Bytes frame = cat({1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 0x08, 0x00}, kIpv4);
    Frame f;
    f.linktype = kLinktypeEthernet;
    f.data = frame;
    std::vector<uint8_t> scratch;
    auto eth = to_ethernet(f, scratch);
    ASSERT_TRUE(eth);
    EXPECT_EQ(eth->data(), frame.data());
    EXPECT_EQ(eth->size(), frame.size());
    EXPECT_TRUE(scratch.empty());
}

TEST(ToEthernet, ShortFramesAndUnsupportedPayloadsAreDataErrors) {
    struct Bad {
        uint32_t linktype;
        Bytes frame;
        const char* detail;
    };
    const std::vector<Bad> cases = {
        {kLinktypeLinuxSll, Bytes(10, 0), "LINUX_SLL frame of 10 bytes is shorter than its 16-byte header"},
        {kLinktypeLinuxSll2, Bytes(19, 0), "LINUX_SLL2 frame of 19 bytes is shorter than its 20-byte header"},
        {kLinktypeNull, {2, 0}, "shorter than its 4-byte header"},
        {kLinktypeLoop, {0, 0}, "shorter than its 4-byte header"},
        {kLinktypeCHdlc, {0x0f, 0x00, 0x08}, "shorter than its 4-byte header"},
        {kLinktypePpp, {0xff, 0x03}, "shorter than"},
        {kLinktypePpp, {0x00}, "shorter than"},
        {kLinktypePpp, {0x8f, 0x00}, "PPP frame of 2 bytes is shorter than its 4-byte header"},
        {kLinktypeRaw, {}, "no IP header"},
        {kLinktypeRaw, {0x55, 0, 0, 0}, "IP version 5"},
        {kLinktypeNull, {7, 0, 0, 0, 0x45}, "address family 7"},
        {kLinktypePpp, {0xc0, 0x21, 1, 2}, "PPP protocol 0xc021 is not IP"},  // LCP
        {kLinktypeLinuxSll, cat({0, 0, 0, 1, 0, 6, 1, 2, 3, 4, 5, 6, 0, 0, 0x00, 0x04}, {0xaa}),
         "not an Ethernet-compatible payload"},                         // 802.2 LLC
        {kLinktypeLinuxSll2, cat({0x00, 0x04}, Bytes(18, 0)), "not an Ethernet-compatible payload"},
        {kLinktypeCHdlc, {0x8f, 0x00, 0x00, 0x10}, "not an EtherType"},
        {147, Bytes(40, 0), "link type 147 (unknown) is not supported"},
    };
    std::vector<uint8_t> scratch;
    for (const auto& c : cases) {
        SCOPED_TRACE(c.detail);
        Frame f;
        f.linktype = c.linktype;
        f.data = c.frame;
        auto eth = to_ethernet(f, scratch);
        ASSERT_FALSE(eth);
        EXPECT_EQ(eth.error().kind, ErrorKind::Data);
        EXPECT_TRUE(eth.error().subject.empty());
        EXPECT_TRUE(contains(eth.error().detail, c.detail)) << eth.error().message();
    }
}

TEST(LinktypeName, KnownAndUnknown) {
    EXPECT_STREQ(linktype_name(kLinktypeEthernet), "ETHERNET");
    EXPECT_STREQ(linktype_name(kLinktypeLinuxSll), "LINUX_SLL");
    EXPECT_STREQ(linktype_name(kLinktypeLinuxSll2), "LINUX_SLL2");
    EXPECT_STREQ(linktype_name(147), "unknown");
}

// ---- truncation and bad files -------------------------------------------------------------

TEST_F(PcapTest, TruncatedClassicPcapNamesTheOffset) {
    PcapBuilder b(false, true, kLinktypeEthernet);
    b.record(1, 1, payload(60, 0)).record(2, 2, payload(1514 - 16, 0)).record(3, 3, payload(80, 0));
    const Bytes full = b.o.b;
    const size_t rec2 = 24 + 16 + 60, rec3 = rec2 + 16 + 1498;
    struct Cut {
        size_t keep;
        size_t frames_before;
        std::string offset_text;
        std::string what;
    };
    const std::vector<Cut> cuts = {
        {10, 0, "at byte 0", "truncated pcap file header"},
        {24 + 7, 0, "at byte 24", "truncated record header"},
        {rec2 + 9, 1, "at byte " + std::to_string(rec2), "9 of 16 bytes"},
        {rec2 + 16 + 200, 1,
         "truncated record at byte " + std::to_string(rec2) + ": header says 1498 bytes, 200 remain",
         ""},
        {rec3 + 16 + 79, 2, "at byte " + std::to_string(rec3), "header says 80 bytes, 79 remain"},
    };
    for (const auto& c : cuts) {
        SCOPED_TRACE("cut at " + std::to_string(c.keep));
        const auto path = write_file("cut.pcap", Bytes(full.begin(), full.begin() + static_cast<long>(c.keep)));
        auto all = read_all(path);
        ASSERT_TRUE(all.error);
        EXPECT_EQ(all.error->kind, ErrorKind::Data);
        EXPECT_EQ(all.error->subject, path);
        EXPECT_EQ(all.frames.size(), c.frames_before);
        const std::string msg = all.error->message();
        EXPECT_TRUE(contains(msg, c.offset_text)) << msg;
        EXPECT_TRUE(contains(msg, c.what)) << msg;
        for (size_t i = 0; i < all.frames.size(); ++i) EXPECT_EQ(all.frames[i].ts_ns, (i + 1) * 1'000000000ull + i + 1);
    }
}

TEST_F(PcapTest, ErrorIsStickyAndCountsFrames) {
    PcapBuilder b(true, false, kLinktypeEthernet);
    b.record(1, 0, payload(40, 0)).record(2, 0, payload(40, 0));
    b.o.u32(3).u32(0).u32(kMaxCaplen + 1).u32(kMaxCaplen + 1);  // corrupt caplen
    auto r = Reader::open(write_file("sticky.pcap", b.o.b));
    ASSERT_TRUE(r);
    Frame f;
    ASSERT_TRUE(r->next(f));
    ASSERT_TRUE(r->next(f));
    auto e1 = r->next(f);
    ASSERT_FALSE(e1);
    EXPECT_EQ(r->frames_read(), 2u);
    EXPECT_TRUE(contains(e1.error().detail, "exceeds the limit")) << e1.error().message();
    EXPECT_TRUE(contains(e1.error().detail, "at byte 136")) << e1.error().message();
    auto e2 = r->next(f);
    ASSERT_FALSE(e2);
    EXPECT_EQ(e2.error().message(), e1.error().message());
    EXPECT_EQ(r->frames_read(), 2u);
}

TEST_F(PcapTest, ErrorIsStickyAfterAWellFramedBadBlock) {
    // The bad IDB is framed correctly, so a reader that forgot the error would
    // step over it and return the packet behind it.
    NgBuilder b;
    b.shb(false).idb(kLinktypeEthernet, 25).idb(kLinktypeEthernet).epb(1, 1, payload(20, 0));
    auto r = Reader::open(write_file("badidb.pcapng", b.o.b));
    ASSERT_TRUE(r);
    Frame f;
    auto e1 = r->next(f);
    ASSERT_FALSE(e1);
    EXPECT_TRUE(contains(e1.error().detail, "if_tsresol 10^-25")) << e1.error().message();
    EXPECT_TRUE(contains(e1.error().detail, "at byte 28")) << e1.error().message();
    for (int i = 0; i < 3; ++i) {
        auto again = r->next(f);
        ASSERT_FALSE(again);
        EXPECT_EQ(again.error().message(), e1.error().message());
    }
    EXPECT_EQ(r->frames_read(), 0u);
}

TEST_F(PcapTest, TruncatedPcapngBlockNamesTheOffset) {
    NgBuilder b;
    b.shb(false).idb(kLinktypeEthernet, 9).epb(0, 10, payload(60, 0));
    const size_t third = b.o.b.size();
    b.epb(0, 20, payload(100, 0));
    const Bytes full = b.o.b;
    for (size_t keep : {third + 6, third + 40, full.size() - 1}) {
        SCOPED_TRACE("cut at " + std::to_string(keep));
        auto all = read_all(write_file("cut.pcapng", Bytes(full.begin(), full.begin() + static_cast<long>(keep))));
        ASSERT_TRUE(all.error);
        EXPECT_EQ(all.error->kind, ErrorKind::Data);
        ASSERT_EQ(all.frames.size(), 1u);
        EXPECT_EQ(all.frames[0].ts_ns, 10u);
        EXPECT_EQ(all.data[0], payload(60, 0));
        const std::string msg = all.error->message();
        EXPECT_TRUE(contains(msg, "at byte " + std::to_string(third))) << msg;
        EXPECT_TRUE(contains(msg, "truncated")) << msg;
        EXPECT_TRUE(contains(msg, "after 1 frames")) << msg;
    }
    // Cut inside the section header itself.
    auto all = read_all(write_file("cut_shb.pcapng", Bytes(full.begin(), full.begin() + 20)));
    ASSERT_TRUE(all.error);
    EXPECT_TRUE(contains(all.error->message(), "at byte 0")) << all.error->message();
}

TEST_F(PcapTest, GarbageEmptyAndMissingFiles) {
    auto garbage = Reader::open(write_file("garbage.bin", {'G', 'I', 'F', '8', '9', 'a', 0, 0}));
    ASSERT_FALSE(garbage);
    EXPECT_EQ(garbage.error().kind, ErrorKind::Data);
    EXPECT_TRUE(contains(garbage.error().detail, "not a pcap or pcapng file (magic 0x"))
        << garbage.error().message();

    const auto empty_path = write_file("empty.pcap", {});
    auto empty = Reader::open(empty_path);
    ASSERT_FALSE(empty);
    EXPECT_EQ(empty.error().kind, ErrorKind::Data);
    EXPECT_EQ(empty.error().subject, empty_path);
    EXPECT_TRUE(contains(empty.error().detail, "empty file")) << empty.error().message();

    auto tiny = Reader::open(write_file("tiny.pcap", {0xd4, 0xc3}));
    ASSERT_FALSE(tiny);
    EXPECT_EQ(tiny.error().kind, ErrorKind::Data);

    const auto missing_path = (dir_ / "does-not-exist.pcap").string();
    auto missing = Reader::open(missing_path);
    ASSERT_FALSE(missing);
    EXPECT_EQ(missing.error().kind, ErrorKind::Io);
    EXPECT_EQ(missing.error().code, ENOENT);
    EXPECT_EQ(missing.error().subject, missing_path);
    EXPECT_EQ(missing.error().operation, "open capture");
    EXPECT_FALSE(missing.error().hint.empty());
}

// ---- Writer ----------------------------------------------------------------------------------

TEST_F(PcapTest, WriterRoundTrip) {
    const auto path = (dir_ / "out.pcap").string();
    {
        auto w = Writer::create(path);
        ASSERT_TRUE(w) << w.error().message();
        ASSERT_TRUE(w->write(1700000000'000000001ull, payload(60, 1), 60));
        ASSERT_TRUE(w->write(1700000000'999999999ull, payload(128, 2), 9000));  // snapped
        ASSERT_TRUE(w->write(5, payload(40, 3), 10));  // origlen < caplen: raised
        ASSERT_TRUE(w->write(6, Bytes(kMaxCaplen + 10, 0x5a), 0));  // over the snaplen
        EXPECT_EQ(w->frames_written(), 4u);
        auto closed = w->close();
        ASSERT_TRUE(closed) << closed.error().message();
        EXPECT_TRUE(w->close());  // idempotent
        EXPECT_FALSE(w->write(7, payload(10, 0), 10));
    }
    // The header is the documented one: LE nanosecond magic, v2.4, snaplen, Ethernet.
    std::ifstream in(path, std::ios::binary);
    Bytes head(24);
    in.read(reinterpret_cast<char*>(head.data()), 24);
    const Bytes want = {0x4d, 0x3c, 0xb2, 0xa1, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0,
                        0x00, 0x00, 0x04, 0x00, 1, 0, 0, 0};
    EXPECT_EQ(head, want);

    auto all = read_all(path);
    ASSERT_FALSE(all.error) << all.error->message();
    ASSERT_EQ(all.frames.size(), 4u);
    EXPECT_EQ(all.frames[0].ts_ns, 1700000000'000000001ull);
    EXPECT_EQ(all.frames[1].ts_ns, 1700000000'999999999ull);
    EXPECT_EQ(all.frames[1].caplen, 128u);
    EXPECT_EQ(all.frames[1].origlen, 9000u);
    EXPECT_EQ(all.data[1], payload(128, 2));
    EXPECT_EQ(all.frames[2].origlen, 40u);
    EXPECT_EQ(all.frames[3].caplen, kMaxCaplen);
    EXPECT_EQ(all.frames[3].origlen, kMaxCaplen);
    for (const auto& f : all.frames) EXPECT_EQ(f.linktype, kLinktypeEthernet);
}

TEST_F(PcapTest, WriterDestructorFlushesAndCreateErrorsNameThePath) {
    const auto path = (dir_ / "dtor.pcap").string();
    {
        auto w = Writer::create(path);
        ASSERT_TRUE(w);
        ASSERT_TRUE(w->write(42, payload(50, 0), 50));
        Writer moved = std::move(w.value());  // the moved-from writer must not close the file
    }
    auto all = read_all(path);
    ASSERT_FALSE(all.error) << all.error->message();
    ASSERT_EQ(all.frames.size(), 1u);
    EXPECT_EQ(all.frames[0].ts_ns, 42u);

    const auto bad = (dir_ / "no-such-dir" / "x.pcap").string();
    auto w = Writer::create(bad);
    ASSERT_FALSE(w);
    EXPECT_EQ(w.error().kind, ErrorKind::Io);
    EXPECT_EQ(w.error().code, ENOENT);
    EXPECT_EQ(w.error().subject, bad);
}

// ---- non-regular files -----------------------------------------------------------------------

TEST_F(PcapTest, ReadsFromAFifo) {
    NgBuilder b;
    b.shb(false).idb(kLinktypeEthernet, 9);
    for (uint64_t i = 0; i < 2000; ++i) b.epb(0, i, payload(100, static_cast<uint8_t>(i)));
    const Bytes bytes = b.o.b;  // ~300 KB: more than one pipe buffer and the first read chunk
    const auto fifo = (dir_ / "capture.fifo").string();
    ASSERT_EQ(mkfifo(fifo.c_str(), 0600), 0) << std::strerror(errno);
    std::thread writer([&] {
        std::ofstream out(fifo, std::ios::binary);  // blocks until the reader opens
        out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
    });
    auto all = read_all(fifo);
    writer.join();
    ASSERT_FALSE(all.error) << all.error->message();
    ASSERT_EQ(all.frames.size(), 2000u);
    EXPECT_EQ(all.frames[1999].ts_ns, 1999u);
    EXPECT_EQ(all.data[1999], payload(100, static_cast<uint8_t>(1999)));
}

// ---- real captures -----------------------------------------------------------------------------

// Files of the nDPI capture set that are genuinely damaged, each with a text its
// read error must contain. A listed file must still fail, so the list cannot go
// stale silently. (Neither tcpdump nor capinfos is installed here to compare.)
const std::map<std::string, std::string> kKnownCorrupt = {
    // A fuzzer's output that nDPI keeps as a regression input: 239 bytes, link-type
    // field 0x060601b0, snaplen 65601, and a first record claiming 524501 captured
    // bytes, above libpcap's own 262144-byte ceiling as well.
    {"fuzz-2021-10-13.pcap", "corrupt record at byte 24: captured length 524501"},
};

fs::path find_ndpi_dir() {
    for (fs::path p = fs::current_path(); !p.empty(); p = p.parent_path()) {
        if (fs::is_directory(p / "testdata/ndpi/pcap")) return p / "testdata/ndpi/pcap";
        if (p == p.parent_path()) break;
    }
    return {};
}

TEST(RealCaptures, NdpiSetReadsAndConvertsCompletely) {
    const fs::path dir = find_ndpi_dir();
    if (dir.empty()) GTEST_SKIP() << "testdata/ndpi/pcap not found (run scripts/fetch-testdata.sh)";
    std::vector<fs::path> files;
    for (const auto& e : fs::directory_iterator(dir)) {
        const auto ext = e.path().extension();
        if (!e.is_regular_file()) continue;
        if (ext == ".pcap" || ext == ".pcapng" || ext == ".cap")
            files.push_back(e.path());
        else
            std::printf("  not a capture by its name, skipped: %s\n", e.path().filename().c_str());
    }
    std::sort(files.begin(), files.end());
    ASSERT_FALSE(files.empty());

    size_t frames = 0, pcapng_files = 0;
    std::map<std::string, size_t> by_linktype;
    std::map<std::string, std::pair<size_t, std::string>> not_converted;  // file → count, first
    std::vector<std::string> unexpected;
    for (const auto& path : files) {
        const std::string name = path.filename().string();
        auto r = Reader::open(path.string());
        std::optional<Error> err;
        if (!r) {
            err = r.error();
        } else {
            pcapng_files += r->format() == Format::PcapNg;
            Frame f;
            std::vector<uint8_t> scratch;
            for (;;) {
                auto more = r->next(f);
                if (!more) {
                    err = more.error();
                    break;
                }
                if (!*more) break;
                ++frames;
                ++by_linktype[std::string(linktype_name(f.linktype)) + "(" +
                              std::to_string(f.linktype) + ")"];
                auto eth = to_ethernet(f, scratch);
                if (!eth) {
                    auto& nc = not_converted[name];
                    if (nc.first++ == 0)
                        nc.second = "frame " + std::to_string(f.index) + ": " + eth.error().detail;
                }
            }
        }
        const auto known = kKnownCorrupt.find(name);
        if (err) {
            std::printf("  read error: %s\n", err->message().c_str());
            if (known == kKnownCorrupt.end() || !contains(err->message(), known->second))
                unexpected.push_back(err->message());
        } else if (known != kKnownCorrupt.end()) {
            unexpected.push_back(name + " is listed as corrupt but reads cleanly");
        }
    }
    std::printf("nDPI captures: %zu files (%zu pcapng), %zu frames\n", files.size(), pcapng_files,
                frames);
    for (const auto& [lt, n] : by_linktype) std::printf("  %-20s %zu frames\n", lt.c_str(), n);
    for (const auto& [file, nc] : not_converted)
        std::printf("  not convertible: %s: %zu frames, first %s\n", file.c_str(), nc.first,
                    nc.second.c_str());
    EXPECT_TRUE(unexpected.empty()) << "unexpected read errors:\n  " << [&] {
        std::string s;
        for (const auto& u : unexpected) s += u + "\n  ";
        return s;
    }();
    EXPECT_GT(frames, 10000u);
}

}  // namespace
