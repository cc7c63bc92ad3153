// Shared pieces of the feature extractors: the spec, batches, writers.
#include <arpa/inet.h>
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstdlib>
#include <new>
#include <cstring>
#include <fstream>
#include <optional>
#include <utility>
#include <sstream>

#include "features.hpp"
#include "common/log.hpp"

namespace etcpipe::features {

void* zeroed_alloc(size_t bytes) {
    // Large blocks are fresh mmap'ed pages: zero, and calloc does not write
    // them. (MADV_HUGEPAGE was tried: on the 2-core VM the kernel's direct
    // compaction made a process's first extraction 5x slower.)
    void* p = std::calloc(bytes ? bytes : 1, 1);
    if (p == nullptr) throw std::bad_alloc();
    return p;
}

std::string Feature::name() const {
    switch (kind) {
    case Kind::Payload: return "payload_" + std::to_string(h) + "x" + std::to_string(l);
    case Kind::Packet: return "packet_" + std::to_string(h) + "x" + std::to_string(l);
    case Kind::Sizes: return "sizes_" + std::to_string(h);
    case Kind::Iat: return "iat_" + std::to_string(h);
    case Kind::Port: return "port_" + std::to_string(h);
    }
    return "?";
}

size_t Feature::elem_size() const {
    switch (kind) {
    case Kind::Payload:
    case Kind::Packet: return 1;
    case Kind::Sizes:
    case Kind::Port: return 4;
    case Kind::Iat: return 8;
    }
    return 1;
}

size_t Feature::row_bytes() const {
    if (kind == Kind::Payload || kind == Kind::Packet) return size_t{h} * l;
    return size_t{h} * elem_size();
}

namespace {

constexpr uint32_t kMaxH = 1u << 16;
constexpr uint32_t kMaxL = 1u << 16;

Error spec_error(const std::string& part, const std::string& why) {
    return make_error(ErrorKind::Usage, 0, "", "feature spec",
                      "'" + part + "': " + why,
                      "use e.g. payload:10x1000,packet:5x100,sizes:10,iat:10");
}

// Parses a positive decimal number filling the whole string.
bool parse_num(std::string_view s, uint32_t max, uint32_t& out) {
    if (s.empty()) return false;
    uint32_t v = 0;
    const auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (ec != std::errc{} || ptr != s.data() + s.size() || v == 0 || v > max) return false;
    out = v;
    return true;
}

}  // namespace

Result<std::vector<Feature>> parse_spec(const std::string& spec) {
    std::vector<Feature> out;
    if (spec.empty()) return spec_error(spec, "empty");
    size_t start = 0;
    while (true) {
        const size_t comma = spec.find(',', start);
        const std::string part =
            spec.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
        const size_t colon = part.find(':');
        if (colon == std::string::npos) return spec_error(part, "expected NAME:SHAPE");
        const std::string name = part.substr(0, colon);
        const std::string_view shape = std::string_view(part).substr(colon + 1);
        Feature f;
        if (name == "payload" || name == "packet") {
            f.kind = name == "payload" ? Kind::Payload : Kind::Packet;
            const size_t x = shape.find('x');
            if (x == std::string_view::npos) return spec_error(part, "expected HxL");
            if (!parse_num(shape.substr(0, x), kMaxH, f.h))
                return spec_error(part, "H must be 1.." + std::to_string(kMaxH));
            if (!parse_num(shape.substr(x + 1), kMaxL, f.l))
                return spec_error(part, "L must be 1.." + std::to_string(kMaxL));
        } else if (name == "sizes" || name == "iat" || name == "port") {
            f.kind = name == "sizes" ? Kind::Sizes : name == "iat" ? Kind::Iat : Kind::Port;
            if (!parse_num(shape, kMaxH, f.h))
                return spec_error(part, "H must be 1.." + std::to_string(kMaxH));
        } else {
            return spec_error(part, "unknown feature '" + name +
                                        "' (payload, packet, sizes, iat, port)");
        }
        for (const Feature& g : out)
            if (g.name() == f.name()) return spec_error(part, "given twice");
        out.push_back(f);
        if (comma == std::string::npos) break;
        start = comma + 1;
    }
    return out;
}

uint32_t max_packets(const std::vector<Feature>& spec) {
    uint32_t h = 0;
    for (const Feature& f : spec) h = std::max(h, f.h);
    return h;
}

void Batch::add(std::span<const uint8_t> frame, uint64_t ts) {
    if (offsets.empty()) offsets.push_back(0);
    bytes.insert(bytes.end(), frame.begin(), frame.end());
    offsets.push_back(bytes.size());
    ts_ns.push_back(ts);
}

void Batch::clear() {
    bytes.clear();
    offsets.clear();
    ts_ns.clear();
}

namespace {

// The .npy preamble and header for `rows` rows of f, padded with spaces to
// `total` bytes (0: the next multiple of 64, as numpy writes it).
std::string npy_header(const Feature& f, size_t rows, size_t total = 0) {
    const char* descr = f.elem_size() == 1 ? "|u1" : f.elem_size() == 4 ? "<i4" : "<i8";
    std::string shape = "(" + std::to_string(rows) + ", " + std::to_string(f.h);
    if (f.kind == Kind::Payload || f.kind == Kind::Packet) shape += ", " + std::to_string(f.l);
    shape += ")";
    std::string header = std::string("{'descr': '") + descr +
                         "', 'fortran_order': False, 'shape': " + shape + ", }";
    // magic(6) + version(2) + header_len(2) + header + '\n' ≡ 0 (mod 64)
    const size_t unpadded = 10 + header.size() + 1;
    const size_t want = total ? total : unpadded + (64 - unpadded % 64) % 64;
    header.append(want - unpadded, ' ');
    header += '\n';
    std::string pre("\x93NUMPY\x01\x00", 8);
    pre += static_cast<char>(header.size() & 0xff);
    pre += static_cast<char>((header.size() >> 8) & 0xff);
    return pre + header;
}

// Room for a header with any row count (20 digits): 128 bytes.
constexpr size_t kStreamedNpyHeader = 128;

}  // namespace

Result<void> write_npy(const std::string& path, const Feature& f,
                       std::span<const uint8_t> tensor, size_t rows) {
    if (tensor.size() != rows * f.row_bytes())
        return make_error(ErrorKind::Data, 0, path, "write npy",
                          "tensor holds " + std::to_string(tensor.size()) + " bytes, expected " +
                              std::to_string(rows * f.row_bytes()));
    const std::string pre = npy_header(f, rows);
    std::FILE* fp = std::fopen(path.c_str(), "wb");
    if (!fp) return make_error(ErrorKind::Io, errno, path, "open for writing");
    bool ok = std::fwrite(pre.data(), 1, pre.size(), fp) == pre.size() &&
              (tensor.empty() || std::fwrite(tensor.data(), 1, tensor.size(), fp) == tensor.size());
    const int err = ok ? 0 : errno;
    if (std::fclose(fp) != 0 && ok) return make_error(ErrorKind::Io, errno, path, "close");
    if (!ok) return make_error(ErrorKind::Io, err ? err : EIO, path, "write npy");
    return {};
}

namespace {

std::string addr_str(const uint8_t* a, uint8_t family) {
    char buf[INET6_ADDRSTRLEN] = {};
    if (!inet_ntop(family == 6 ? AF_INET6 : AF_INET, a, buf, sizeof buf)) return "?";
    return buf;
}

// One flows.csv line: the flow as its initiator sent it.
void csv_row(std::ostream& os, size_t row, const FlowRow& r) {
    const etc_flow_key& k = r.key;
    const bool a = r.initiator_is_a != 0;
    os << row << ',' << unsigned{k.proto} << ','
       << addr_str(a ? k.addr_a : k.addr_b, k.family) << ','
       << (a ? k.port_a : k.port_b) << ','
       << addr_str(a ? k.addr_b : k.addr_a, k.family) << ','
       << (a ? k.port_b : k.port_a) << ',' << k.vlan[0] << ',' << k.vlan[1] << ','
       << r.first_ns << ',' << r.packets << ',' << r.selected;
}

constexpr const char* kCsvColumns = "row,proto,src,sport,dst,dport,vlan0,vlan1,first_ns,packets,selected";

// A CSV field: quoted when it holds a comma, quote or line break.
std::string csv_field(const std::string& s) {
    if (s.find_first_of(",\"\r\n") == std::string::npos) return s;
    std::string o = "\"";
    for (char c : s) {
        if (c == '"') o += '"';
        o += c;
    }
    return o + "\"";
}

}  // namespace

Result<void> write_flows_csv(const std::string& path, const Output& out) {
    std::ostringstream os;
    os << kCsvColumns << '\n';
    for (size_t i = 0; i < out.rows.size(); ++i) {
        csv_row(os, i, out.rows[i]);
        os << '\n';
    }
    std::ofstream f(path, std::ios::binary | std::ios::trunc);
    if (!f) return make_error(ErrorKind::Io, errno, path, "open for writing");
    const std::string s = os.str();
    f.write(s.data(), static_cast<std::streamsize>(s.size()));
    f.close();
    if (!f) return make_error(ErrorKind::Io, errno ? errno : EIO, path, "write flows csv");
    return {};
}

// ---- DatasetWriter ----------------------------------------------------------

Result<DatasetWriter> DatasetWriter::create(const std::string& dir, const std::vector<Feature>& spec) {
    if (mkdir(dir.c_str(), 0755) != 0 && errno != EEXIST)
        return make_error(ErrorKind::Io, errno, dir, "create output directory");
    DatasetWriter w;
    w.dir_ = dir;
    w.spec_ = spec;
    for (const Feature& f : spec) {
        const std::string path = dir + "/" + f.name() + ".npy";
        std::FILE* fp = std::fopen(path.c_str(), "wb");
        if (!fp) return make_error(ErrorKind::Io, errno, path, "open for writing");
        w.npy_.push_back(fp);
        const std::string h = npy_header(f, 0, kStreamedNpyHeader);
        if (std::fwrite(h.data(), 1, h.size(), fp) != h.size())
            return make_error(ErrorKind::Io, errno ? errno : EIO, path, "write npy");
    }
    const std::string csv = dir + "/flows.csv";
    w.csv_ = std::fopen(csv.c_str(), "wb");
    if (!w.csv_) return make_error(ErrorKind::Io, errno, csv, "open for writing");
    if (std::fprintf(w.csv_, "%s,capture\n", kCsvColumns) < 0)
        return make_error(ErrorKind::Io, errno ? errno : EIO, csv, "write flows csv");
    return w;
}

DatasetWriter::DatasetWriter(DatasetWriter&& o) noexcept { *this = std::move(o); }

DatasetWriter& DatasetWriter::operator=(DatasetWriter&& o) noexcept {
    if (this != &o) {
        close_files();
        dir_ = std::move(o.dir_);
        spec_ = std::move(o.spec_);
        npy_ = std::move(o.npy_);
        csv_ = std::exchange(o.csv_, nullptr);
        rows_ = std::exchange(o.rows_, 0);
        o.npy_.clear();
    }
    return *this;
}

DatasetWriter::~DatasetWriter() { close_files(); }

void DatasetWriter::close_files() {
    for (std::FILE* fp : npy_)
        if (fp) std::fclose(fp);
    npy_.clear();
    if (csv_) std::fclose(csv_);
    csv_ = nullptr;
}

Result<void> DatasetWriter::append(const Output& out, const std::string& capture) {
    if (!csv_) return make_error(ErrorKind::Usage, 0, dir_, "append to dataset", "the writer is closed");
    if (out.spec.size() != spec_.size() || out.tensors.size() != spec_.size())
        return make_error(ErrorKind::Usage, 0, dir_, "append to dataset", "feature spec differs");
    for (size_t f = 0; f < spec_.size(); ++f) {
        const TensorBytes& t = out.tensors[f];
        const std::string path = dir_ + "/" + spec_[f].name() + ".npy";
        if (out.spec[f].name() != spec_[f].name() || t.size() != out.rows.size() * spec_[f].row_bytes())
            return make_error(ErrorKind::Usage, 0, path, "append to dataset", "tensor does not match the spec");
        if (!t.empty() && std::fwrite(t.data(), 1, t.size(), npy_[f]) != t.size())
            return make_error(ErrorKind::Io, errno ? errno : EIO, path, "write npy");
    }
    std::ostringstream os;
    const std::string cap = csv_field(capture);
    for (size_t i = 0; i < out.rows.size(); ++i) {
        csv_row(os, rows_ + i, out.rows[i]);
        os << ',' << cap << '\n';
    }
    const std::string s = os.str();
    if (std::fwrite(s.data(), 1, s.size(), csv_) != s.size())
        return make_error(ErrorKind::Io, errno ? errno : EIO, dir_ + "/flows.csv", "write flows csv");
    rows_ += out.rows.size();
    return {};
}

Result<void> DatasetWriter::close() {
    if (!csv_) return make_error(ErrorKind::Usage, 0, dir_, "close dataset", "already closed");
    std::optional<Error> failed;
    for (size_t f = 0; f < spec_.size(); ++f) {
        const std::string path = dir_ + "/" + spec_[f].name() + ".npy";
        const std::string h = npy_header(spec_[f], rows_, kStreamedNpyHeader);
        std::FILE* fp = npy_[f];
        npy_[f] = nullptr;
        const bool ok = std::fseek(fp, 0, SEEK_SET) == 0 && std::fwrite(h.data(), 1, h.size(), fp) == h.size() &&
                        std::fflush(fp) == 0;
        const int err = errno ? errno : EIO;
        if (std::fclose(fp) != 0 || !ok)
            if (!failed) failed = make_error(ErrorKind::Io, ok ? (errno ? errno : EIO) : err, path, "write npy");
    }
    const std::string csv = dir_ + "/flows.csv";
    const bool csv_ok = std::fflush(csv_) == 0 && !std::ferror(csv_);
    const int err = errno ? errno : EIO;
    if (std::fclose(csv_) != 0 || !csv_ok)
        if (!failed) failed = make_error(ErrorKind::Io, csv_ok ? (errno ? errno : EIO) : err, csv, "write flows csv");
    csv_ = nullptr;
    if (failed) return *failed;
    return {};
}

Result<void> check_batch(const Batch& b, uint64_t next_index) {
    const size_t n = b.size();
    if (b.offsets.size() != n + 1 || b.offsets.back() > b.bytes.size())
        return make_error(ErrorKind::Data, 0, "", "feature batch",
                          "offsets/ts_ns sizes disagree or run past the bytes");
    for (size_t i = 0; i < n; ++i)
        if (b.offsets[i] > b.offsets[i + 1] || b.offsets[i + 1] - b.offsets[i] > UINT32_MAX)
            return make_error(ErrorKind::Data, 0, "", "feature batch",
                              "bad offset at frame " + std::to_string(i));
    if (b.first_index < next_index)
        return make_error(ErrorKind::Usage, 0, "", "feature batch",
                          "batches out of order: first_index " + std::to_string(b.first_index) +
                              " < " + std::to_string(next_index));
    return {};
}

Result<std::unique_ptr<Extractor>> make_extractor(Device device, unsigned threads,
                                                  const std::vector<Feature>& spec) {
    std::string why;
    const bool gpu_ok = gpu_available(device, &why);
    if (device == Device::Gpu || (device == Device::Auto && gpu_ok)) {
        if (!gpu_ok)
            return Error{ErrorKind::Usage, 0, "--device gpu", "use the GPU", why, "use --device cpu (or auto)"};
        // Rows stay on the device until the end: one bulk copy back instead of
        // one per batch (3.2x end to end on an H100, gpu/README.md), same bytes.
        GpuOptions go;
        go.device_output = true;
        return make_gpu_extractor(spec, go);
    }
    if (device == Device::Auto) ETC_INFO("no GPU (%s): extracting on the CPU", why.c_str());
    CpuOptions co;
    co.threads = threads;
    return make_cpu_extractor(spec, co);
}

}  // namespace etcpipe::features

namespace etcpipe {

Result<Device> parse_device(const std::string& text) {
    if (text == "gpu") return Device::Gpu;
    if (text == "cpu") return Device::Cpu;
    if (text == "auto") return Device::Auto;
    return Error{ErrorKind::Usage, 0, "--device " + text, "choose a device", "not gpu, cpu or auto", ""};
}

const char* device_name(Device device) {
    switch (device) {
        case Device::Cpu: return "cpu";
        case Device::Gpu: return "gpu";
        case Device::Auto: return "auto";
    }
    return "?";
}

}  // namespace etcpipe
