#include "nicnn/latency_bench.hpp"

#include <bpf/libbpf.h>

#include <algorithm>
#include <cstring>
#include <memory>

#include "common/fmt.hpp"
#include "common/skeleton.hpp"
#include "xdp_pass.skel.h"

namespace etcpipe::nicnn {

LatencyTopology bench_topology() { return {"etcnnA", "etcnnB", "etcna", "etcnb"}; }

namespace {

UdpLatencyLabels labels() {
    UdpLatencyLabels l;
    l.title = "nicnn latency: one UDP request (an 8x8 digit), classification, reply; client in "
              "netns A, veth to netns B; one request at a time";
    l.prog = NICNN_PROG_NAME;
    l.xdp_row = NICNN_PROG_NAME " (native XDP, XDP_TX)";
    l.user_who = "user-space server";
    l.user_row = "user-space reference (UDP socket)";
    l.item = "image";
    l.answer = "result";
    l.reference = "nicnn::reference";
    l.repeat_note =
        "  (repeat N reuses the frame the previous run changed: after the first run it is tagged\n"
        "   classified and has swapped ports, so only the first of the N runs classifies; the\n"
        "   repeat 1 row is the per-image cost, including the kernel's timer overhead for both)\n";
    return l;
}

// The images of the default digits' split.
Result<std::vector<Image>> default_images(const std::string& split, std::string& source) {
    const std::string path = default_digits_path();
    auto d = load_digits(path);
    if (!d) return d.error();
    size_t first = 0, end = d->size();
    if (split == "test") first = std::min(kTrainImages, end);
    else if (split == "train") end = std::min(kTrainImages, end);
    else if (split != "all")
        return Error{ErrorKind::Usage, 0, "bench", "choose images", "split " + split,
                     "test, train or all"};
    source = path + " (" + split + " split)";
    return std::vector<Image>(d->begin() + static_cast<long>(first),
                              d->begin() + static_cast<long>(end));
}

// reference() alone, `calls` times round robin over the images: TSC ticks.
uint64_t time_reference(const std::vector<Image>& images, size_t calls) {
    uint32_t sink = 0;
    const uint64_t c0 = read_tsc();
    for (size_t i = 0; i < calls; ++i) sink += reference(images[i % images.size()].px).cls;
    const uint64_t c1 = read_tsc();
    asm volatile("" : : "r"(sink));
    return c1 - c0;
}

// Whether `reply` is a classified copy of request `req` (same length, magic,
// flags and pixels).
bool is_reply_to(std::span<const uint8_t> reply, std::span<const uint8_t> req) {
    nicnn_msg a, b;
    if (reply.size() != req.size() || reply.size() < sizeof(a)) return false;
    std::memcpy(&a, reply.data(), sizeof(a));
    std::memcpy(&b, req.data(), sizeof(b));
    return a.magic == NICNN_MAGIC && a.tag == NICNN_TAG_CLASSIFIED && a.flags == b.flags &&
           std::memcmp(a.pixel, b.pixel, sizeof(a.pixel)) == 0;
}

}  // namespace

Result<BenchResult> latency_bench(const BenchOptions& o) {
    if (auto v = check_latency_options(o); !v) return v.error();
    BenchResult res;
    std::vector<Image> images = o.images;
    res.source = "the caller's images";
    if (images.empty()) {
        auto d = default_images(o.split, res.source);
        if (!d) return d.error();
        images = std::move(*d);
    }
    if (images.empty())
        return Error{ErrorKind::Data, 0, res.source, "build requests", "no images", {}};
    res.images = images.size();
    res.reference_calls = std::max<size_t>(o.reference_calls, 1);
    const uint64_t ref_ticks = time_reference(images, res.reference_calls);

    // xdp_nicnn for BPF_PROG_TEST_RUN (the attached one is loaded by
    // attach()), and xdp_pass as the floor.
    auto prog = Program::load();
    if (!prog) return prog.error();
    auto pass = Skeleton<xdp_pass_bpf>::open("xdp_pass.bpf.o");
    if (!pass) return pass.error();
    if (auto r = pass->load("xdp_pass.bpf.o"); !r) return r.error();

    UdpLatencyBench b;
    b.labels = labels();
    b.topology = bench_topology();
    std::vector<nicnn_result> want;
    for (const auto& im : images) {
        b.requests.push_back(build_request(im.px, true));
        want.push_back(reference(im.px));
    }
    b.check = [&](std::span<const uint8_t> reply, size_t k) {
        if (!is_reply_to(reply, b.requests[k])) return ReplyCheck::Other;
        nicnn_msg m;
        std::memcpy(&m, reply.data(), sizeof(m));
        return std::memcmp(&m.result, &want[k], sizeof(m.result)) == 0 ? ReplyCheck::Right
                                                                       : ReplyCheck::Wrong;
    };
    b.xdp.attach = [&](const std::string& iface) -> Result<void> {
        auto a = attach(iface, XdpMode::Native);
        if (!a) return a.error();
        res.multiprog = a->multiprog;
        return {};
    };
    b.xdp.detach = [](const std::string& iface) -> Result<void> {
        DetachOptions d;
        d.kinds = {program_kind()};
        auto n = detach(iface, d);
        if (!n) return n.error();
        return {};
    };
    // The same answer as the program's, from nicnn::reference.
    b.answer = [](std::span<const uint8_t> d, std::vector<uint8_t>& reply) {
        reply.assign(d.begin(), d.end());
        if (!answer_in_place(reply)) return false;
        nicnn_msg m;
        std::memcpy(&m, reply.data(), sizeof(m));
        return (m.flags & NICNN_F_REPLY) != 0;
    };
    b.prog_fd = prog->prog_fd();
    b.pass_fd = bpf_program__fd(pass->get()->progs.xdp_pass);
    auto r = udp_latency_bench(b, o);
    if (!r) return r.error();
    static_cast<UdpLatencyResult&>(res) = *r;
    if (res.tsc_hz > 0)
        res.reference_ns = static_cast<double>(ref_ticks) / res.tsc_hz * 1e9 /
                           static_cast<double>(res.reference_calls);
    return res;
}

std::string format_bench(const BenchResult& r) {
    std::string s = format_latency(r, labels());
    s += fmt("requests: %zu distinct images, round robin, from %s\n", r.images, r.source.c_str());
    s += fmt("%s on veth B through libxdp, %s\n", NICNN_PROG_NAME,
             r.multiprog ? "under its dispatcher" : "attached alone (no dispatcher)");
    s += fmt("user-space nicnn::reference alone: %.1f ns per image (%zu calls, TSC)\n",
             r.reference_ns, r.reference_calls);
    return s;
}

}  // namespace etcpipe::nicnn
