#include "cli/cmd_md.hpp"

#include <charconv>
#include <cmath>
#include <map>
#include <string>

#include "cli/cli_common.hpp"
#include "mdfeed/bench.hpp"
#include "mdfeed/decode.hpp"
#include "mdfeed/listen.hpp"
#include "mdfeed/recv.hpp"
#include "mdfeed/send.hpp"
#include "mdfeed/sockets.hpp"

namespace etcpipe::cli {
namespace {

constexpr const char* kTemplatesHelp =
    "FAST template XML (e.g. testdata/mdfeed/sse.xml: SSE-style 3201 trades, 5801 orders)";

// "5ms", "500us", "2s", "1.5ms"; a bare number is milliseconds.
std::string parse_duration_ns(const std::string& s, uint64_t& out) {
    double v = 0;
    const char* end = s.data() + s.size();
    auto [p, ec] = std::from_chars(s.data(), end, v);
    if (ec != std::errc{} || !std::isfinite(v) || v < 0) return "'" + s + "' is not a duration";
    const std::string unit(p, end);
    static const std::map<std::string, double> units{
        {"", 1e6}, {"ns", 1}, {"us", 1e3}, {"ms", 1e6}, {"s", 1e9}};
    auto u = units.find(unit);
    if (u == units.end()) return "unit '" + unit + "' of '" + s + "' is not ns, us, ms or s";
    const double ns = v * u->second;
    if (ns > 3600e9) return "'" + s + "' is longer than an hour";
    out = static_cast<uint64_t>(ns);
    return {};
}

// Feed options shared by decode, listen and recv.
struct FeedArgs {
    md::FeedOptions feed;
    std::vector<std::string> udp_ports;    // decode: ports only
    std::vector<std::string> tcp_servers;  // decode: ADDR:PORT
    size_t buffer_kib = 32;
};

void add_feed_options(CLI::App* cmd, FeedArgs& a) {
    const std::map<std::string, md::Framing> framings{
        {"raw", md::Framing::Raw},         {"step", md::Framing::Step},
        {"len32le", md::Framing::Len32Le}, {"len32be", md::Framing::Len32Be},
        {"block", md::Framing::Block}};
    const char* g = "Feed";
    cmd->add_option_function<md::Framing>(
           "--framing",
           [&a](const md::Framing& f) {
               a.feed.tcp_framing = f;
               a.feed.framing_given = true;
           },
           "how messages are cut out of a TCP stream or a raw file: step (default for TCP "
           "and for files that start with a STEP header), raw (back to back, other files), "
           "len32le/len32be (4-byte length), block "
           "(FAST stop-bit block length); UDP datagrams are always messages back to back")
        ->transform(CLI::CheckedTransformer(framings, CLI::ignore_case)
                        .description("raw|step|len32le|len32be|block"))
        ->group(g);
    cmd->add_flag("--reset-per-block", a.feed.reset_per_block,
                  "reset the FAST dictionaries at each length-prefixed block")
        ->group(g);
    cmd->add_flag("!--no-udp-reset", a.feed.udp_reset_per_datagram,
                  "carry dictionaries across UDP datagrams (default: reset at each one, so a "
                  "lost datagram spoils nothing after it)")
        ->group(g);
    cmd->add_flag("--seq-preamble", a.feed.udp_seq_preamble,
                  "UDP datagrams start with a 4-byte big-endian sequence number (gaps counted "
                  "per channel)")
        ->group(g);
    add_option(cmd, "--buffer-kib", a.buffer_kib, "TCP reorder buffer per connection, KiB")
        ->capture_default_str()->check(CLI::Range(size_t{1}, size_t{65536}))->group(g);
    add_option(cmd, "--max-connections", a.feed.reassembly.max_connections,
                    "TCP connections tracked at once; the least recently used one is evicted")
        ->capture_default_str()->check(CLI::Range(size_t{1}, size_t{1} << 20))->group(g);
    cmd->add_option_function<std::string>(
           "--gap-timeout",
           [&a](const std::string& s) {
               if (auto e = parse_duration_ns(s, a.feed.reassembly.gap_timeout_ns); !e.empty())
                   throw CLI::ValidationError("--gap-timeout", e);
           },
           "declare a TCP hole lost after this long (e.g. 5ms, 500us; a bare number is ms)")
        ->default_str("5ms")->group(g);
}

// Fills the feed selection and reassembly size from the strings.
Result<void> finish_feed(FeedArgs& a) {
    a.feed.reassembly.buffer_bytes = a.buffer_kib * 1024;
    for (const std::string& p : a.udp_ports) {
        auto e = md::parse_endpoint(p, true);
        if (!e) return e.error();
        a.feed.udp_ports.push_back(static_cast<uint16_t>(
            std::stoul(p.substr(p.rfind(':') == std::string::npos ? 0 : p.rfind(':') + 1))));
    }
    for (const std::string& s : a.tcp_servers) {
        auto e = md::parse_endpoint(s);
        if (!e) return e.error();
        const auto colon = s.rfind(':');
        std::string addr = s.substr(0, colon);
        if (!addr.empty() && addr.front() == '[') addr = addr.substr(1, addr.size() - 2);
        a.feed.tcp_servers.emplace_back(addr, static_cast<uint16_t>(std::stoul(s.substr(colon + 1))));
    }
    return {};
}

// ---- decode ----------------------------------------------------------------

struct DecodeArgs {
    md::DecodeOptions o;
    FeedArgs feed;
    bool no_ts = false;
};

void add_decode(CLI::App* cmd, DecodeArgs& a) {
    add_option(cmd, "INPUT", a.o.inputs,
                    "captures (pcap/pcapng: UDP per datagram, TCP reassembled as from a mirror "
                    "port) or raw FAST byte files")
        ->required()->check(CLI::ExistingFile);
    add_option(cmd, "-t,--templates", a.o.templates, kTemplatesHelp)->required();
    add_option(cmd, "-o,--output", a.o.output, "JSON Lines output file, - for stdout")
        ->capture_default_str();
    add_option(cmd, "--udp-port", a.feed.udp_ports, "decode only UDP datagrams to these ports");
    add_option(cmd, "--tcp-server", a.feed.tcp_servers,
                    "decode only TCP data sent by these servers (ADDR:PORT)");
    cmd->add_flag("--no-ts", a.no_ts, "leave the \"ts\" key out (outputs of runs compare equal)");
    cmd->add_flag("-q,--quiet", a.o.quiet, "no counters on stderr");
    cmd->add_flag("--all-counters", a.o.all_counters, "list zero counters too");
    add_feed_options(cmd, a.feed);
    cmd->footer(
        "\nOutput, one JSON object per record:\n"
        "  {\"ts\":NS,\"src\":\"ADDR:PORT\",\"dst\":\"ADDR:PORT\",\"seq\":N,\"template\":3201,\n"
        "   \"name\":\"Trade\",\"fields\":{\"TradePrice\":\"12.345\",\"TradeQty\":300,…}}\n"
        "Integers are JSON numbers, decimals exact strings, byte vectors hex, absent optional\n"
        "fields left out, sequences arrays, groups objects. Counters and problems on stderr;\n"
        "exit 5 when the data had problems (decode errors, gaps, bad STEP messages).\n"
        "Example: etcpipe md send -t testdata/mdfeed/sse.xml --file feed.step -c 100\n"
        "         etcpipe md decode feed.step -t testdata/mdfeed/sse.xml\n");
}

int run_decode(const DecodeArgs& args, const CLI::App&) {
    DecodeArgs a = args;
    if (auto r = finish_feed(a.feed); !r) return fail(r.error());
    a.o.feed = a.feed.feed;
    a.o.with_ts = !a.no_ts;
    auto r = md::run_decode(a.o);
    if (!r) return fail(r.error());
    return r->problems > 0 ? kData : kOk;
}

// ---- listen ----------------------------------------------------------------

struct ListenArgs {
    md::ListenOptions o;
    FeedArgs feed;
    bool no_ts = false, no_busy_poll = false;
};

void add_listen(CLI::App* cmd, ListenArgs& a) {
    const std::map<std::string, XdpMode> modes{{"native", XdpMode::Native}, {"skb", XdpMode::Skb}};
    add_option(cmd, "IFACE", a.o.iface, "interface the feed arrives on (a mirror port, too)")
        ->required();
    add_option(cmd, "-t,--templates", a.o.templates, kTemplatesHelp)->required();
    add_option(cmd, "--udp", a.o.udp,
                    "UDP feed: PORT, GROUP:PORT or GROUP (IPv4/IPv6 multicast)");
    add_option(cmd, "--tcp-server", a.o.tcp_servers,
                    "mirrored TCP feed: the exchange's ADDR:PORT (its data is reassembled)");
    cmd->add_flag("--both-directions", a.o.tcp_both_directions,
                  "also take TCP segments sent to the servers");
    add_option(cmd, "-m,--mode", a.o.mode, "XDP mode: native (driver) or skb (generic)")
        ->transform(CLI::CheckedTransformer(modes, CLI::ignore_case).description("native|skb"))
        ->default_str("native");
    add_option(cmd, "-o,--output", a.o.output, "JSON Lines output file, - for stdout")
        ->capture_default_str();
    add_option(cmd, "-d,--seconds", a.o.seconds, "stop after this long (0: until Ctrl-C)")->check(at_most(kMaxSeconds))
        ->check(CLI::Range(0.0, 1e7));
    add_option(cmd, "-c,--count", a.o.count, "stop after this many records (0: no limit)");
    cmd->add_flag("--no-busy-poll", a.no_busy_poll,
                  "sleep in poll() between frames instead of spinning on the rings");
    cmd->add_flag("--stats", a.o.stats, "a counter line on stderr every second");
    add_option(cmd, "--ready-file", a.o.ready_file, "write this file once attached and ready");
    cmd->add_flag("--latency", a.o.latency,
                  "one-way latency from the records' SendTimeNs (md send) at the end");
    cmd->add_flag("--no-ts", a.no_ts, "leave the \"ts\" key out");
    cmd->add_flag("--all-counters", a.o.all_counters, "list zero counters too");
    add_feed_options(cmd, a.feed);
    cmd->footer(
        "\nmdfeed.bpf.o is attached for the run and detached on exit, Ctrl-C, SIGTERM and (by\n"
        "a guardian process) SIGKILL. Records as `md decode` writes them. Example on a mirror\n"
        "port: etcpipe md listen span0 --tcp-server 10.79.0.1:9000 -t testdata/mdfeed/sse.xml\n");
}

int run_listen(const ListenArgs& args, const CLI::App&) {
    if (auto c = require_capabilities("md listen", {Cap::Bpf, Cap::NetAdmin, Cap::Perfmon, Cap::NetRaw}); !c)
        return fail(c.error());
    ListenArgs a = args;
    if (a.o.udp.empty() && a.o.tcp_servers.empty())
        return fail(Error{ErrorKind::Usage, 0, a.o.iface, "md listen", "nothing to listen to",
                          "give --udp PORT and/or --tcp-server ADDR:PORT"});
    if (auto r = finish_feed(a.feed); !r) return fail(r.error());
    a.o.feed = a.feed.feed;
    a.o.with_ts = !a.no_ts;
    a.o.busy_poll = !a.no_busy_poll;
    auto r = md::run_listen(a.o);
    if (!r) return fail(r.error());
    return kOk;
}

// ---- send ------------------------------------------------------------------

struct SendArgs {
    md::SendOptions o;
    std::string udp, tcp, file;
};

void add_send(CLI::App* cmd, SendArgs& a) {
    add_option(cmd, "-t,--templates", a.o.templates, kTemplatesHelp)->required();
    auto* udp = add_option(cmd, "--udp", a.udp, "send UDP datagrams to ADDR:PORT");
    auto* tcp = add_option(cmd, "--tcp", a.tcp,
                                "listen on ADDR:PORT, accept one receiver, send STEP messages");
    auto* file = add_option(cmd, "--file", a.file, "write STEP messages to this file instead");
    udp->excludes(tcp);
    file->excludes(udp)->excludes(tcp);
    add_option(cmd, "-c,--count", a.o.count, "messages to send (datagrams or STEP messages)")
        ->capture_default_str()->check(CLI::Range(uint64_t{1}, uint64_t{1} << 40));
    add_option(cmd, "--rate", a.o.rate, "messages per second (0: as fast as possible)")
        ->capture_default_str()->check(CLI::Range(0.0, 1e8));
    add_option(cmd, "-d,--seconds", a.o.seconds, "stop after this long whatever the count")->check(at_most(kMaxSeconds))
        ->capture_default_str()->check(CLI::Range(0.001, 86400.0));
    add_option(cmd, "--size", a.o.size,
                    "bytes per message: records are packed until it is reached (100 and 1408 "
                    "are the source document's sizes)")
        ->capture_default_str()->check(CLI::Range(size_t{16}, size_t{65000}));
    add_option(cmd, "--template-ids", a.o.template_ids, "templates to send, in turn")
        ->capture_default_str()->delimiter(',');
    add_option(cmd, "--series", a.o.series, "prices: one per line")->capture_default_str()
        ->check(CLI::ExistingFile);
    cmd->add_flag("--seq-preamble", a.o.seq_preamble, "UDP: a 4-byte sequence number first");
    add_option(cmd, "--seed", a.o.seed, "random seed of the quantities and ids")->capture_default_str();
    cmd->footer("\nExamples:\n"
                "  etcpipe md send -t testdata/mdfeed/sse.xml --udp 10.79.0.2:5000 -c 1000\n"
                "  etcpipe md send -t testdata/mdfeed/sse.xml --file feed.step -c 100 && \\\n"
                "    etcpipe md decode feed.step -t testdata/mdfeed/sse.xml\n");
}

int run_send(const SendArgs& args, const CLI::App&) {
    SendArgs a = args;
    if (a.udp.empty() + a.tcp.empty() + a.file.empty() != 2)
        return fail(Error{ErrorKind::Usage, 0, "md send", "where to",
                          "give one of --udp ADDR:PORT, --tcp ADDR:PORT, --file PATH", ""});
    a.o.transport = !a.udp.empty() ? md::Transport::Udp
                    : !a.tcp.empty() ? md::Transport::Tcp
                                     : md::Transport::File;
    a.o.target = !a.udp.empty() ? a.udp : !a.tcp.empty() ? a.tcp : a.file;
    auto r = md::run_send(a.o);
    if (!r) return fail(r.error());
    std::fprintf(stderr, "md send: %llu messages, %llu records, %llu bytes in %.3f s%s\n",
                 static_cast<unsigned long long>(r->messages),
                 static_cast<unsigned long long>(r->records),
                 static_cast<unsigned long long>(r->bytes), r->seconds,
                 r->timed_out ? " (stopped by --seconds)" : "");
    return kOk;
}

// ---- recv ------------------------------------------------------------------

struct RecvArgs {
    md::RecvOptions o;
    FeedArgs feed;
    std::string udp, tcp;
    bool busy_poll = false, no_ts = false;
};

void add_recv(CLI::App* cmd, RecvArgs& a) {
    add_option(cmd, "-t,--templates", a.o.templates, kTemplatesHelp)->required();
    auto* udp = add_option(cmd, "--udp", a.udp, "receive UDP on [ADDR:]PORT (a group is joined)");
    auto* tcp = add_option(cmd, "--tcp", a.tcp, "connect to the exchange at ADDR:PORT");
    udp->excludes(tcp);
    cmd->add_flag("--busy-poll", a.busy_poll, "UDP: non-blocking spin with SO_BUSY_POLL");
    add_option(cmd, "-o,--output", a.o.output, "JSON Lines output, - for stdout")->capture_default_str();
    add_option(cmd, "-c,--count", a.o.count, "stop after this many records (0: no limit)");
    add_option(cmd, "-d,--seconds", a.o.seconds, "stop after this long (0: no limit)")->check(at_most(kMaxSeconds))
        ->check(CLI::Range(0.0, 1e7));
    add_option(cmd, "--ready-file", a.o.ready_file, "write this file once bound or connected");
    cmd->add_flag("--latency", a.o.latency, "one-way latency from SendTimeNs at the end");
    cmd->add_flag("--no-ts", a.no_ts, "leave the \"ts\" key out");
    cmd->add_flag("-q,--quiet", a.o.quiet, "no counters on stderr");
    add_feed_options(cmd, a.feed);
    cmd->footer("\nThe kernel socket path, with the decoder `md listen` uses.\n");
}

int run_recv(const RecvArgs& args, const CLI::App&) {
    RecvArgs a = args;
    if (a.udp.empty() == a.tcp.empty())
        return fail(Error{ErrorKind::Usage, 0, "md recv", "from where", "give --udp [ADDR:]PORT or --tcp ADDR:PORT", ""});
    if (auto r = finish_feed(a.feed); !r) return fail(r.error());
    a.o.feed = a.feed.feed;
    a.o.with_ts = !a.no_ts;
    a.o.endpoint = a.udp.empty() ? a.tcp : a.udp;
    a.o.mode = !a.tcp.empty() ? md::RecvMode::TcpClient
               : a.busy_poll  ? md::RecvMode::UdpBusyPoll
                              : md::RecvMode::UdpBlocking;
    auto r = md::run_recv(a.o);
    if (!r) return fail(r.error());
    return r->problems > 0 ? kData : kOk;
}

// ---- bench -----------------------------------------------------------------

void add_bench(CLI::App* cmd, md::BenchOptions& o) {
    add_option(cmd, "-t,--templates", o.templates, kTemplatesHelp)->capture_default_str();
    cmd->add_flag("--quick", o.quick, "fewer records and messages (a smoke run)");
    add_option(cmd, "--rows", o.rows, "decode, reassembly, latency (default: all)")->delimiter(',');
    add_option(cmd, "--messages", o.latency_messages, "messages per latency row")->capture_default_str();
    add_option(cmd, "--rate", o.latency_rate,
                    "100-byte messages per second in the latency rows (1408-byte: the same bytes/s)")
        ->capture_default_str();
}

int run_bench(const md::BenchOptions& o, const CLI::App&) {
    auto r = md::run_bench(o, stdout);
    if (!r) return fail(r.error());
    return kOk;
}

struct MdCommands {
    CLI::App* md = nullptr;
    std::vector<Runner> runners;
};

void add_md(CLI::App& app, MdCommands& s) {
    s.md = app.add_subcommand("md", "market data: decode, listen, send, recv, bench (FAST 1.1)");
    s.md->require_subcommand(1);
    const std::vector<Entry> entries = {
        entry(Command<DecodeArgs>{"decode", "captures or raw files → JSON Lines records",
                                  add_decode, run_decode}),
        entry(Command<ListenArgs>{"listen", "live feed over XDP + AF_XDP → records",
                                  add_listen, run_listen}),
        entry(Command<SendArgs>{"send", "feed generator (UDP datagrams or STEP over TCP)",
                                add_send, run_send}),
        entry(Command<RecvArgs>{"recv", "kernel socket receiver with the same decoder",
                                add_recv, run_recv}),
        entry(Command<md::BenchOptions>{"bench", "decode, reassembly and one-way latency benchmark",
                                        add_bench, run_bench}),
    };
    for (const Entry& e : entries) s.runners.push_back(e(*s.md));
}

std::optional<int> run_md(const MdCommands& s) {
    if (!s.md || !s.md->parsed()) return std::nullopt;
    for (const Runner& r : s.runners)
        if (auto code = r()) return code;
    return std::nullopt;
}

}  // namespace

Entry md_commands() { return group_entry(add_md, run_md); }

}  // namespace etcpipe::cli
