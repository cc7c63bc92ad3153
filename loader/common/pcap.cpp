#include "common/pcap.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <utility>

namespace etcpipe::pcap {

namespace {

constexpr uint32_t kPcapMagicUs = 0xa1b2c3d4;
constexpr uint32_t kPcapMagicNs = 0xa1b23c4d;
constexpr uint32_t kNgShb = 0x0a0d0d0a;
constexpr uint32_t kNgByteOrder = 0x1a2b3c4d;
constexpr uint32_t kNgIdb = 1, kNgPb = 2, kNgSpb = 3, kNgEpb = 6;
constexpr size_t kPcapFileHdr = 24, kPcapRecHdr = 16;
constexpr uint64_t kNsPerSec = 1'000'000'000;
// Classic pcap's link-type field also carries FCS information in its upper bits.
constexpr uint32_t kLinktypeMask = 0x03ffffff;

uint32_t bswap32(uint32_t v) { return __builtin_bswap32(v); }

// Explicit byte orders, independent of the host's.
uint32_t load_be32(const uint8_t* p) {
    return uint32_t{p[0]} << 24 | uint32_t{p[1]} << 16 | uint32_t{p[2]} << 8 | p[3];
}
uint32_t load_le32(const uint8_t* p) {
    return uint32_t{p[3]} << 24 | uint32_t{p[2]} << 16 | uint32_t{p[1]} << 8 | p[0];
}
void store_le16(uint8_t* p, uint16_t v) {
    p[0] = static_cast<uint8_t>(v);
    p[1] = static_cast<uint8_t>(v >> 8);
}
void store_le32(uint8_t* p, uint32_t v) {
    store_le16(p, static_cast<uint16_t>(v));
    store_le16(p + 2, static_cast<uint16_t>(v >> 16));
}

std::string hex32(uint32_t v) {
    char b[16];
    std::snprintf(b, sizeof(b), "0x%08x", v);
    return b;
}

std::string hex16(uint16_t v) {
    char b[8];
    std::snprintf(b, sizeof(b), "0x%04x", v);
    return b;
}

Error data_error(const std::string& path, std::string detail) {
    return Error{ErrorKind::Data, 0, path, "read capture", std::move(detail), {}};
}

// Read whole when not mmappable (pipes, devices): the most we keep in memory.
constexpr size_t kMaxStreamBytes = size_t{4} << 30;

bool capture_magic(const uint8_t* p) {
    uint32_t m;
    std::memcpy(&m, p, 4);
    const uint32_t sw = bswap32(m);
    return m == kPcapMagicUs || m == kPcapMagicNs || sw == kPcapMagicUs || sw == kPcapMagicNs ||
           m == kNgShb;
}

}  // namespace

bool has_capture_magic(std::span<const uint8_t> first_bytes) {
    return first_bytes.size() >= 4 && capture_magic(first_bytes.data());
}

// ---- FileBytes --------------------------------------------------------------

namespace detail {

Result<FileBytes> FileBytes::load(const std::string& path, bool captures_only) {
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        const int err = errno;
        std::string hint = err == ENOENT   ? "check the path"
                           : err == EACCES ? "check the file's permissions (or run as its owner)"
                                           : "";
        return make_error(ErrorKind::Io, err, path, "open capture", {}, std::move(hint));
    }
    FileBytes fb;
    struct stat st{};
    if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_size > 0) {
        void* m = mmap(nullptr, static_cast<size_t>(st.st_size), PROT_READ, MAP_PRIVATE, fd, 0);
        if (m != MAP_FAILED) {
            fb.map_ = m;
            fb.map_len_ = static_cast<size_t>(st.st_size);
            ::close(fd);
            return fb;
        }
    }
    // Pipes, FIFOs, procfs, or mmap refused: read it all.
    std::vector<uint8_t> buf(1 << 16);
    size_t used = 0;
    for (;;) {
        if (used == buf.size()) buf.resize(buf.size() * 2);
        ssize_t n = ::read(fd, buf.data() + used, buf.size() - used);
        if (n < 0) {
            if (errno == EINTR) continue;
            int err = errno;
            ::close(fd);
            return make_error(ErrorKind::Io, err, path, "read capture");
        }
        if (n == 0) break;
        const bool had_magic = used >= 4;
        used += static_cast<size_t>(n);
        // A device or FIFO that never ends (/dev/zero, a stuck writer): stop at
        // the first bytes when they are no capture, and at a size limit otherwise.
        if (captures_only && !had_magic && used >= 4 && !capture_magic(buf.data())) {
            ::close(fd);
            return data_error(path, "not a pcap or pcapng file (first bytes " +
                                        hex32(load_be32(buf.data())) + ")");
        }
        if (used > kMaxStreamBytes) {
            ::close(fd);
            return data_error(path, "input is not a regular file and exceeds " +
                                        std::to_string(kMaxStreamBytes >> 30) +
                                        " GiB; save it to a file first");
        }
    }
    ::close(fd);
    buf.resize(used);
    fb.copy_ = std::move(buf);
    return fb;
}

FileBytes::FileBytes(FileBytes&& o) noexcept
    : map_(std::exchange(o.map_, nullptr)),
      map_len_(std::exchange(o.map_len_, 0)),
      copy_(std::move(o.copy_)) {}

FileBytes& FileBytes::operator=(FileBytes&& o) noexcept {
    if (this != &o) {
        if (map_) munmap(map_, map_len_);
        map_ = std::exchange(o.map_, nullptr);
        map_len_ = std::exchange(o.map_len_, 0);
        copy_ = std::move(o.copy_);
    }
    return *this;
}

FileBytes::~FileBytes() {
    if (map_) munmap(map_, map_len_);
}

std::span<const uint8_t> FileBytes::bytes() const {
    if (map_) return {static_cast<const uint8_t*>(map_), map_len_};
    return {copy_.data(), copy_.size()};
}

}  // namespace detail

// ---- Reader -------------------------------------------------------------------

uint16_t Reader::u16(uint64_t at) const {
    uint16_t v;
    std::memcpy(&v, bytes_.data() + at, sizeof(v));
    return big_endian_ ? __builtin_bswap16(v) : v;
}

uint32_t Reader::u32(uint64_t at) const {
    uint32_t v;
    std::memcpy(&v, bytes_.data() + at, sizeof(v));
    return big_endian_ ? bswap32(v) : v;
}

uint64_t Reader::u64(uint64_t at) const {
    uint64_t v;
    std::memcpy(&v, bytes_.data() + at, sizeof(v));
    return big_endian_ ? __builtin_bswap64(v) : v;
}

Error Reader::corrupt(const std::string& what, uint64_t at, const std::string& why) const {
    std::string d = what + " at byte " + std::to_string(at);
    if (!why.empty()) d += ": " + why;
    return data_error(path_, d + " (after " + std::to_string(frames_) + " frames)");
}

Result<Reader> Reader::open(const std::string& path) {
    auto fb = detail::FileBytes::load(path);
    if (!fb) return fb.error();
    return open(std::move(*fb), path);
}

Result<Reader> Reader::open(detail::FileBytes bytes, const std::string& path) {
    Reader r;
    r.path_ = path;
    r.file_ = std::move(bytes);
    r.bytes_ = r.file_.bytes();
    const auto& b = r.bytes_;
    if (b.empty()) return data_error(path, "empty file (0 bytes): not a capture");
    if (b.size() < 4)
        return data_error(path, "file of " + std::to_string(b.size()) +
                                    " bytes is too short to be a pcap or pcapng file");
    uint32_t magic;
    std::memcpy(&magic, b.data(), 4);
    const uint32_t swapped = bswap32(magic);
    if (magic == kPcapMagicUs || magic == kPcapMagicNs || swapped == kPcapMagicUs ||
        swapped == kPcapMagicNs) {
        r.format_ = Format::Pcap;
        r.big_endian_ = magic != kPcapMagicUs && magic != kPcapMagicNs;
        const uint32_t m = r.big_endian_ ? swapped : magic;
        r.pcap_frac_ns_ = m == kPcapMagicNs ? 1 : 1000;
        if (b.size() < kPcapFileHdr)
            return r.corrupt("truncated pcap file header", 0,
                             std::to_string(b.size()) + " of 24 bytes present");
        r.pcap_linktype_ = r.u32(20) & kLinktypeMask;
        r.pos_ = kPcapFileHdr;
        return r;
    }
    if (magic == kNgShb) {
        r.format_ = Format::PcapNg;
        r.pos_ = 0;
        return r;  // next() reads the SHB like any other block
    }
    return data_error(path, "not a pcap or pcapng file (magic " + hex32(magic) + ")");
}

Result<bool> Reader::next(Frame& out) {
    if (error_) return *error_;
    auto r = format_ == Format::Pcap ? next_pcap(out) : next_pcapng(out);
    if (!r) {
        error_ = r.error();  // sticky: the position after a bad record is unknowable
        return *error_;
    }
    if (*r) out.index = frames_++;
    return r;
}

Result<bool> Reader::next_pcap(Frame& out) {
    const uint64_t size = bytes_.size(), at = pos_;
    if (at == size) return false;
    if (size - at < kPcapRecHdr)
        return corrupt("truncated record header", at,
                       std::to_string(size - at) + " of 16 bytes present");
    const uint32_t sec = u32(at), frac = u32(at + 4);
    const uint32_t caplen = u32(at + 8), origlen = u32(at + 12);
    if (caplen > kMaxCaplen)
        return corrupt("corrupt record", at,
                       "captured length " + std::to_string(caplen) + " exceeds the limit of " +
                           std::to_string(kMaxCaplen));
    const uint64_t remain = size - at - kPcapRecHdr;
    if (remain < caplen)
        return corrupt("truncated record", at,
                       "header says " + std::to_string(caplen) + " bytes, " +
                           std::to_string(remain) + " remain");
    out.ts_ns = uint64_t{sec} * kNsPerSec + uint64_t{frac} * pcap_frac_ns_;
    out.caplen = caplen;
    out.origlen = origlen;
    out.linktype = pcap_linktype_;
    out.interface_id = 0;
    out.file_offset = at;
    out.data = bytes_.subspan(at + kPcapRecHdr, caplen);
    pos_ = at + kPcapRecHdr + caplen;
    return true;
}

Result<bool> Reader::next_pcapng(Frame& out) {
    for (;;) {
        if (pos_ == bytes_.size()) return false;
        auto r = read_block(out);
        if (!r || *r) return r;
    }
}

Result<bool> Reader::read_block(Frame& out) {
    const uint64_t size = bytes_.size(), at = pos_;
    if (size - at < 12)
        return corrupt("truncated block header", at,
                       std::to_string(size - at) + " of at least 12 bytes present");
    uint32_t raw_type;
    std::memcpy(&raw_type, bytes_.data() + at, 4);
    if (raw_type == kNgShb) {
        // Each section has its own byte order: learn it before reading the length.
        uint32_t bom;
        std::memcpy(&bom, bytes_.data() + at + 8, 4);
        if (bom == kNgByteOrder)
            big_endian_ = false;
        else if (bswap32(bom) == kNgByteOrder)
            big_endian_ = true;
        else
            return corrupt("section header block", at, "bad byte-order magic " + hex32(bom));
    }
    const uint32_t type = u32(at), len = u32(at + 4);
    // named only when something is wrong: formatting it for every block was
    // about 8 % of a replay's user time
    auto what = [&] { return "block of type " + hex32(type); };
    if (len < 12 || len % 4 != 0)
        return corrupt(what(), at, "invalid length " + std::to_string(len));
    if (len > size - at)
        return corrupt("truncated " + what(), at,
                       "header says " + std::to_string(len) + " bytes, " +
                           std::to_string(size - at) + " remain");
    if (u32(at + len - 4) != len)
        return corrupt(what(), at,
                       "trailing length " + std::to_string(u32(at + len - 4)) +
                           " differs from the leading " + std::to_string(len));
    pos_ = at + len;
    switch (type) {
        case kNgShb: {
            auto r = read_shb(at, len);
            if (!r) return r.error();
            return false;
        }
        case kNgIdb: {
            auto r = read_idb(at, len);
            if (!r) return r.error();
            return false;
        }
        case kNgEpb:
        case kNgSpb:
        case kNgPb: return read_packet(at, len, type, out);
        default: return false;  // NRB, ISB, DSB, custom, ...: nothing a frame needs
    }
}

Result<void> Reader::read_shb(uint64_t at, uint32_t len) {
    if (len < 28)
        return corrupt("section header block", at, "length " + std::to_string(len) + " < 28");
    const uint16_t major = u16(at + 12);
    if (major != 1)
        return corrupt("section header block", at,
                       "unsupported pcapng major version " + std::to_string(major));
    ifaces_.clear();  // interface ids are per section
    return {};
}

Result<void> Reader::read_idb(uint64_t at, uint32_t len) {
    if (len < 20)
        return corrupt("interface description block", at,
                       "length " + std::to_string(len) + " < 20");
    Interface itf;
    itf.linktype = u16(at + 8);
    itf.snaplen = u32(at + 12);
    // Options: code(2) length(2) value, padded to 32 bits; code 0 ends the list.
    uint64_t p = at + 16;
    const uint64_t end = at + len - 4;
    while (end - p >= 4) {
        const uint16_t code = u16(p), olen = u16(p + 2);
        if (code == 0) break;
        if (olen > end - p - 4)
            return corrupt("interface description block", at,
                           "option " + std::to_string(code) + " at byte " + std::to_string(p) +
                               " runs past the block");
        if (code == 9 && olen >= 1) {  // if_tsresol
            const uint8_t v = bytes_[p + 4];
            const unsigned exp = v & 0x7f;
            if (v & 0x80) {  // 2^-exp
                if (exp > 63)
                    return corrupt("interface description block", at,
                                   "if_tsresol 2^-" + std::to_string(exp) + " is out of range");
                itf.units_per_sec = uint64_t{1} << exp;
            } else {  // 10^-exp
                if (exp > 19)
                    return corrupt("interface description block", at,
                                   "if_tsresol 10^-" + std::to_string(exp) + " is out of range");
                itf.units_per_sec = 1;
                for (unsigned i = 0; i < exp; ++i) itf.units_per_sec *= 10;
            }
        } else if (code == 14 && olen >= 8) {  // if_tsoffset, whole seconds
            itf.offset_s = static_cast<int64_t>(u64(p + 4));
        }
        p += 4 + ((olen + 3u) & ~3u);
    }
    ifaces_.push_back(itf);
    return {};
}

Result<bool> Reader::read_packet(uint64_t at, uint32_t len, uint32_t type, Frame& out) {
    const char* what = type == kNgEpb ? "enhanced packet block"
                       : type == kNgSpb ? "simple packet block"
                                        : "packet block";
    uint32_t iface = 0, caplen = 0, origlen = 0;
    uint64_t ts_units = 0, data_at = 0;
    const bool has_ts = type != kNgSpb;
    if (type == kNgSpb) {
        if (len < 16) return corrupt(what, at, "length " + std::to_string(len) + " < 16");
        // No captured length field: it is whatever of origlen fits, within the snaplen.
        origlen = u32(at + 8);
        data_at = at + 12;
        caplen = std::min<uint32_t>(origlen, len - 16);
        if (!ifaces_.empty() && ifaces_[0].snaplen) caplen = std::min(caplen, ifaces_[0].snaplen);
    } else {
        if (len < 32) return corrupt(what, at, "length " + std::to_string(len) + " < 32");
        iface = type == kNgEpb ? u32(at + 8) : u16(at + 8);  // PB: u16 id, u16 drops
        ts_units = (uint64_t{u32(at + 12)} << 32) | u32(at + 16);
        caplen = u32(at + 20);
        origlen = u32(at + 24);
        data_at = at + 28;
        if (caplen > len - 32)
            return corrupt(what, at,
                           "captured length " + std::to_string(caplen) +
                               " overruns the block of " + std::to_string(len) + " bytes");
    }
    if (iface >= ifaces_.size())
        return corrupt(what, at,
                       "interface " + std::to_string(iface) + " but the section describes " +
                           std::to_string(ifaces_.size()));
    if (caplen > kMaxCaplen)
        return corrupt(what, at,
                       "captured length " + std::to_string(caplen) + " exceeds the limit of " +
                           std::to_string(kMaxCaplen));
    const Interface& itf = ifaces_[iface];
    out.ts_ns = 0;
    if (has_ts) {
        const uint64_t ups = itf.units_per_sec;
        const uint64_t secs = ts_units / ups, rem = ts_units % ups;
        // rem < ups ≤ 2^63, so rem * 10^9 needs up to 93 bits.
        __extension__ using u128 = unsigned __int128;
        const auto frac_ns = static_cast<uint64_t>(u128{rem} * kNsPerSec / ups);
        // if_tsoffset is a signed 64-bit count of seconds: add and scale in
        // 128 bits, and refuse a time that nanoseconds since 1970 cannot hold.
        __extension__ using i128 = __int128;
        const i128 ns = (static_cast<i128>(secs) + itf.offset_s) *
                            static_cast<i128>(kNsPerSec) +
                        frac_ns;
        if (ns < 0 || ns > static_cast<i128>(UINT64_MAX))
            return corrupt(what, at,
                           "timestamp out of range (interface " + std::to_string(iface) +
                               " if_tsoffset " + std::to_string(itf.offset_s) + " s)");
        out.ts_ns = static_cast<uint64_t>(ns);
    }
    out.caplen = caplen;
    out.origlen = origlen;
    out.linktype = itf.linktype;
    out.interface_id = iface;
    out.file_offset = at;
    out.data = bytes_.subspan(data_at, caplen);
    return true;
}

const char* linktype_name(uint32_t lt) {
    switch (lt) {
        case kLinktypeNull: return "NULL";
        case kLinktypeEthernet: return "ETHERNET";
        case kLinktypePpp: return "PPP";
        case kLinktypeRaw: return "RAW";
        case 12: return "RAW(12)";
        case 14: return "RAW(14)";
        case kLinktypeCHdlc: return "C_HDLC";
        case kLinktypeLoop: return "LOOP";
        case kLinktypeLinuxSll: return "LINUX_SLL";
        case kLinktypeIpv4: return "IPV4";
        case kLinktypeIpv6: return "IPV6";
        case kLinktypeLinuxSll2: return "LINUX_SLL2";
        default: return "unknown";
    }
}

// ---- link layer → Ethernet ---------------------------------------------------------

namespace {

constexpr uint16_t kEthIpv4 = 0x0800, kEthIpv6 = 0x86dd;

Error link_error(std::string detail) {
    return Error{ErrorKind::Data, 0, {}, "convert frame to Ethernet", std::move(detail), {}};
}

std::span<const uint8_t> synthesize(std::vector<uint8_t>& scratch, uint16_t ethertype,
                                    std::span<const uint8_t> payload,
                                    const uint8_t* src_mac = nullptr) {
    scratch.assign(14 + payload.size(), 0);
    if (src_mac) std::memcpy(scratch.data() + 6, src_mac, 6);
    scratch[12] = static_cast<uint8_t>(ethertype >> 8);
    scratch[13] = static_cast<uint8_t>(ethertype);
    if (!payload.empty()) std::memcpy(scratch.data() + 14, payload.data(), payload.size());
    return {scratch.data(), scratch.size()};
}

Result<uint16_t> ethertype_from_ip_version(std::span<const uint8_t> ip, const char* lt) {
    if (ip.empty()) return link_error(std::string(lt) + " frame has no IP header");
    switch (ip[0] >> 4) {
        case 4: return kEthIpv4;
        case 6: return kEthIpv6;
        default:
            return link_error(std::string(lt) + " frame with IP version " +
                              std::to_string(ip[0] >> 4));
    }
}

std::string too_short(const char* lt, size_t have, size_t need) {
    return std::string(lt) + " frame of " + std::to_string(have) + " bytes is shorter than its " +
           std::to_string(need) + "-byte header";
}

// Cisco HDLC: address, control, then an EtherType.
Result<std::span<const uint8_t>> from_chdlc(std::span<const uint8_t> d,
                                            std::vector<uint8_t>& scratch, const char* lt) {
    if (d.size() < 4) return link_error(too_short(lt, d.size(), 4));
    const auto proto = static_cast<uint16_t>(d[2] << 8 | d[3]);
    if (proto < 0x0600)
        return link_error(std::string(lt) + " Cisco HDLC protocol " + hex16(proto) +
                          " is not an EtherType");
    return synthesize(scratch, proto, d.subspan(4));
}

}  // namespace

Result<std::span<const uint8_t>> to_ethernet(const Frame& f, std::vector<uint8_t>& scratch) {
    const auto d = f.data;
    auto be16 = [&](size_t at) { return static_cast<uint16_t>(d[at] << 8 | d[at + 1]); };
    switch (f.linktype) {
        case kLinktypeEthernet: return d;
        case kLinktypeNull:
        case kLinktypeLoop: {
            if (d.size() < 4) return link_error(too_short(linktype_name(f.linktype), d.size(), 4));
            // LOOP is network order; NULL is the capturing host's order, which may
            // differ from ours: families are small, so the order that gives one wins.
            uint32_t fam = load_be32(d.data());
            if (f.linktype == kLinktypeNull && fam > 0xffff) fam = load_le32(d.data());
            uint16_t et;
            if (fam == 2)
                et = kEthIpv4;
            else if (fam == 10 || fam == 24 || fam == 28 || fam == 30)
                et = kEthIpv6;
            else
                return link_error("loopback frame of address family " + std::to_string(fam) +
                                  " (not IP)");
            return synthesize(scratch, et, d.subspan(4));
        }
        case kLinktypeRaw:
        case 12:
        case 14: {
            auto et = ethertype_from_ip_version(d, "RAW");
            if (!et) return et.error();
            return synthesize(scratch, *et, d);
        }
        case kLinktypeIpv4: return synthesize(scratch, kEthIpv4, d);
        case kLinktypeIpv6: return synthesize(scratch, kEthIpv6, d);
        case kLinktypeLinuxSll: {
            if (d.size() < 16) return link_error(too_short("LINUX_SLL", d.size(), 16));
            const uint16_t proto = be16(14), alen = be16(4);
            if (proto < 0x0600)
                return link_error("LINUX_SLL protocol " + hex16(proto) +
                                  ": not an Ethernet-compatible payload");
            return synthesize(scratch, proto, d.subspan(16), alen == 6 ? d.data() + 6 : nullptr);
        }
        case kLinktypeLinuxSll2: {
            if (d.size() < 20) return link_error(too_short("LINUX_SLL2", d.size(), 20));
            const uint16_t proto = be16(0);
            const uint8_t alen = d[11];
            if (proto < 0x0600)
                return link_error("LINUX_SLL2 protocol " + hex16(proto) +
                                  ": not an Ethernet-compatible payload");
            return synthesize(scratch, proto, d.subspan(20), alen == 6 ? d.data() + 12 : nullptr);
        }
        case kLinktypePpp: {
            // Cisco HDLC framing (address 0x0f/0x8f) also appears under LINKTYPE_PPP,
            // e.g. from Cisco routers' captures; Wireshark accepts it the same way.
            if (!d.empty() && (d[0] == 0x0f || d[0] == 0x8f)) return from_chdlc(d, scratch, "PPP");
            size_t off = 0;
            if (d.size() >= 2 && d[0] == 0xff && d[1] == 0x03) off = 2;  // address/control
            if (d.size() < off + 1) return link_error(too_short("PPP", d.size(), off + 1));
            uint16_t proto;
            if (d[off] & 1) {  // protocol field compressed to one byte
                proto = d[off];
                off += 1;
            } else {
                if (d.size() < off + 2) return link_error(too_short("PPP", d.size(), off + 2));
                proto = be16(off);
                off += 2;
            }
            if (proto == 0x0021) return synthesize(scratch, kEthIpv4, d.subspan(off));
            if (proto == 0x0057) return synthesize(scratch, kEthIpv6, d.subspan(off));
            return link_error("PPP protocol " + hex16(proto) + " is not IP");
        }
        case kLinktypeCHdlc: return from_chdlc(d, scratch, "C_HDLC");
        default:
            return link_error("link type " + std::to_string(f.linktype) + " (" +
                              linktype_name(f.linktype) + ") is not supported");
    }
}

// ---- Writer -----------------------------------------------------------------------

Error Writer::io_error(int err, std::string detail) const {
    return make_error(ErrorKind::Io, err, path_, "write pcap", std::move(detail));
}

Result<Writer> Writer::create(const std::string& path) {
    Writer w;
    w.path_ = path;
    w.fd_ = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (w.fd_ < 0) {
        const int err = errno;
        return make_error(ErrorKind::Io, err, path, "create pcap", {},
                          err == ENOENT   ? "does the directory exist?"
                          : err == EACCES ? "check the directory's permissions"
                                          : "");
    }
    uint8_t hdr[kPcapFileHdr] = {};  // thiszone and sigfigs stay 0
    store_le32(hdr, kPcapMagicNs);
    store_le16(hdr + 4, 2);  // version 2.4
    store_le16(hdr + 6, 4);
    store_le32(hdr + 16, kMaxCaplen);
    store_le32(hdr + 20, kLinktypeEthernet);
    w.buf_.assign(hdr, hdr + sizeof(hdr));
    return w;
}

Result<void> Writer::write(uint64_t ts_ns, std::span<const uint8_t> frame, uint32_t origlen) {
    if (fd_ < 0) return io_error(EBADF, "writer is closed");
    const uint32_t cap = static_cast<uint32_t>(std::min<size_t>(frame.size(), kMaxCaplen));
    uint8_t rec[kPcapRecHdr];
    store_le32(rec, static_cast<uint32_t>(ts_ns / kNsPerSec));
    store_le32(rec + 4, static_cast<uint32_t>(ts_ns % kNsPerSec));
    store_le32(rec + 8, cap);
    store_le32(rec + 12, std::max(origlen, cap));
    buf_.insert(buf_.end(), rec, rec + sizeof(rec));
    buf_.insert(buf_.end(), frame.begin(), frame.begin() + cap);
    ++frames_;
    if (buf_.size() >= (1u << 20)) return flush();
    return {};
}

Result<void> Writer::flush() {
    size_t done = 0;
    while (done < buf_.size()) {
        ssize_t n = ::write(fd_, buf_.data() + done, buf_.size() - done);
        if (n < 0) {
            if (errno == EINTR) continue;
            return io_error(errno, {});
        }
        done += static_cast<size_t>(n);
    }
    buf_.clear();
    return {};
}

Result<void> Writer::close() {
    if (fd_ < 0) return {};
    auto r = flush();
    int fd = std::exchange(fd_, -1);
    if (::close(fd) && r) return io_error(errno, "close");
    return r;
}

Writer::Writer(Writer&& o) noexcept
    : path_(std::move(o.path_)),
      fd_(std::exchange(o.fd_, -1)),
      buf_(std::move(o.buf_)),
      frames_(o.frames_) {}

Writer& Writer::operator=(Writer&& o) noexcept {
    if (this != &o) {
        (void)close();
        path_ = std::move(o.path_);
        fd_ = std::exchange(o.fd_, -1);
        buf_ = std::move(o.buf_);
        frames_ = o.frames_;
    }
    return *this;
}

Writer::~Writer() { (void)close(); }

}  // namespace etcpipe::pcap
