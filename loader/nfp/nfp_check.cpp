// NFP offload checker (see nfp_check.hpp for the contract, SPEC §6 for the
// rules, checker_internal.hpp for the outline): 5. check_object() walks every
// program of an object and the subprograms it calls.
#include "nfp/nfp_check.hpp"

#include <bpf/libbpf.h>
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <deque>
#include <memory>
#include <optional>
#include <set>
#include <tuple>
#include <vector>

#include "nfp/checker_internal.hpp"

namespace etcpipe::nfp {
namespace {

using checker::Func;
using checker::Image;
using checker::Section;
using checker::Sink;

// The function that starts at instruction `at` of section `sec`: its symbol,
// or an unnamed subprogram up to the next symbol.
std::optional<Func> find_func(const Image& im, size_t sec, int64_t at) {
    if (sec >= im.secs.size() || at < 0) return std::nullopt;
    const auto idx = static_cast<size_t>(at);
    size_t end = im.secs[sec].insns.size();
    for (const Func& f : im.funcs) {
        if (f.sec != sec) continue;
        if (f.start == idx) return f.count ? f : Func{f.name, sec, idx, end - idx};
        if (f.start > idx) end = std::min(end, f.start);
    }
    if (idx >= im.secs[sec].insns.size()) return std::nullopt;
    return Func{"subprog@" + im.secs[sec].name + "+" + std::to_string(idx), sec, idx, end - idx};
}

// The function (a symbol, or the program itself) whose code `callee` starts
// inside of rather than at: the kernel refuses overlapping functions.
const Func* enclosing(const Image& im, const Func& mainf, const Func& callee) {
    auto inside = [&](const Func& f) {
        return f.sec == callee.sec && f.start < callee.start && callee.start - f.start < f.count;
    };
    if (inside(mainf)) return &mainf;
    for (const Func& f : im.funcs)
        if (inside(f)) return &f;
    return nullptr;
}

// Walks the program `mainf` and, breadth first, every BPF-to-BPF callee, each
// once; adds their code to the estimate.
void walk_program(const Image& im, const Func& mainf, bpf_prog_type type, Sink& sink,
                  ProgramEstimate& est) {
    const std::string& name = est.program;
    std::set<std::pair<size_t, size_t>> done{{mainf.sec, mainf.start}};
    std::deque<std::tuple<Func, bool, std::string>> todo{{mainf, true, name}};
    while (!todo.empty()) {
        auto [f, is_main, label] = todo.front();
        todo.pop_front();
        const Section& sec = im.secs[f.sec];
        const size_t count = std::min(f.count, sec.insns.size() - std::min(f.start, sec.insns.size()));
        est.bpf_insns += count;
        est.nfp_insns += checker::nfp_cost(sec, f.start, count);
        checker::Walker w(sec, f.start, count, type, is_main, label);
        w.run(sink);
        for (auto [csec, cat] : w.callees) {
            const size_t s2 = csec == static_cast<size_t>(-1) ? f.sec : csec;
            auto cf = find_func(im, s2, cat);
            if (!cf) {
                sink.add(label, -1, "cannot-prove-call", "BPF-to-BPF call target not found",
                         "mark helper functions static __always_inline", true);
                continue;
            }
            if (const Func* outer = enclosing(im, mainf, *cf)) {
                sink.add(label, -1, "cannot-prove-call",
                         "BPF-to-BPF call into the middle of " + outer->name + " (instruction " +
                             std::to_string(cf->start - outer->start) + ")",
                         "the object is corrupt: a call must target the start of a function", true);
                continue;
            }
            if (done.emplace(cf->sec, cf->start).second)
                todo.emplace_back(*cf, false, name + "/" + cf->name);
        }
    }
}

ProgramEstimate check_program(const Image& im, bpf_program* prog, size_t nfp_limit, Sink& sink) {
    const std::string name = bpf_program__name(prog);
    const std::string section = bpf_program__section_name(prog);
    const bpf_prog_type type = bpf_program__type(prog);
    ProgramEstimate est{name, section, 0, checker::kProgramOverhead};
    if (type != BPF_PROG_TYPE_XDP && type != BPF_PROG_TYPE_SCHED_CLS) {
        const char* tn = libbpf_bpf_prog_type_str(type);
        sink.add(name, -1, "prog-type",
                 std::string("program type ") + (tn ? tn : "unknown") + " (section '" +
                     section + "') cannot be offloaded",
                 "the NFP offloads only XDP (SEC(\"xdp\")) and TC classifier "
                 "(SEC(\"tc\")) programs");
    }
    const Func* mainf = nullptr;
    for (const Func& f : im.funcs)
        if (f.name == name && im.secs[f.sec].name == section) mainf = &f;
    if (!mainf) {
        sink.add(name, -1, "cannot-prove-elf", "program code not found in the ELF symbols",
                 "rebuild the object with clang -g -O2 -target bpf", true);
        return est;
    }
    // libbpf sized the program from the same symbol: if the two readings
    // differ, one of them is wrong about what is being checked.
    if (const size_t n = bpf_program__insn_cnt(prog); mainf->count != 0 && n != mainf->count) {
        sink.add(name, -1, "cannot-prove-elf",
                 "libbpf reads " + std::to_string(n) + " instructions, the ELF symbol " +
                     std::to_string(mainf->count),
                 "the object is corrupt: rebuild it with clang -g -O2 -target bpf", true);
    }
    walk_program(im, *mainf, type, sink, est);
    if (est.nfp_insns > nfp_limit) {
        sink.add(name, -1, "insn-budget",
                 "about " + std::to_string(est.nfp_insns) + " NFP instructions (estimate) > limit " +
                     std::to_string(nfp_limit),
                 "unroll less, share code paths, or move work to user space");
    }
    return est;
}

// The reader's findings, object-level; a corrupt object can have thousands.
void report_defects(const Image& im, Sink& sink) {
    constexpr size_t kShown = 20;
    static constexpr const char* kHint =
        "the object is corrupt or truncated: rebuild it with clang -g -O2 -target bpf";
    for (size_t k = 0; k < im.defects.size() && k < kShown; ++k)
        sink.add("", -1, "cannot-prove-elf", im.defects[k], kHint, true, im.defects[k]);
    if (im.defects.size() > kShown)
        sink.add("", -1, "cannot-prove-elf",
                 std::to_string(im.defects.size() - kShown) + " more ELF defects not shown", kHint,
                 true, "more");
}

// The object's name for libbpf, as bpf_object__open_file() derives it from
// the path: the file name up to its first '.' (internal maps are named after
// it, "flowmgr.rodata").
std::string object_name(const std::string& name) {
    const size_t slash = name.rfind('/');
    std::string base = slash == std::string::npos ? name : name.substr(slash + 1);
    base = base.substr(0, base.find('.'));
    return base.empty() ? "object" : base;
}

}  // namespace

Result<Report> check_object_mem(std::span<const uint8_t> bytes, const std::string& name,
                                size_t nfp_limit) {
    auto img = checker::read_image(bytes, name);
    if (!img) return img.error();

    // libbpf keeps (and, through libelf, may write to) the buffer for the
    // object's lifetime: its own copy, declared before the object.
    std::vector<char> buf(bytes.begin(), bytes.end());
    const std::string oname = object_name(name);
    bpf_object_open_opts opts{};  // what LIBBPF_OPTS does, without its GNU statement expression
    opts.sz = sizeof opts;
    opts.object_name = oname.c_str();
    errno = 0;
    bpf_object* raw = bpf_object__open_mem(buf.data(), buf.size(), &opts);
    if (!raw)  // errno: an errno value or a libbpf code (4000 up), both named by Error
        return make_error(ErrorKind::Bpf, errno ? errno : EINVAL, name, "libbpf open", {},
                          "is this a BPF object built by clang -target bpf?");
    std::unique_ptr<bpf_object, void (*)(bpf_object*)> obj(raw, bpf_object__close);

    Report rep;
    rep.object = name;
    rep.nfp_limit = nfp_limit;
    Sink sink;
    sink.out = &rep.violations;
    report_defects(*img, sink);
    checker::check_maps(obj.get(), sink);
    bpf_program* prog = nullptr;
    bpf_object__for_each_program(prog, obj.get()) {
        rep.programs.push_back(check_program(*img, prog, nfp_limit, sink));
    }
    if (rep.programs.empty())
        sink.add("", -1, "cannot-prove-elf", "the object has no program (no code section libbpf reads)",
                 "pass the object that holds the SEC(\"xdp\") or SEC(\"tc\") program", true);
    return rep;
}

Result<Report> check_object(const std::string& path, size_t nfp_limit) {
    const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return make_error(ErrorKind::Io, errno, path, "open BPF object", {},
                          "check the path (build it with make first)");
    std::vector<uint8_t> bytes;
    uint8_t chunk[1 << 16];
    for (;;) {
        const ssize_t n = read(fd, chunk, sizeof chunk);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
            const int err = errno;
            close(fd);
            return make_error(ErrorKind::Io, err, path, "read BPF object");
        }
        if (n == 0) break;
        bytes.insert(bytes.end(), chunk, chunk + n);
    }
    close(fd);
    return check_object_mem(bytes, path, nfp_limit);
}

}  // namespace etcpipe::nfp
