#include "nicnn/nicnn.hpp"

#include <linux/bpf.h>
#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>

#include "etcpipe/nicnn_model.h"
#include "common/skeleton.hpp"
#include "common/test_run.hpp"
#include "common/udp_frame.hpp"
#include "nicnn.skel.h"

namespace etcpipe::nicnn {

// ---- the reference ---------------------------------------------------------

nicnn_result reference(const Pixels& raw) {
    int x[8][8];
    for (int r = 0; r < 8; ++r)
        for (int c = 0; c < 8; ++c) x[r][c] = raw[static_cast<size_t>(r * 8 + c)] & NICNN_PIXEL_MAX;

    // conv (no bias yet), max over each 2x2 window, then bias and ReLU
    int h[NICNN_FILTERS * 4];
    for (int f = 0; f < NICNN_FILTERS; ++f) {
        int conv[4][4];
        for (int i = 0; i < 4; ++i)
            for (int j = 0; j < 4; ++j) {
                int s = 0;
                for (int u = 0; u < 5; ++u)
                    for (int v = 0; v < 5; ++v) s += nicnn_conv_w[f][u][v] * x[i + u][j + v];
                conv[i][j] = s;
            }
        for (int a = 0; a < 2; ++a)
            for (int b = 0; b < 2; ++b) {
                const int m = std::max({conv[2 * a][2 * b], conv[2 * a][2 * b + 1],
                                        conv[2 * a + 1][2 * b], conv[2 * a + 1][2 * b + 1]});
                h[4 * f + 2 * a + b] = std::max(0, m + nicnn_conv_b[f]);
            }
    }

    nicnn_result res{};
    int32_t best = 0;
    for (int k = 0; k < NICNN_CLASSES; ++k) {
        int64_t s = nicnn_fc_b[k];
        for (int j = 0; j < NICNN_FILTERS * 4; ++j) s += int64_t{nicnn_fc_w[k][j]} * h[j];
        res.score[k] = static_cast<int32_t>(s);
        if (k == 0 || res.score[k] > best) {
            best = res.score[k];
            res.cls = static_cast<uint32_t>(k);
        }
    }
    for (int k = 0; k < NICNN_CLASSES; ++k) {
        const uint32_t d = static_cast<uint32_t>(best - res.score[k]) >> NICNN_SOFTMAX_SHIFT;
        res.shift[k] = static_cast<uint16_t>(std::min<uint32_t>(d, 15));
    }
    return res;
}

uint8_t pixel_of(double v) {
    if (!(v > 0)) return 0;  // NaN and negatives too
    return v >= NICNN_PIXEL_MAX ? NICNN_PIXEL_MAX : static_cast<uint8_t>(v + 0.5);
}

std::vector<uint8_t> build_request(const Pixels& px, bool reply) {
    nicnn_msg m{};
    m.magic = NICNN_MAGIC;
    m.tag = NICNN_TAG_REQUEST;
    m.flags = reply ? NICNN_F_REPLY : 0;
    std::memcpy(m.pixel, px.data(), px.size());
    std::vector<uint8_t> out(sizeof(m));
    std::memcpy(out.data(), &m, sizeof(m));
    return out;
}

bool answer_in_place(std::span<uint8_t> d) {
    nicnn_msg m;
    if (d.size() < sizeof(m)) return false;
    std::memcpy(&m, d.data(), sizeof(m));
    if (m.magic != NICNN_MAGIC || m.tag != NICNN_TAG_REQUEST) return false;
    Pixels px;
    std::memcpy(px.data(), m.pixel, px.size());
    m.result = reference(px);
    m.tag = NICNN_TAG_CLASSIFIED;
    std::memcpy(d.data(), &m, sizeof(m));
    return true;
}

// ---- data --------------------------------------------------------------------

std::string default_digits_path() {
    for (const char* p : {"/usr/lib/python3/dist-packages/sklearn/datasets/data/digits.csv.gz",
                          "/usr/share/sklearn/datasets/data/digits.csv.gz"})
        if (std::filesystem::exists(p)) return p;
    return {};
}

Result<std::vector<Image>> load_digits(const std::string& path) {
    if (path.empty())
        return make_error(ErrorKind::Io, ENOENT, "digits.csv.gz", "find the digit images", {},
                          "install python3-sklearn (scripts/install-deps.sh does)");
    gzFile gz = gzopen(path.c_str(), "rb");
    if (!gz) return make_error(ErrorKind::Io, errno ? errno : EIO, path, "open");
    std::vector<Image> out;
    char line[1024];
    size_t lineno = 0;
    while (gzgets(gz, line, sizeof(line))) {
        ++lineno;
        Image im;
        const char* p = line;
        int n = 0;
        for (; n < NICNN_PIXELS + 1; ++n) {
            char* end = nullptr;
            const double v = std::strtod(p, &end);
            if (end == p) break;
            if (n < NICNN_PIXELS)
                im.px[static_cast<size_t>(n)] = pixel_of(v);
            else
                im.label = static_cast<int>(v);
            p = end;
            if (*p == ',') ++p;
        }
        if (n == 0 && (line[0] == '\n' || line[0] == 0)) continue;
        if (n != NICNN_PIXELS + 1 || im.label < 0 || im.label >= NICNN_CLASSES) {
            gzclose(gz);
            return make_error(ErrorKind::Data, EINVAL, path + ":" + std::to_string(lineno),
                              "read digit", "expected 64 pixels and a label 0..9");
        }
        out.push_back(im);
    }
    gzclose(gz);
    if (out.empty()) return make_error(ErrorKind::Data, EINVAL, path, "read digits", "no images");
    return out;
}

namespace {

// A NumPy .npy file (format 1.0/2.0/3.0, C order, little-endian): dtype
// letter+size, shape, and the data.
struct Npy {
    char kind = 0;  // 'u', 'i', 'f'
    size_t item = 0;
    std::vector<size_t> shape;
    std::vector<uint8_t> data;
};

Result<Npy> read_npy(const std::string& path) {
    std::FILE* f = std::fopen(path.c_str(), "rb");
    if (!f) return make_error(ErrorKind::Io, errno, path, "open");
    std::vector<uint8_t> all;
    uint8_t buf[65536];
    size_t n;
    while ((n = std::fread(buf, 1, sizeof(buf), f)) > 0) all.insert(all.end(), buf, buf + n);
    std::fclose(f);
    auto bad = [&](const char* why) { return make_error(ErrorKind::Data, EINVAL, path, "read .npy", why); };
    if (all.size() < 10 || std::memcmp(all.data(), "\x93NUMPY", 6) != 0) return bad("not a .npy file");
    size_t hlen, hoff;
    if (all[6] == 1) {
        hlen = all[8] | size_t{all[9]} << 8, hoff = 10;
    } else {
        if (all.size() < 12) return bad("truncated header");
        hlen = all[8] | size_t{all[9]} << 8 | size_t{all[10]} << 16 | size_t{all[11]} << 24, hoff = 12;
    }
    if (hoff + hlen > all.size()) return bad("truncated header");
    const std::string h(reinterpret_cast<const char*>(all.data() + hoff), hlen);
    Npy out;
    auto descr = h.find("'descr':");
    auto q1 = descr == std::string::npos ? descr : h.find('\'', descr + 8);
    if (q1 == std::string::npos || q1 + 3 >= h.size()) return bad("no dtype");
    const char order = h[q1 + 1];
    if (order == '>') return bad("big-endian data");
    out.kind = h[q1 + 2];
    out.item = static_cast<size_t>(std::atoi(h.c_str() + q1 + 3));
    if (h.find("'fortran_order': True") != std::string::npos) return bad("Fortran order");
    auto sp = h.find("'shape':");
    auto lp = sp == std::string::npos ? sp : h.find('(', sp);
    auto rp = lp == std::string::npos ? lp : h.find(')', lp);
    if (rp == std::string::npos) return bad("no shape");
    for (size_t i = lp + 1; i < rp;) {
        while (i < rp && (h[i] == ' ' || h[i] == ',')) ++i;
        if (i >= rp) break;
        out.shape.push_back(static_cast<size_t>(std::strtoull(h.c_str() + i, nullptr, 10)));
        while (i < rp && h[i] != ',') ++i;
    }
    size_t count = 1;
    for (size_t d : out.shape) count *= d;
    const bool known = (out.kind == 'u' && (out.item == 1 || out.item == 2 || out.item == 4 || out.item == 8)) ||
                       (out.kind == 'i' && (out.item == 1 || out.item == 2 || out.item == 4 || out.item == 8)) ||
                       (out.kind == 'f' && (out.item == 4 || out.item == 8));
    if (!known) return bad("dtype must be an integer or float32/float64");
    const size_t off = hoff + hlen;
    if (all.size() - off < count * out.item) return bad("data shorter than the shape says");
    out.data.assign(all.begin() + static_cast<long>(off), all.begin() + static_cast<long>(off + count * out.item));
    return out;
}

double npy_value(const Npy& a, size_t i) {
    const uint8_t* p = a.data.data() + i * a.item;
    auto get = [&](auto v) { std::memcpy(&v, p, sizeof(v)); return static_cast<double>(v); };
    if (a.kind == 'f') return a.item == 4 ? get(float{}) : get(double{});
    if (a.kind == 'u')
        switch (a.item) {
            case 1: return get(uint8_t{});
            case 2: return get(uint16_t{});
            case 4: return get(uint32_t{});
            default: return get(uint64_t{});
        }
    switch (a.item) {
        case 1: return get(int8_t{});
        case 2: return get(int16_t{});
        case 4: return get(int32_t{});
        default: return get(int64_t{});
    }
}

}  // namespace

Result<std::vector<Image>> load_npy_images(const std::string& path, const std::string& labels_path) {
    auto a = read_npy(path);
    if (!a) return a.error();
    const auto& s = a->shape;
    const bool flat = s.size() == 2 && s[1] == NICNN_PIXELS, square = s.size() == 3 && s[1] == 8 && s[2] == 8;
    if (!flat && !square)
        return make_error(ErrorKind::Data, EINVAL, path, "read images", "shape must be (N, 64) or (N, 8, 8)");
    std::vector<Image> out(s[0]);
    for (size_t i = 0; i < out.size(); ++i)
        for (size_t j = 0; j < NICNN_PIXELS; ++j) out[i].px[j] = pixel_of(npy_value(*a, i * NICNN_PIXELS + j));
    if (!labels_path.empty()) {
        auto l = read_npy(labels_path);
        if (!l) return l.error();
        if (l->shape.size() != 1 || l->shape[0] != out.size() || l->kind == 'f')
            return make_error(ErrorKind::Data, EINVAL, labels_path, "read labels",
                              "expected " + std::to_string(out.size()) + " integer labels, shape (N,)");
        for (size_t i = 0; i < out.size(); ++i) {
            const double v = npy_value(*l, i);
            if (v < 0 || v >= NICNN_CLASSES)
                return make_error(ErrorKind::Data, EINVAL, labels_path, "read labels",
                                  "label " + std::to_string(static_cast<long long>(v)) + " at " +
                                      std::to_string(i) + " is not 0..9");
            out[i].label = static_cast<int>(v);
        }
    }
    return out;
}

// ---- the program -------------------------------------------------------------

struct Program::Impl {
    Skeleton<nicnn_bpf> skel;
    TestRunBuffers bufs;
};

Program::Program() = default;
Program::~Program() = default;
Program::Program(Program&&) noexcept = default;
Program& Program::operator=(Program&&) noexcept = default;

Result<Program> Program::load() {
    const char* what = "nicnn.bpf.o";
    auto skel = Skeleton<nicnn_bpf>::open(what);
    if (!skel) return skel.error();
    if (auto r = skel->load(what); !r) return r.error();
    Program p;
    p.impl_ = std::make_unique<Impl>();
    p.impl_->skel = std::move(*skel);
    return p;
}

int Program::prog_fd() const { return impl_ ? bpf_program__fd(impl_->skel->progs.xdp_nicnn) : -1; }

Result<Program::Verdict> Program::classify(const Pixels& px, bool reply) {
    const auto frame = build_udp_frame(build_request(px, reply), NICNN_PORT);
    auto run = xdp_test_run(prog_fd(), frame, {}, 1, impl_->bufs);
    if (!run) return run.error();
    Verdict v;
    v.action = run->action;
    v.duration_ns = run->duration_ns;
    constexpr size_t kPayload = 14 + 20 + 8;
    if (run->frame.size() < kPayload + sizeof(nicnn_msg))
        return make_error(ErrorKind::Bpf, EPROTO, NICNN_PROG_NAME, "classify", "frame came back short");
    nicnn_msg m;
    std::memcpy(&m, run->frame.data() + kPayload, sizeof(m));
    if (m.tag != NICNN_TAG_CLASSIFIED)
        return make_error(ErrorKind::Bpf, EPROTO, NICNN_PROG_NAME, "classify",
                          "the program left the request unanswered (tag " + std::to_string(m.tag) + ")");
    v.result = m.result;
    v.checksums_ok = udp_frame_checksums_ok(run->frame);
    return v;
}

Result<AttachResult> attach(const std::string& iface, XdpMode mode) {
    auto skel = Skeleton<nicnn_bpf>::open("nicnn.bpf.o");
    if (!skel) return skel.error();
    // The attached program lives on after the skeleton is gone.
    return attach_object(iface, mode, (*skel)->obj, NICNN_PROG_NAME, [] { return Result<void>{}; });
}

ProgramKind program_kind() {
    ProgramKind k;
    k.application = "nicnn";
    k.prog_names = {NICNN_PROG_NAME};
    k.describe = [](int, bool, std::FILE* out) {
        std::fprintf(out, "    digit CNN: udp/%u, %d filters, stateless\n", NICNN_PORT, NICNN_FILTERS);
    };
    return k;
}

}  // namespace etcpipe::nicnn
