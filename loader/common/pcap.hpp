// Capture file I/O: a reader for classic pcap and pcapng (the format is taken
// from the file's magic, never its name), conversion of any supported link
// type to an Ethernet frame, and a nanosecond pcap writer.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "common/result.hpp"

namespace etcpipe::pcap {

// Link-layer header types (https://www.tcpdump.org/linktypes.html).
inline constexpr uint32_t kLinktypeNull = 0;
inline constexpr uint32_t kLinktypeEthernet = 1;
inline constexpr uint32_t kLinktypePpp = 9;
inline constexpr uint32_t kLinktypeRaw = 101;
inline constexpr uint32_t kLinktypeCHdlc = 104;
inline constexpr uint32_t kLinktypeLoop = 108;
inline constexpr uint32_t kLinktypeLinuxSll = 113;
inline constexpr uint32_t kLinktypeIpv4 = 228;
inline constexpr uint32_t kLinktypeIpv6 = 229;
inline constexpr uint32_t kLinktypeLinuxSll2 = 276;

// Largest captured length accepted from a file; anything bigger is corruption.
inline constexpr uint32_t kMaxCaplen = 256 * 1024;

enum class Format { Pcap, PcapNg };

struct Frame {
    uint64_t ts_ns = 0;         // since the epoch; 0 when the record has none (SPB)
    uint32_t caplen = 0;        // == data.size()
    uint32_t origlen = 0;       // length on the wire
    uint32_t linktype = 0;      // LINKTYPE_* of the frame's interface
    uint32_t interface_id = 0;  // pcapng interface within its section; 0 for pcap
    uint64_t file_offset = 0;   // of the record header / block
    uint64_t index = 0;         // 0-based frame number in the file
    std::span<const uint8_t> data;  // valid while the Reader (or its moved-to self) lives
};

// The first 4 bytes are a pcap (either byte order, µs or ns) or pcapng magic.
[[nodiscard]] bool has_capture_magic(std::span<const uint8_t> first_bytes);

namespace detail {

// Owns a file's bytes: an mmap'ed region, or a heap copy when the file cannot
// be mapped (pipes, /dev/stdin, procfs).
class FileBytes {
  public:
    // A file that is not mmappable is read whole, up to 4 GiB; with
    // captures_only, reading stops at the first 4 bytes when they are no
    // pcap/pcapng magic (so /dev/zero fails at once, not at the limit).
    static Result<FileBytes> load(const std::string& path, bool captures_only = true);

    FileBytes() = default;
    FileBytes(FileBytes&& other) noexcept;
    FileBytes& operator=(FileBytes&& other) noexcept;
    FileBytes(const FileBytes&) = delete;
    FileBytes& operator=(const FileBytes&) = delete;
    ~FileBytes();

    [[nodiscard]] std::span<const uint8_t> bytes() const;

  private:
    void* map_ = nullptr;
    size_t map_len_ = 0;
    std::vector<uint8_t> copy_;
};

}  // namespace detail

// Sequential frame reader. Errors name the file (subject), "read capture"
// (operation) and the byte offset and problem (detail). After an error every
// further next() returns the same error.
class Reader {
  public:
    static Result<Reader> open(const std::string& path);
    // The same on bytes already loaded (a caller that looked at them first:
    // a pipe cannot be read twice).
    static Result<Reader> open(detail::FileBytes bytes, const std::string& path);

    // true: `out` holds the next frame; false: clean end of file.
    Result<bool> next(Frame& out);

    [[nodiscard]] Format format() const { return format_; }
    [[nodiscard]] uint64_t offset() const { return pos_; }  // bytes consumed so far
    [[nodiscard]] const std::string& path() const { return path_; }
    [[nodiscard]] size_t frames_read() const { return frames_; }
    [[nodiscard]] size_t size_bytes() const { return bytes_.size(); }  // the whole capture

  private:
    struct Interface {
        uint32_t linktype = 0;
        uint32_t snaplen = 0;
        uint64_t units_per_sec = 1'000'000;  // if_tsresol, default 10^-6
        int64_t offset_s = 0;                // if_tsoffset
    };

    Reader() = default;
    Result<bool> next_pcap(Frame& out);
    Result<bool> next_pcapng(Frame& out);
    Result<bool> read_block(Frame& out);  // true when the block was a packet
    Result<void> read_shb(uint64_t at, uint32_t len);
    Result<void> read_idb(uint64_t at, uint32_t len);
    Result<bool> read_packet(uint64_t at, uint32_t len, uint32_t type, Frame& out);
    // Data error "<what> at byte <at>[: <why>] (after N frames)".
    [[nodiscard]] Error corrupt(const std::string& what, uint64_t at,
                                const std::string& why = {}) const;

    [[nodiscard]] uint16_t u16(uint64_t at) const;
    [[nodiscard]] uint32_t u32(uint64_t at) const;
    [[nodiscard]] uint64_t u64(uint64_t at) const;

    std::string path_;
    detail::FileBytes file_;
    std::span<const uint8_t> bytes_;
    Format format_ = Format::Pcap;
    bool big_endian_ = false;        // of the file (pcap) or current section (pcapng)
    uint32_t pcap_frac_ns_ = 1000;   // classic pcap: ns per fractional-second tick
    uint32_t pcap_linktype_ = 0;
    std::vector<Interface> ifaces_;  // pcapng: interfaces of the current section
    uint64_t pos_ = 0;
    size_t frames_ = 0;
    std::optional<Error> error_;
};

// Name of a link type ("ETHERNET", "LINUX_SLL", ...), "unknown" if unlisted.
[[nodiscard]] const char* linktype_name(uint32_t linktype);

// An Ethernet frame for `f`: Ethernet frames are returned as they are (no
// copy); other link types get a synthetic 14-byte header (zero MACs, except a
// source MAC taken from an SLL/SLL2 address) followed by the network-layer
// bytes, built in `scratch`, so the span lives until `scratch` changes.
// Errors are ErrorKind::Data with an empty subject (callers add the file).
[[nodiscard]] Result<std::span<const uint8_t>> to_ethernet(const Frame& f,
                                                           std::vector<uint8_t>& scratch);

// Writes a classic pcap: nanosecond magic, little-endian, LINKTYPE_ETHERNET,
// snaplen kMaxCaplen. Buffered; the destructor flushes and closes but cannot
// report errors, so call close() where they matter.
class Writer {
  public:
    static Result<Writer> create(const std::string& path);

    // Frames longer than the snaplen are truncated; origlen is raised to at
    // least the captured length so the file stays valid.
    Result<void> write(uint64_t ts_ns, std::span<const uint8_t> frame, uint32_t origlen);
    Result<void> close();

    [[nodiscard]] const std::string& path() const { return path_; }
    [[nodiscard]] uint64_t frames_written() const { return frames_; }

    Writer(Writer&& other) noexcept;
    Writer& operator=(Writer&& other) noexcept;
    Writer(const Writer&) = delete;
    Writer& operator=(const Writer&) = delete;
    ~Writer();

  private:
    Writer() = default;
    Result<void> flush();
    [[nodiscard]] Error io_error(int err, std::string detail) const;

    std::string path_;
    int fd_ = -1;
    std::vector<uint8_t> buf_;
    uint64_t frames_ = 0;
};

}  // namespace etcpipe::pcap
