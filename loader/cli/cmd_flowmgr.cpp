#include "cli/cmd_flowmgr.hpp"

#include <sys/stat.h>

#include <cerrno>
#include <cinttypes>
#include <cstdio>
#include <functional>
#include <map>
#include <optional>
#include <vector>
#include <string>

#include "anova/anova_attach.hpp"
#include "nicnn/nicnn.hpp"
#include "pkttag/pkttag.hpp"
#include "cli/cli_anova.hpp"
#include "cli/cli_common.hpp"
#include "cli/cli_pkttag.hpp"
#include "cli/many_inputs.hpp"
#include "cli/cmd_status.hpp"
#include "cli/flowmgr_args.hpp"
#include "common/json_text.hpp"
#include "common/ordered_jobs.hpp"
#include "common/pcap.hpp"
#include "common/pcap_send.hpp"
#include "common/progress.hpp"
#include "common/signals.hpp"
#include "common/xdp_attach.hpp"
#include "flowmgr/flowmgr.hpp"
#include "flowmgr/flowmgr_attach.hpp"
#include "flowmgr/live.hpp"
#include "flowmgr/replay.hpp"

namespace etcpipe::cli {

namespace {

// ---- load ----------------------------------------------------------------

struct LoadArgs {
    std::string iface;
    XdpMode mode = XdpMode::Native;
    FlowMgrArgs flowmgr;
    std::string prog = "flowmgr";
    AnovaParamArgs anova;
    uint16_t anova_port = ANOVA_DEFAULT_PORT;
    anova_reply reply = ANOVA_REPLY_PASS;
};

void add_load_options(CLI::App* load, LoadArgs& a) {
    const std::map<std::string, XdpMode> modes{{"native", XdpMode::Native},
                                               {"skb", XdpMode::Skb},
                                               {"hw", XdpMode::Hw},
                                               {"unspecified", XdpMode::Unspecified}};
    add_option(load, "IFACE", a.iface, "interface to attach to")->required();
    add_option(load, "-m,--mode", a.mode,
                     "XDP mode: native (driver), skb (generic, any device), hw (offload)")
        ->transform(CLI::CheckedTransformer(modes, CLI::ignore_case))
        ->default_str("native");
    add_option(load, "-p,--pin-path", a.flowmgr.pin_path,
                     "pin the flow table, counters, XSKMAP and ring buffer under this bpffs "
                     "directory (e.g. /sys/fs/bpf/etcpipe)");
    add_option(load, "--prog", a.prog,
                     "flowmgr: the FlowManager; anova: the ANOVA state split (offloadable, -m hw); "
                     "nicnn: the digit CNN (udp/9878, requests say pass or reply); pkttag: the "
                     "per-packet tagger (class into the DSCP, offloadable)")
        ->check(CLI::IsMember({"flowmgr", "anova", "nicnn", "pkttag"}))
        ->capture_default_str();
    add_flowmgr_options(load, a.flowmgr);
    add_anova_params(load, a.anova);
    add_option(load, "--port", a.anova_port, "anova: UDP port of the requests")
        ->capture_default_str()->group("Rule");
    const std::map<std::string, anova_reply> replies{{"pass", ANOVA_REPLY_PASS},
                                                     {"tx", ANOVA_REPLY_TX}};
    add_option(load, "--reply", a.reply,
                     "anova: pass (verdict written, packet goes on) or tx (sent back to the sender)")
        ->transform(CLI::CheckedTransformer(replies, CLI::ignore_case))
        ->default_str("pass")->group("Rule");
}

int load_anova(const LoadArgs& a) {
    auto params = a.anova.params();
    if (!params) return fail(params.error());
    anova::ProgramOptions po;
    po.params = *params;
    po.encoding = a.anova.encoding;
    po.port = a.anova_port;
    po.reply = a.reply;
    auto r = anova::attach(a.iface, a.mode, po);
    if (!r) return fail(r.error());
    std::printf("%s: ANOVA program attached (program id %u, %s mode), udp/%u, reply %s\n",
                a.iface.c_str(), r->prog_id, xdp_mode_name(r->mode), po.port,
                po.reply == ANOVA_REPLY_TX ? "tx" : "pass");
    return kOk;
}

int load_nicnn(const LoadArgs& a) {
    auto r = nicnn::attach(a.iface, a.mode);
    if (!r) return fail(r.error());
    std::printf("%s: nicnn digit CNN attached (program id %u, %s mode), udp/%u\n", a.iface.c_str(),
                r->prog_id, xdp_mode_name(r->mode), NICNN_PORT);
    return kOk;
}

int load_pkttag(const LoadArgs& a) {
    auto r = pkttag::attach(a.iface, a.mode);
    if (!r) return fail(r.error());
    std::printf("%s: per-packet tagger attached (program id %u, %s mode): class + 1 into the DSCP\n",
                a.iface.c_str(), r->prog_id, xdp_mode_name(r->mode));
    return kOk;
}

int load_flowmgr(const LoadArgs& a) {
    auto opts = a.flowmgr.to_options();
    if (!opts) return fail(opts.error());
    auto r = attach_flowmgr(a.iface, a.mode, *opts);
    if (!r) return fail(r.error());
    std::printf("%s: FlowManager attached (program id %u, %s mode, %s)\n", a.iface.c_str(),
                r->prog_id, xdp_mode_name(r->mode),
                r->multiprog ? "libxdp dispatcher" : "single program: dispatcher unavailable");
    if (!opts->pin_path.empty()) std::printf("maps pinned under %s\n", opts->pin_path.c_str());
    return kOk;
}

int run_load(const LoadArgs& a, const CLI::App&) {
    if (auto c = require_capabilities("load", {Cap::Bpf, Cap::NetAdmin, Cap::Perfmon}); !c) return fail(c.error());
    if (a.prog == "anova") return load_anova(a);
    if (a.prog == "nicnn") return load_nicnn(a);
    if (a.prog == "pkttag") return load_pkttag(a);
    return load_flowmgr(a);
}

// ---- unload --------------------------------------------------------------

struct UnloadArgs {
    std::string iface;
    DetachOptions detach;
    uint32_t id = 0;
};

void add_unload_options(CLI::App* unload, UnloadArgs& a) {
    add_option(unload, "IFACE", a.iface, "interface")->required();
    unload->add_flag("-a,--all", a.detach.all, "detach every XDP program on the interface");
    add_option(unload, "-i,--id", a.id, "detach only the program with this id (see status)");
    add_option(unload, "-p,--pin-path", a.detach.pin_path,
                       "remove the maps pinned there by `load -p`");
}

int run_unload(const UnloadArgs& a, const CLI::App& unload) {
    DetachOptions opts = a.detach;
    if (unload.count("--id")) opts.id = a.id;
    opts.kinds = etcpipe_program_kinds();
    auto r = detach(a.iface, opts);
    if (!r) return fail(r.error());
    std::printf("%s: %d XDP program%s detached\n", a.iface.c_str(), *r, *r == 1 ? "" : "s");
    return kOk;
}

// ---- replay --------------------------------------------------------------

struct ReplayArgs {
    std::vector<std::string> inputs;
    std::string json_path = "-", write_pcap;
    uint64_t max_frames = 0;
    unsigned jobs = 0;
    FlowMgrArgs flowmgr;
    bool quiet = false, all_counters = false, table = false;
    std::string prog = "flowmgr";
    PkttagReplayArgs pkttag;
};

void add_replay_options(CLI::App* rep, ReplayArgs& a) {
    a.flowmgr.delivery = ETC_DELIVERY_INLINE;  // no AF_XDP socket in a replay: use the ring buffer
    add_capture_inputs(rep, a.inputs, a.jobs);
    add_option(rep, "-o,--output", a.json_path,
                    "JSON Lines file for the flows, each with its capture ('-' = stdout, '' = none)")
        ->capture_default_str();
    add_option(rep, "-w,--write-pcap", a.write_pcap,
                    "write the selected packets to this pcap, whole (as read, whatever --snap), "
                    "in input order");
    add_option(rep, "-c,--count", a.max_frames, "stop after this many frames of each capture (0 = all)");
    rep->add_flag("-t,--table", a.table,
                  "print the flows as an aligned table on stdout instead of JSON Lines");
    rep->add_flag("-q,--quiet", a.quiet, "no progress bar and no counter summary");
    rep->add_flag("-a,--all-counters", a.all_counters, "list zero counters too");
    add_flowmgr_options(rep, a.flowmgr);
    rep->get_option("--delivery")->default_str("inline");
    add_option(rep, "--prog", a.prog,
               "the XDP program: flowmgr (flows, counters) or pkttag (the per-packet traffic "
               "tagger: one JSON line per packet and per flow with its tag and class)")
        ->check(CLI::IsMember({"flowmgr", "pkttag"}))
        ->capture_default_str()
        ->group("pkttag");
    add_option(rep, "--pkttag-variant", a.pkttag.variant,
               "pkttag: read the tag from the XDP metadata (meta: xdp_pkttag_meta) or from the "
               "DSCP (dscp: xdp_pkttag, the offloadable one)")
        ->check(CLI::IsMember({"meta", "dscp"}))
        ->capture_default_str()
        ->group("pkttag");
    add_option(rep, "--vote", a.pkttag.vote,
               "pkttag: a flow's tag is the majority over its first N tagged packets")
        ->capture_default_str()
        ->group("pkttag");
    rep->add_flag("--features", a.pkttag.features, "pkttag: add each packet's input features (\"x\")")
        ->group("pkttag");
    rep->add_flag("--flows-only", a.pkttag.flows_only, "pkttag: only the per-flow lines")->group("pkttag");
}

std::string endpoint(const std::string& addr, uint16_t port, uint8_t family) {
    std::string a = family == 6 ? "[" + addr + "]" : addr;
    return port ? a + ":" + std::to_string(port) : a;
}

void print_flow_table(const std::vector<ReplayFlow>& flows) {
    std::printf("%6s %-6s %-41s %-41s %6s %8s %7s %8s %s\n", "flow", "proto", "client (sent first)",
                "server", "vlan", "packets", "payload", "selected", "duration");
    for (const auto& f : flows) {
        const char* pn = f.proto == 6 ? "tcp" : f.proto == 17 ? "udp" : f.proto == 1 ? "icmp"
                       : f.proto == 58 ? "icmp6" : nullptr;
        std::string vlan = f.vlan[0] ? std::to_string(f.vlan[0]) : "-";
        if (f.vlan[1]) vlan += "." + std::to_string(f.vlan[1]);
        std::printf("%6" PRIu64 " %-6s %-41s %-41s %6s %8" PRIu64 " %7" PRIu64 " %8" PRIu64
                    " %.3fs\n",
                    f.flow_id, pn ? pn : std::to_string(f.proto).c_str(),
                    endpoint(f.src, f.sport, f.family).c_str(),
                    endpoint(f.dst, f.dport, f.family).c_str(), vlan.c_str(), f.packets,
                    f.payload_packets, f.selected,
                    static_cast<double>(f.last_ns - f.first_ns) / 1e9);
    }
}

// The summary on stderr: what was read, run and selected, then the counters.
void print_replay_summary(const std::string& what, const std::string& write_pcap, const ReplayStats& st,
                          size_t flows, bool all_counters) {
    std::fprintf(stderr,
                 "%s: %" PRIu64 " frames read, %" PRIu64 " run through %s, %zu flows, %" PRIu64
                 " packets selected",
                 what.c_str(), st.frames, st.ran, ETC_PROG_FLOWMGR, flows, st.selected);
    if (st.seconds > 0)
        std::fprintf(stderr, " in %.3f s (%.0f frames/s)", st.seconds,
                     static_cast<double>(st.frames) / st.seconds);
    std::fputc('\n', stderr);
    if (st.too_short)
        std::fprintf(stderr, "  %" PRIu64 " frames shorter than 14 bytes skipped\n", st.too_short);
    if (st.not_convertible)
        std::fprintf(stderr,
                     "  %" PRIu64 " frames skipped: link layer not convertible to Ethernet\n",
                     st.not_convertible);
    if (!write_pcap.empty())
        std::fprintf(stderr, "  %" PRIu64 " selected packets written to %s\n", st.pcap_written,
                     write_pcap.c_str());
    std::fprintf(stderr, "counters:\n");
    print_counters(stderr, st.counters, all_counters);
}

// One capture's replay as the workers hand it on: its stats and flows, the
// selected frames (buffered when they go to a pcap, so the file is in input
// order), and why it failed, if it did.
struct ReplayedCapture {
    ReplayStats st;
    struct Frame {
        uint64_t ts_ns;
        uint32_t origlen;
        std::vector<uint8_t> bytes;
    };
    std::vector<Frame> selected;
    std::optional<Error> error;
};

int run_replay(const ReplayArgs& a, const CLI::App&) {
    // BPF_PROG_TEST_RUN of an XDP program: loading it needs all three.
    if (auto c = require_capabilities("replay", {Cap::Bpf, Cap::NetAdmin, Cap::Perfmon}); !c) return fail(c.error());
    if (a.prog == "pkttag") {
        auto plan = plan_captures(a.inputs, a.jobs, 0, a.quiet);
        if (!plan) return fail(plan.error());
        PkttagReplayArgs p = a.pkttag;
        p.captures = plan->captures;
        p.json_path = a.json_path;
        p.table = a.table;
        p.quiet = a.quiet;
        p.max_frames = a.max_frames;
        return run_pkttag_replay(p);
    }
    auto fo = a.flowmgr.to_options();
    if (!fo) return fail(fo.error());
    fo->ring_wakeup = false;  // the replay drains the ring after every run
    auto plan = plan_captures(a.inputs, a.jobs, 0, a.quiet);
    if (!plan) return fail(plan.error());
    const std::vector<std::string>& captures = plan->captures;
    const bool single = captures.size() == 1;
    const unsigned jobs = plan->jobs;
    std::string json_path = a.json_path;
    if (a.table && json_path == "-") json_path.clear();

    // Outputs first, so a bad path fails before any work; then one loaded
    // program per worker, reset between its captures.
    std::FILE* json = nullptr;
    if (json_path == "-") {
        json = stdout;
    } else if (!json_path.empty()) {
        json = std::fopen(json_path.c_str(), "w");
        if (!json) return fail(make_error(ErrorKind::Io, errno, json_path, "create JSON output"));
    }
    const std::string json_name = json_path == "-" ? "stdout" : json_path;
    std::optional<pcap::Writer> writer;
    if (!a.write_pcap.empty()) {
        auto w = pcap::Writer::create(a.write_pcap);
        if (!w) return fail(w.error());
        writer.emplace(std::move(*w));
    }
    if (single) {
        // A capture the reader refuses fails before the program loads.
        auto probe = pcap::Reader::open(captures[0]);
        if (!probe) return fail(probe.error());
    }
    std::vector<FlowManager> programs;
    for (unsigned w = 0; w < jobs; ++w) {
        auto fm = FlowManager::load(*fo);
        if (!fm) return fail(fm.error());
        programs.push_back(std::move(*fm));
    }

    const bool keep_frames = writer.has_value();
    const std::function<ReplayedCapture(size_t, unsigned)> work = [&](size_t i, unsigned w) {
        ReplayedCapture r;
        SelectedSink sink;
        if (keep_frames)
            sink = [&r](uint64_t ts, std::span<const uint8_t> frame, uint32_t origlen) -> Result<void> {
                r.selected.push_back({ts, origlen, std::vector<uint8_t>(frame.begin(), frame.end())});
                return {};
            };
        auto done = replay_capture(programs[w], captures[i], a.max_frames, single && !a.quiet, sink, &r.st);
        if (!done) r.error = done.error();
        return r;
    };

    ReplayStats total;  // summed over the captures (flows counted, not kept)
    size_t flows = 0;
    uint64_t mismatches = 0;
    CaptureProgress progress(captures.size(), !a.quiet);
    std::optional<Error> write_error;
    const std::function<bool(size_t, ReplayedCapture&&)> commit = [&](size_t i, ReplayedCapture&& r) {
        ReplayStats& st = r.st;
        if (json) {
            const std::string head = "{\"capture\":" + json::string(captures[i]) + ",";
            for (const auto& f : st.flows) {
                const std::string line = head + flow_json(f).substr(1) + "\n";
                if (std::fwrite(line.data(), 1, line.size(), json) != line.size()) {
                    write_error = make_error(ErrorKind::Io, errno ? errno : EIO, json_name, "write JSON");
                    return false;
                }
            }
        }
        if (a.table) print_flow_table(st.flows);
        if (writer)
            for (const auto& f : r.selected) {
                if (auto w = writer->write(f.ts_ns, f.bytes, f.origlen); !w) {
                    write_error = w.error();
                    return false;
                }
                ++total.pcap_written;
            }
        if (single) {
            st.pcap_written = writer ? r.selected.size() : 0;
            // A failed replay still reports the flows and counters read before it.
            if (!a.quiet || r.error) print_replay_summary(captures[i], a.write_pcap, st, st.flows.size(), a.all_counters);
        }
        total.frames += st.frames;
        total.ran += st.ran;
        total.too_short += st.too_short;
        total.not_convertible += st.not_convertible;
        total.selected += st.selected;
        total.seconds += st.seconds;
        for (size_t c = 0; c < total.counters.size(); ++c) total.counters[c] += st.counters[c];
        flows += st.flows.size();
        mismatches += st.table_mismatches;
        progress.finished(st.flows.size(), r.error);
        return true;
    };
    run_ordered<ReplayedCapture>(captures.size(), jobs, work, commit);
    progress.clear();
    if (json) {
        if (auto r = finish_output(json, json_name); !r && !write_error) write_error = r.error();
    }
    if (writer && !write_error)
        if (auto r = writer->close(); !r) write_error = r.error();
    if (write_error) return fail(*write_error);
    if (!single && !a.quiet) {
        print_replay_summary(std::to_string(captures.size()) + " captures (jobs " + std::to_string(jobs) + ")",
                             a.write_pcap, total, flows, a.all_counters);
        if (progress.failed())
            std::fprintf(stderr, "%zu of %zu captures failed (named above)\n", progress.failed(), captures.size());
    }
    if (progress.failed()) return progress.exit_code_or(kOk);
    return mismatches ? kGeneral : kOk;
}

// ---- run -----------------------------------------------------------------

struct RunArgs {
    RunOptions opts;
    FlowMgrArgs flowmgr;
    std::string bind = "auto";
};

void add_run_options(CLI::App* run, RunArgs& a) {
    RunOptions& o = a.opts;
    add_option(run, "IFACE", o.iface, "interface to capture on")->required();
    // No hw: the FlowManager's maps cannot be offloaded (see `etcpipe check`).
    const std::map<std::string, XdpMode> run_modes{{"native", XdpMode::Native}, {"skb", XdpMode::Skb}};
    add_option(run, "-m,--xdp-mode", o.mode,
                    "XDP mode of the program: native (driver) or skb (generic, any device)")
        ->transform(CLI::CheckedTransformer(run_modes, CLI::ignore_case).description("native|skb"))
        ->default_str("native");
    run->add_flag("--attach-existing", o.attach_existing,
                  "use the FlowManager already attached to IFACE (`ip link … xdp obj "
                  "flowmgr.bpf.o sec xdp` or `etcpipe load`) instead of loading one");
    add_option(run, "-p,--pin-path", o.pin_path,
                    "--attach-existing: open the maps pinned here (ip link pins under "
                    "/sys/fs/bpf/xdp/globals; default: the program's own maps); --pin: pin here");
    run->add_flag("--pin", o.pin,
                  "leave the program attached when etcpipe run exits (default: detached on any "
                  "exit, even SIGKILL)");
    add_option(run, "-q,--queues", o.queues, "AF_XDP sockets on RX queues 0..Q-1 (0: all)")
        ->capture_default_str();
    add_option(run, "--bind", a.bind,
                    "AF_XDP bind: auto (zero-copy if the driver can, else copy), zerocopy, copy")
        ->check(CLI::IsMember({"auto", "zerocopy", "copy"}))
        ->capture_default_str();
    add_option(run, "--umem-frames", o.xsk.frames, "UMEM frames per socket (2048 B each)")
        ->capture_default_str();
    add_option(run, "--ring-size", o.xsk.ring_size, "RX and fill ring descriptors (power of 2)")
        ->capture_default_str();
    add_option(run, "--features", o.spec,
                    "payload:HxL, packet:HxL, sizes:H, iat:H (µs, live arrival time); H ≤ N")
        ->capture_default_str();
    add_device_option(run, o.device, "feature extractor: gpu, cpu or auto");
    add_option(run, "--threads", o.threads, "CPU extractor threads (0: all)")->check(at_most(max_threads()))->capture_default_str();
    add_option(run, "--batch", o.batch_packets, "packets per extractor batch")->capture_default_str();
    add_option(run, "--batch-timeout", o.batch_timeout_ms,
                    "ms a complete flow waits for its batch to fill")
        ->capture_default_str();
    add_option(run, "--flow-timeout", o.flow_timeout_s,
                    "s of silence after which a flow with fewer than H packets is emitted as is "
                    "(must be < --idle-timeout)")
        ->capture_default_str();
    add_option(run, "--max-pending", o.max_pending,
                    "flows waiting for packets; beyond it new flows are dropped (counted)")
        ->capture_default_str();
    add_option(run, "-o,--output", o.output,
                    "-: JSON Lines on stdout (one flow per line); DIR: rolling parts "
                    "DIR/part-NNNNNN/{<feature>.npy, flows.csv}")
        ->capture_default_str();
    add_option(run, "--rotate", o.rotate_flows, "flows per .npy part")->capture_default_str();
    run->add_flag("--stats", o.stats, "a line of rates and losses on stderr every second");
    add_option(run, "-d,--duration", o.duration_s, "stop after this many seconds (0: on Ctrl-C)")
        ->check(at_most(kMaxSeconds))
        ->capture_default_str();
    add_option(run, "--ready-file", o.ready_file,
                    "write our pid here once the sockets are bound (for scripts)");
    add_option(run, "--model", o.model_path,
                    "classify every emitted flow with this ONNX model (see classify); its "
                    "metadata sets the features; JSON Lines gain class/probability, .npy parts a "
                    "predictions.csv");
    add_flowmgr_options(run, a.flowmgr);
}

// The RunOptions from what was typed: FlowManager options, bind, --pin.
Result<RunOptions> run_options(const RunArgs& a, const CLI::App& run) {
    auto fo = a.flowmgr.to_options();
    if (!fo) return fo.error();
    RunOptions o = a.opts;
    o.flowmgr = *fo;
    o.flowmgr_packets_set = run.count("--packets") > 0;
    o.spec_set = run.count("--features") > 0;
    o.xsk.bind = a.bind == "zerocopy" ? XskBind::ZeroCopy
                 : a.bind == "copy"   ? XskBind::Copy
                                      : XskBind::Auto;
    if (o.pin && o.pin_path.empty()) o.pin_path = "/sys/fs/bpf/etcpipe";
    if (o.pin && o.attach_existing)
        return Error{ErrorKind::Usage, EINVAL, "--pin", "check options",
                     "--attach-existing never detaches what it did not attach", {}};
    return o;
}

// --pin: bpffs mounted and the pin directory there.
Result<void> prepare_pin_path(const std::string& path) {
    if (auto fs = ensure_bpffs(); !fs) return fs.error();
    if (mkdir(path.c_str(), 0700) && errno != EEXIST)
        return make_error(ErrorKind::Io, errno, path, "create pin directory");
    return {};
}

void print_run_summary(const std::string& iface, const RunSummary& r) {
    std::fprintf(stderr, "%s: stopped. kernel counters:\n", iface.c_str());
    print_counters(stderr, r.kernel, false);
    std::fprintf(stderr, "user-space counters:\n");
    print_run_stats(stderr, r.run, "  ");
    if (r.per_queue.size() > 1) {
        // How RSS spread the selected packets: an idle queue is worth knowing about.
        std::fprintf(stderr, "  AF_XDP packets read per queue:");
        for (auto [q, n] : r.per_queue) std::fprintf(stderr, " q%u=%" PRIu64, q, n);
        std::fputc('\n', stderr);
    }
}

int run_run(const RunArgs& a, const CLI::App& run) {
    // AF_XDP sockets need CAP_NET_RAW besides the program's three.
    if (auto c = require_capabilities("run", {Cap::Bpf, Cap::NetAdmin, Cap::Perfmon, Cap::NetRaw}); !c)
        return fail(c.error());
    auto opts = run_options(a, run);
    if (!opts) return fail(opts.error());
    if (opts->pin)
        if (auto p = prepare_pin_path(opts->pin_path); !p) return fail(p.error());
    install_stop_handlers();
    auto r = run_live(*opts, stop_flag());
    if (!r) return fail(r.error());
    print_run_summary(opts->iface, *r);
    return kOk;
}

// ---- send ----------------------------------------------------------------

struct SendArgs {
    std::string capture, iface;
    SendOptions opts;
};

void add_send_options(CLI::App* send, SendArgs& a) {
    add_option(send, "CAPTURE", a.capture, "pcap or pcapng file")->required();
    add_option(send, "IFACE", a.iface, "interface to send from (e.g. one end of a veth pair)")
        ->required();
    add_option(send, "--burst", a.opts.burst, "frames per burst")->capture_default_str();
    add_option(send, "--pause-us", a.opts.pause_us, "pause after each burst (0: none)")
        ->capture_default_str();
    add_option(send, "-c,--count", a.opts.max_frames, "stop after this many frames (0: all)")
        ->capture_default_str();
    add_option(send, "--loops", a.opts.loops, "send the capture this many times")->capture_default_str();
    add_option(send, "--max-seconds", a.opts.max_seconds, "stop after this long")->check(at_most(kMaxSeconds))->capture_default_str();
}

int run_send(const SendArgs& a, const CLI::App&) {
    auto r = send_capture(a.capture, a.iface, a.opts);
    if (!r) return fail(r.error());
    std::printf("%s → %s: %" PRIu64 " frames, %" PRIu64 " sent in %.3f s; skipped %" PRIu64
                " too short, %" PRIu64 " above the MTU, %" PRIu64 " not Ethernet; %" PRIu64
                " send errors%s\n",
                a.capture.c_str(), a.iface.c_str(), r->frames, r->sent, r->seconds, r->too_short,
                r->too_big, r->not_ethernet, r->send_errors,
                r->timed_out ? " (stopped at --max-seconds)" : "");
    return r->send_errors ? kIo : kOk;
}

}  // namespace

Entry load_command() {
    return entry(Command<LoadArgs>{"load", "attach the FlowManager to an interface (persistent)",
                                   add_load_options, run_load});
}

Entry unload_command() {
    return entry(Command<UnloadArgs>{"unload", "detach the FlowManager from an interface",
                                     add_unload_options, run_unload});
}

Entry replay_command() {
    return entry(Command<ReplayArgs>{
        "replay",
        "run captures (pcap/pcapng files or directories of them) through the FlowManager with "
        "BPF_PROG_TEST_RUN and print one JSON line per flow; the program is loaded once per job "
        "and reset between captures, the output is in input order whatever --jobs "
        "(--prog pkttag: through the per-packet tagger instead, one job)",
        add_replay_options, run_replay});
}

Entry run_command() {
    return entry(Command<RunArgs>{
        "run", "live pipeline: FlowManager → AF_XDP (or ring buffer) → features, until Ctrl-C",
        add_run_options, run_run});
}

Entry send_command() {
    return entry(Command<SendArgs>{
        "send", "transmit a capture's frames out of an interface (AF_PACKET), paced and bounded",
        add_send_options, run_send});
}

}  // namespace etcpipe::cli
