#include "common/test_run.hpp"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/bpf.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <string>

namespace etcpipe {

Result<XdpTestRun> xdp_test_run(int prog_fd, std::span<const uint8_t> frame,
                                std::span<const uint8_t> meta, uint32_t repeat,
                                TestRunBuffers& bufs, TestRunOutput output) {
    auto& in = bufs.in;
    auto& out = bufs.out;
    const auto meta_len = static_cast<uint32_t>(meta.size());
    // Both buffers only grow (a resize up zero-fills what it adds).
    const size_t in_size = meta_len + frame.size();
    if (in.size() < in_size) in.resize(std::max(in_size, 2 * in.size()));
    if (meta_len) std::memcpy(in.data(), meta.data(), meta_len);
    if (!frame.empty()) std::memcpy(in.data() + meta_len, frame.data(), frame.size());
    // Room for a program that grows its metadata or the frame.
    // Not for a frame the kernel splits into fragments (past ~3.5 KB of a
    // page): a cut inside those returns before the verdict is written.
    const bool meta_only = output == TestRunOutput::MetaOnly && meta_len > 0 && in_size <= 3072;
    const size_t out_size = meta_only ? meta_len : in_size + 256;
    if (out.size() < out_size) out.resize(std::max(out_size, 2 * out.size()));

    xdp_md ctx_in{}, ctx_out{};
    ctx_in.data = meta_len;
    ctx_in.data_end = static_cast<uint32_t>(in_size);
    LIBBPF_OPTS(bpf_test_run_opts, opts);
    opts.data_in = in.data();
    opts.data_size_in = static_cast<uint32_t>(in_size);
    opts.data_out = out.data();
    opts.data_size_out = static_cast<uint32_t>(out_size);
    opts.ctx_in = &ctx_in;
    opts.ctx_size_in = sizeof(ctx_in);
    opts.ctx_out = &ctx_out;
    opts.ctx_size_out = sizeof(ctx_out);
    opts.repeat = repeat;

    // Cut at data_size_out, as asked: the kernel says ENOSPC, writes the
    // verdict and the time all the same, and not the context.
    const bool cut = bpf_prog_test_run_opts(prog_fd, &opts) != 0;
    if (cut && errno == ENOSPC && meta_only) ctx_out.data = meta_len;
    else if (cut)
        return make_error(ErrorKind::Bpf, errno, "XDP program", "BPF_PROG_TEST_RUN",
                          "frame of " + std::to_string(frame.size()) + " bytes",
                          errno == EPERM ? "needs CAP_BPF/CAP_SYS_ADMIN (run as root)"
                          : errno == EINVAL && frame.size() < 14
                              ? "the kernel refuses frames shorter than an Ethernet header"
                              : "");
    XdpTestRun r;
    r.action = static_cast<int>(opts.retval);
    r.duration_ns = opts.duration;
    // data_out starts at data_meta; ctx_out.data is the metadata length.
    const uint32_t got = std::min(opts.data_size_out, static_cast<uint32_t>(out_size));
    const uint32_t got_meta = std::min(ctx_out.data, got);
    r.meta = {out.data(), got_meta};
    r.frame = {out.data() + got_meta, got - got_meta};
    return r;
}

}  // namespace etcpipe
