// etcpipe: the command line, after xdp-loader's grammar.
//   etcpipe load IFACE | unload IFACE | status [IFACE] | replay CAPTURE | version
#include <bpf/libbpf.h>
#include <xdp/libxdp.h>

#include <signal.h>
#include <sys/stat.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <atomic>
#include <csignal>
#include <cinttypes>
#include <cstdio>
#include <map>
#include <string>

#include "anova/anova_attach.hpp"
#include "cli/cli_anova.hpp"
#include "cli/cli_classify.hpp"
#include "cli/cli_common.hpp"
#include "cli/cli_features.hpp"
#include "flowmgr/flowmgr.hpp"
#include "flowmgr/live.hpp"
#include "common/pcap_send.hpp"
#include "common/log.hpp"
#include "common/signals.hpp"
#include "flowmgr/replay.hpp"
#include "common/xdp_attach.hpp"

#define ETCPIPE_VERSION "0.1.0"
#ifndef ETCPIPE_LIBXDP_VERSION
#define ETCPIPE_LIBXDP_VERSION "unknown"
#endif
#ifndef ETCPIPE_GIT_REV
#define ETCPIPE_GIT_REV "unknown"
#endif

namespace {

using namespace etcpipe;

using namespace etcpipe::cli;

// FlowManager options as typed on the command line; converted (and
// validated) by to_options().
struct FlowMgrArgs {
    uint32_t packets = ETC_DEFAULT_MAX_PKTS;
    uint32_t flows = ETC_DEFAULT_FLOWS;
    uint32_t idle = ETC_DEFAULT_IDLE_SEC;
    uint32_t snap = ETC_DEFAULT_SNAP;
    uint32_t ringbuf_kib = 4096;
    etc_delivery delivery = ETC_DELIVERY_TAP;
    bool drop_unselected = false;
    bool count_all = false;
    std::string protocols, ports;
    std::vector<std::string> allow, deny;
    std::string pin_path;

    Result<FlowMgrOptions> to_options() const {
        FlowMgrOptions o;
        o.max_pkts = packets;
        o.flows = flows;
        o.idle_timeout_s = idle;
        o.snap_len = snap;
        o.ringbuf_bytes = ringbuf_kib * 1024u;
        o.delivery = delivery;
        o.unselected_drop = drop_unselected;
        o.count_all = count_all;
        o.pin_path = pin_path;
        if (!protocols.empty()) {
            auto p = parse_protocols(protocols);
            if (!p) return p.error();
            o.protocols = *p;
        }
        if (!ports.empty()) {
            auto p = parse_ports(ports);
            if (!p) return p.error();
            o.ports = *p;
        }
        for (const auto& a : allow) {
            auto c = parse_cidr(a);
            if (!c) return c.error();
            o.allow.push_back(*c);
        }
        for (const auto& d : deny) {
            auto c = parse_cidr(d);
            if (!c) return c.error();
            o.deny.push_back(*c);
        }
        if (auto v = o.validate(); !v) return v.error();
        return o;
    }
};

void add_flowmgr_options(CLI::App* cmd, FlowMgrArgs& a) {
    const std::string g = "FlowManager";
    cmd->add_option("-N,--packets", a.packets,
                    "packets selected per flow: the first N that carry L4 payload")
        ->capture_default_str()->group(g);
    cmd->add_option("--flows", a.flows, "flow table entries (LRU: the least recent is evicted)")
        ->capture_default_str()->group(g);
    cmd->add_option("--idle-timeout", a.idle, "seconds of silence after which a flow starts afresh")
        ->capture_default_str()->group(g);
    cmd->add_flag("--count-all", a.count_all,
                  "select the first N packets of a flow, payload or not (pure ACKs too)")
        ->group(g);
    const std::map<std::string, etc_delivery> deliveries{{"tap", ETC_DELIVERY_TAP},
                                                         {"inline", ETC_DELIVERY_INLINE}};
    cmd->add_option("--delivery", a.delivery,
                    "tap: selected packets to AF_XDP (XSKMAP); inline: copy their first "
                    "--snap bytes to a ring buffer and pass every packet")
        ->transform(CLI::CheckedTransformer(deliveries, CLI::ignore_case))
        ->group(g);
    cmd->add_flag("--drop-unselected", a.drop_unselected,
                  "tap: drop packets that are not selected (default: pass them to the stack)")
        ->group(g);
    cmd->add_option("--snap", a.snap, "inline: bytes copied per selected packet (1..2048)")
        ->capture_default_str()->group(g);
    cmd->add_option("--ringbuf-kib", a.ringbuf_kib, "inline: ring buffer size in KiB (power of 2)")
        ->capture_default_str()->group(g);
    cmd->add_option("--protocols", a.protocols,
                    "only these IP protocols, e.g. tcp,udp,47 (default: all)")
        ->group(g);
    cmd->add_option("--ports", a.ports, "only flows with one of these ports, e.g. 443,8000-8100")
        ->group(g);
    cmd->add_option("--allow", a.allow,
                    "only flows with an address in this CIDR (repeatable), e.g. 10.0.0.0/8")
        ->group(g);
    cmd->add_option("--deny", a.deny, "ignore flows with an address in this CIDR (repeatable)")
        ->group(g);
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

void print_status(const std::vector<InterfaceStatus>& all, bool every_counter) {
    if (all.empty()) {
        std::printf("no XDP programs attached\n");
        return;
    }
    for (const auto& st : all) {
        std::printf("%s (ifindex %d):", st.name.c_str(), st.ifindex);
        if (st.programs.empty()) {
            std::printf(" no XDP program\n");
            continue;
        }
        std::printf(" %s mode, %s\n", st.mode.empty() ? "?" : st.mode.c_str(),
                    st.multiprog ? "libxdp dispatcher" : "single program (no dispatcher)");
        for (const auto& p : st.programs) {
            std::printf("  %-16s id %-6u priority %-4u tag %s\n", p.name.c_str(), p.id, p.priority,
                        p.tag.c_str());
            if (p.anova) {
                const auto& a = *p.anova;
                std::printf("    config: udp/%u  reply=%s  encoding=%s  frac_bits=%u  eps=%llu  eps2=%llu\n",
                            a.port, a.reply == ANOVA_REPLY_TX ? "tx" : "pass",
                            a.encoding == ANOVA_ENC_F64 ? "f64" : "u32", a.frac_bits,
                            static_cast<unsigned long long>(a.eps),
                            static_cast<unsigned long long>(a.eps2));
            }
            if (!p.flowmgr) continue;
            if (p.config) {
                const auto& c = *p.config;
                std::printf("    config: N=%u  idle=%llus  delivery=%s%s  snap=%u%s\n",
                            c.max_pkts, static_cast<unsigned long long>(c.idle_timeout_ns / 1000000000ull),
                            c.delivery == ETC_DELIVERY_INLINE ? "inline" : "tap",
                            c.delivery == ETC_DELIVERY_TAP
                                ? (c.unselected_drop ? " (drop unselected)" : " (pass unselected)")
                                : "",
                            c.snap_len, c.count_all ? "  count-all" : "");
                int protos = 0;
                for (auto w : c.proto_allow) protos += __builtin_popcountll(w);
                std::printf("    filters: protocols=%s ports=%s cidr-allow=%s cidr-deny=%s\n",
                            protos == 256 ? "all" : (std::to_string(protos) + " allowed").c_str(),
                            c.port_filter ? "on" : "off", c.cidr_allow ? "on" : "off",
                            c.cidr_deny ? "on" : "off");
            }
            std::printf("    flows:  %zu in table (capacity %u)\n", p.flows, p.flow_capacity);
            if (p.counters) {
                const bool any = std::any_of(p.counters->begin(), p.counters->end(),
                                             [](uint64_t v) { return v != 0; });
                std::printf("    counters:%s\n", any || every_counter ? "" : " all zero (no packets yet)");
                print_counters(stdout, *p.counters, every_counter);
            }
            if (p.run) {
                const bool alive = kill(static_cast<pid_t>(p.run->pid), 0) == 0;
                std::printf("    etcpipe run: pid %llu (%s)\n",
                            static_cast<unsigned long long>(p.run->pid),
                            alive ? "running" : "exited; last values");
                print_run_stats(stdout, *p.run, "      ");
            }
        }
    }
}

}  // namespace

int main(int argc, char** argv) {
    CLI::App app{
        "etcpipe: XDP FlowManager for encrypted-traffic classification.\n"
        "Keeps the first N payload packets of every flow (in the kernel, at XDP) and hands\n"
        "them to user space; replays captures through the same program.\n"
        "Exit codes: 0 ok, 1 error, 2 usage, 3 BPF/XDP, 4 I/O, 5 malformed data."};
    app.require_subcommand(1);
    app.fallthrough();
    int verbosity = 0;
    app.add_flag("-v,--verbose", verbosity, "more output; -vv also shows libbpf/libxdp debug logs");
    bool show_version = false;
    app.add_flag("-V,--version", show_version, "print versions and exit");

    // load
    auto* load = app.add_subcommand("load", "attach the FlowManager to an interface (persistent)");
    std::string load_iface;
    XdpMode load_mode = XdpMode::Native;
    FlowMgrArgs load_args;
    std::string load_prog = "flowmgr";
    AnovaParamArgs load_anova;
    uint16_t load_anova_port = ANOVA_DEFAULT_PORT;
    anova_reply load_anova_reply = ANOVA_REPLY_PASS;
    const std::map<std::string, XdpMode> modes{{"native", XdpMode::Native},
                                               {"skb", XdpMode::Skb},
                                               {"hw", XdpMode::Hw},
                                               {"unspecified", XdpMode::Unspecified}};
    load->add_option("IFACE", load_iface, "interface to attach to")->required();
    load->add_option("-m,--mode", load_mode,
                     "XDP mode: native (driver), skb (generic, any device), hw (offload)")
        ->transform(CLI::CheckedTransformer(modes, CLI::ignore_case))
        ->default_str("native");
    load->add_option("-p,--pin-path", load_args.pin_path,
                     "pin the flow table, counters, XSKMAP and ring buffer under this bpffs "
                     "directory (e.g. /sys/fs/bpf/etcpipe)");
    load->add_option("--prog", load_prog,
                     "flowmgr: the FlowManager; anova: the ANOVA state split (offloadable, -m hw)")
        ->check(CLI::IsMember({"flowmgr", "anova"}))
        ->capture_default_str();
    add_flowmgr_options(load, load_args);
    add_anova_params(load, load_anova);
    load->add_option("--port", load_anova_port, "anova: UDP port of the requests")
        ->capture_default_str()->group("Rule");
    const std::map<std::string, anova_reply> replies{{"pass", ANOVA_REPLY_PASS},
                                                     {"tx", ANOVA_REPLY_TX}};
    load->add_option("--reply", load_anova_reply,
                     "anova: pass (verdict written, packet goes on) or tx (sent back to the sender)")
        ->transform(CLI::CheckedTransformer(replies, CLI::ignore_case))
        ->default_str("pass")->group("Rule");

    // unload
    auto* unload = app.add_subcommand("unload", "detach the FlowManager from an interface");
    std::string unload_iface;
    DetachOptions detach_opts;
    uint32_t unload_id = 0;
    unload->add_option("IFACE", unload_iface, "interface")->required();
    unload->add_flag("-a,--all", detach_opts.all, "detach every XDP program on the interface");
    unload->add_option("-i,--id", unload_id, "detach only the program with this id (see status)");
    unload->add_option("-p,--pin-path", detach_opts.pin_path,
                       "remove the maps pinned there by `load -p`");

    // status
    auto* status = app.add_subcommand("status", "XDP programs per interface, FlowManager counters");
    std::string status_iface;
    bool status_all_counters = false;
    status->add_option("IFACE", status_iface, "only this interface");
    status->add_flag("-a,--all-counters", status_all_counters, "list zero counters too");

    // replay
    auto* rep = app.add_subcommand(
        "replay",
        "run a capture (pcap/pcapng) through the FlowManager with BPF_PROG_TEST_RUN and "
        "print one JSON line per flow");
    ReplayOptions ropts;
    FlowMgrArgs rep_args;
    rep_args.delivery = ETC_DELIVERY_INLINE;  // no AF_XDP socket in a replay: use the ring buffer
    bool rep_quiet = false, rep_all_counters = false, rep_table = false;
    rep->add_option("CAPTURE", ropts.capture, "pcap or pcapng file (format from its magic)")
        ->required();
    rep->add_option("-o,--output", ropts.json_path,
                    "JSON Lines file for the flows ('-' = stdout, '' = none)")
        ->capture_default_str();
    rep->add_option("-w,--write-pcap", ropts.write_pcap,
                    "write the selected packets (as delivered) to this pcap");
    rep->add_option("-c,--count", ropts.max_frames, "stop after this many frames (0 = all)");
    rep->add_flag("-t,--table", rep_table,
                  "print the flows as an aligned table on stdout instead of JSON Lines");
    rep->add_flag("-q,--quiet", rep_quiet, "no progress bar and no counter summary");
    rep->add_flag("-a,--all-counters", rep_all_counters, "list zero counters too");
    add_flowmgr_options(rep, rep_args);
    rep->get_option("--delivery")->default_str("inline");

    // run
    auto* run = app.add_subcommand(
        "run", "live pipeline: FlowManager → AF_XDP (or ring buffer) → features, until Ctrl-C");
    RunOptions run_opts;
    FlowMgrArgs run_args;
    std::string run_bind = "auto";
    run->add_option("IFACE", run_opts.iface, "interface to capture on")->required();
    // No hw: the FlowManager's maps cannot be offloaded (see `etcpipe check`).
    const std::map<std::string, XdpMode> run_modes{{"native", XdpMode::Native}, {"skb", XdpMode::Skb}};
    run->add_option("-m,--xdp-mode", run_opts.mode,
                    "XDP mode of the program: native (driver) or skb (generic, any device)")
        ->transform(CLI::CheckedTransformer(run_modes, CLI::ignore_case).description("native|skb"))
        ->default_str("native");
    run->add_flag("--attach-existing", run_opts.attach_existing,
                  "use the FlowManager already attached to IFACE (`ip link … xdp obj "
                  "flowmgr.bpf.o sec xdp` or `etcpipe load`) instead of loading one");
    run->add_option("-p,--pin-path", run_opts.pin_path,
                    "--attach-existing: open the maps pinned here (ip link pins under "
                    "/sys/fs/bpf/xdp/globals; default: the program's own maps); --pin: pin here");
    run->add_flag("--pin", run_opts.pin,
                  "leave the program attached when etcpipe run exits (default: detached on any "
                  "exit, even SIGKILL)");
    run->add_option("-q,--queues", run_opts.queues, "AF_XDP sockets on RX queues 0..Q-1 (0: all)")
        ->capture_default_str();
    run->add_option("--bind", run_bind,
                    "AF_XDP bind: auto (zero-copy if the driver can, else copy), zerocopy, copy")
        ->check(CLI::IsMember({"auto", "zerocopy", "copy"}))
        ->capture_default_str();
    run->add_option("--umem-frames", run_opts.xsk.frames, "UMEM frames per socket (2048 B each)")
        ->capture_default_str();
    run->add_option("--ring-size", run_opts.xsk.ring_size, "RX and fill ring descriptors (power of 2)")
        ->capture_default_str();
    run->add_option("--features", run_opts.spec,
                    "payload:HxL, packet:HxL, sizes:H, iat:H (µs, live arrival time); H ≤ N")
        ->capture_default_str();
    add_device_option(run, run_opts.device, "feature extractor: gpu, cpu or auto");
    run->add_option("--threads", run_opts.threads, "CPU extractor threads (0: all)")->capture_default_str();
    run->add_option("--batch", run_opts.batch_packets, "packets per extractor batch")->capture_default_str();
    run->add_option("--batch-timeout", run_opts.batch_timeout_ms,
                    "ms a complete flow waits for its batch to fill")
        ->capture_default_str();
    run->add_option("--flow-timeout", run_opts.flow_timeout_s,
                    "s of silence after which a flow with fewer than H packets is emitted as is "
                    "(must be < --idle-timeout)")
        ->capture_default_str();
    run->add_option("--max-pending", run_opts.max_pending,
                    "flows waiting for packets; beyond it new flows are dropped (counted)")
        ->capture_default_str();
    run->add_option("-o,--output", run_opts.output,
                    "-: JSON Lines on stdout (one flow per line); DIR: rolling parts "
                    "DIR/part-NNNNNN/{<feature>.npy, flows.csv}")
        ->capture_default_str();
    run->add_option("--rotate", run_opts.rotate_flows, "flows per .npy part")->capture_default_str();
    run->add_flag("--stats", run_opts.stats, "a line of rates and losses on stderr every second");
    run->add_option("-d,--duration", run_opts.duration_s, "stop after this many seconds (0: on Ctrl-C)")
        ->capture_default_str();
    run->add_option("--ready-file", run_opts.ready_file,
                    "write our pid here once the sockets are bound (for scripts)");
    run->add_option("--model", run_opts.model_path,
                    "classify every emitted flow with this ONNX model (see classify); its "
                    "metadata sets the features; JSON Lines gain class/probability, .npy parts a "
                    "predictions.csv");
    add_flowmgr_options(run, run_args);

    // send
    auto* send = app.add_subcommand(
        "send", "transmit a capture's frames out of an interface (AF_PACKET), paced and bounded");
    std::string send_capture_path, send_iface;
    SendOptions send_opts;
    send->add_option("CAPTURE", send_capture_path, "pcap or pcapng file")->required();
    send->add_option("IFACE", send_iface, "interface to send from (e.g. one end of a veth pair)")
        ->required();
    send->add_option("--burst", send_opts.burst, "frames per burst")->capture_default_str();
    send->add_option("--pause-us", send_opts.pause_us, "pause after each burst (0: none)")
        ->capture_default_str();
    send->add_option("-c,--count", send_opts.max_frames, "stop after this many frames (0: all)")
        ->capture_default_str();
    send->add_option("--loops", send_opts.loops, "send the capture this many times")->capture_default_str();
    send->add_option("--max-seconds", send_opts.max_seconds, "stop after this long")->capture_default_str();

    app.add_subcommand("version", "print etcpipe, libbpf and libxdp versions");
    AnovaCommands anova_cmds;
    add_anova_commands(app, anova_cmds);
    FeaturesCommand features_cmd;
    add_features_command(app, features_cmd);
    ClassifyCommand classify_cmd;
    add_classify_command(app, classify_cmd);

    // CLI11 would only say "a subcommand is required" for a mistyped one.
    const auto known = [&](const char* name) {
        for (const CLI::App* sub : app.get_subcommands([](CLI::App*) { return true; }))
            if (sub->check_name(name)) return true;
        return false;
    };
    if (argc > 1 && argv[1][0] != '-' && !known(argv[1])) {
        std::fprintf(stderr,
                     "error: unknown command '%s' (commands: load, unload, status, replay, "
                     "check, anova, features, classify, run, send, version; see --help)\n",
                     argv[1]);
        return kUsage;
    }
    try {
        app.parse(argc, argv);
    } catch (const CLI::CallForHelp& e) {
        return app.exit(e);
    } catch (const CLI::CallForAllHelp& e) {
        return app.exit(e);
    } catch (const CLI::ParseError& e) {
        if (show_version) {
            // `etcpipe --version` without a subcommand.
        } else {
            app.exit(e);
            return kUsage;
        }
    }
    log::set_verbosity(verbosity);
    log::install_library_bridges();

    if (show_version || app.got_subcommand("version")) {
        std::printf("etcpipe %s (%s)\nlibbpf %s (run time)\nlibxdp %s (built against)\n",
                    ETCPIPE_VERSION, ETCPIPE_GIT_REV, libbpf_version_string(),
                    ETCPIPE_LIBXDP_VERSION);
        return kOk;
    }

    if (*load && load_prog == "anova") {
        auto params = load_anova.params();
        if (!params) return fail(params.error());
        anova::ProgramOptions po;
        po.params = *params;
        po.encoding = load_anova.encoding;
        po.port = load_anova_port;
        po.reply = load_anova_reply;
        auto r = anova::attach(load_iface, load_mode, po);
        if (!r) return fail(r.error());
        std::printf("%s: ANOVA program attached (program id %u, %s mode), udp/%u, reply %s\n",
                    load_iface.c_str(), r->prog_id, xdp_mode_name(r->mode), po.port,
                    po.reply == ANOVA_REPLY_TX ? "tx" : "pass");
        return kOk;
    }
    if (*load) {
        auto opts = load_args.to_options();
        if (!opts) return fail(opts.error());
        auto r = attach_flowmgr(load_iface, load_mode, *opts);
        if (!r) return fail(r.error());
        std::printf("%s: FlowManager attached (program id %u, %s mode, %s)\n", load_iface.c_str(),
                    r->prog_id, xdp_mode_name(r->mode),
                    r->multiprog ? "libxdp dispatcher" : "single program: dispatcher unavailable");
        if (!opts->pin_path.empty())
            std::printf("maps pinned under %s\n", opts->pin_path.c_str());
        return kOk;
    }
    if (*run) {
        auto opts = run_args.to_options();
        if (!opts) return fail(opts.error());
        run_opts.flowmgr = *opts;
        run_opts.flowmgr_packets_set = run->count("--packets") > 0;
        run_opts.spec_set = run->count("--features") > 0;
        run_opts.xsk.bind = run_bind == "zerocopy" ? XskBind::ZeroCopy
                            : run_bind == "copy"   ? XskBind::Copy
                                                   : XskBind::Auto;
        if (run_opts.pin && run_opts.pin_path.empty()) run_opts.pin_path = "/sys/fs/bpf/etcpipe";
        if (run_opts.pin && run_opts.attach_existing)
            return fail(Error{ErrorKind::Usage, EINVAL, "--pin", "check options",
                              "--attach-existing never detaches what it did not attach", {}});
        if (run_opts.pin) {
            if (auto fs = ensure_bpffs(); !fs) return fail(fs.error());
            mkdir(run_opts.pin_path.c_str(), 0700);
        }
        install_stop_handlers();
        auto r = run_live(run_opts, stop_flag());
        if (!r) return fail(r.error());
        std::fprintf(stderr, "%s: stopped. kernel counters:\n", run_opts.iface.c_str());
        print_counters(stderr, r->kernel, false);
        std::fprintf(stderr, "user-space counters:\n");
        print_run_stats(stderr, r->run, "  ");
        if (r->per_queue.size() > 1) {
            // How RSS spread the selected packets: an idle queue is worth knowing about.
            std::fprintf(stderr, "  AF_XDP packets read per queue:");
            for (auto [q, n] : r->per_queue) std::fprintf(stderr, " q%u=%" PRIu64, q, n);
            std::fputc('\n', stderr);
        }
        return kOk;
    }
    if (*send) {
        auto r = send_capture(send_capture_path, send_iface, send_opts);
        if (!r) return fail(r.error());
        std::printf("%s → %s: %" PRIu64 " frames, %" PRIu64 " sent in %.3f s; skipped %" PRIu64
                    " too short, %" PRIu64 " above the MTU, %" PRIu64 " not Ethernet; %" PRIu64
                    " send errors%s\n",
                    send_capture_path.c_str(), send_iface.c_str(), r->frames, r->sent, r->seconds,
                    r->too_short, r->too_big, r->not_ethernet, r->send_errors,
                    r->timed_out ? " (stopped at --max-seconds)" : "");
        return r->send_errors ? kIo : kOk;
    }
    if (*unload) {
        if (unload->count("--id")) detach_opts.id = unload_id;
        auto r = detach(unload_iface, detach_opts);
        if (!r) return fail(r.error());
        std::printf("%s: %d XDP program%s detached\n", unload_iface.c_str(), *r, *r == 1 ? "" : "s");
        return kOk;
    }
    if (*status) {
        auto r = xdp_status(status_iface);
        if (!r) return fail(r.error());
        print_status(*r, status_all_counters);
        return kOk;
    }
    if (auto code = run_anova_commands(anova_cmds)) return *code;
    if (auto code = run_features_command(features_cmd)) return *code;
    if (auto code = run_classify_command(classify_cmd)) return *code;
    if (*rep) {
        auto opts = rep_args.to_options();
        if (!opts) return fail(opts.error());
        ropts.flowmgr = *opts;
        ropts.progress = !rep_quiet;
        if (rep_table && ropts.json_path == "-") ropts.json_path.clear();
        ReplayStats partial;
        auto r = replay(ropts, &partial);
        const ReplayStats& st = r ? *r : partial;
        if (rep_table) print_flow_table(st.flows);
        if (!rep_quiet || !r) {
            std::fprintf(stderr,
                         "%s: %" PRIu64 " frames read, %" PRIu64 " run through %s, %zu flows, %" PRIu64
                         " packets selected",
                         ropts.capture.c_str(), st.frames, st.ran, ETC_PROG_FLOWMGR,
                         st.flows.size(), st.selected);
            if (st.seconds > 0)
                std::fprintf(stderr, " in %.3f s (%.0f frames/s)", st.seconds,
                             static_cast<double>(st.frames) / st.seconds);
            std::fputc('\n', stderr);
            if (st.too_short)
                std::fprintf(stderr, "  %" PRIu64 " frames shorter than 14 bytes skipped\n",
                             st.too_short);
            if (st.not_convertible)
                std::fprintf(stderr,
                             "  %" PRIu64 " frames skipped: link layer not convertible to Ethernet\n",
                             st.not_convertible);
            if (!ropts.write_pcap.empty())
                std::fprintf(stderr, "  %" PRIu64 " selected packets written to %s\n",
                             st.pcap_written, ropts.write_pcap.c_str());
            std::fprintf(stderr, "counters:\n");
            print_counters(stderr, st.counters, rep_all_counters);
        }
        if (!r) return fail(r.error());
        return st.table_mismatches ? kGeneral : kOk;
    }
    return kGeneral;
}
