#include "cli/cli_anova.hpp"

#include <csignal>
#include <cstdio>
#include <fstream>

#include "anova/latency_bench.hpp"
#include "anova/net_tools.hpp"
#include "anova/output.hpp"
#include "cli/cli_common.hpp"
#include "common/signals.hpp"
#include "nfp/nfp_check.hpp"

namespace etcpipe::cli {
namespace {


Result<std::vector<double>> load_series(const std::string& path, const std::string& column) {
    auto s = anova::read_series(path, column);
    if (!s) return s.error();
    if (s->size() < ANOVA_SAMPLES)
        return Error{ErrorKind::Data, 0, path, "read series",
                     std::to_string(s->size()) + " values; a window needs " +
                         std::to_string(ANOVA_SAMPLES),
                     {}};
    return s;
}

Result<void> write_text(const std::string& path, const std::string& text) {
    if (path.empty() || path == "-") {
        std::fwrite(text.data(), 1, text.size(), stdout);
        return finish_output(stdout, "stdout");
    }
    std::ofstream out(path);
    out << text;
    out.close();
    if (!out) return make_error(ErrorKind::Io, errno, path, "write output");
    return {};
}

int run_check(const AnovaCommands& c) {
    if (c.check_target != "nfp")
        return fail(Error{ErrorKind::Usage, 0, c.check_target, "check", "unknown target",
                          "the only target is nfp (Netronome Agilio SmartNIC offload)"});
    bool all_ok = true;
    for (const auto& obj : c.check_objects) {
        auto r = nfp::check_object(obj, c.check_limit);
        if (!r) return fail(r.error());
        nfp::print_report(stdout, *r);
        all_ok = all_ok && r->offloadable();
    }
    return all_ok ? kOk : kGeneral;
}

int run_split(const AnovaCommands& c) {
    auto params = c.split_params.params();
    if (!params) return fail(params.error());
    auto series = load_series(c.series, c.column);
    if (!series) return fail(series.error());
    anova::ProgramOptions po;
    po.params = *params;
    po.encoding = c.split_params.encoding;
    auto prog = anova::Program::load(po);
    if (!prog) return fail(prog.error());
    auto r = anova::split_series(*prog, *series);
    if (!r) return fail(r.error());
    if (auto w = write_text(c.output, anova::format_splits(*series, *r)); !w) return fail(w.error());
    if (!c.plot.empty()) {
        const std::string title = c.title.empty() ? c.series + (c.column.empty() ? "" : " [" + c.column + "]")
                                                  : c.title;
        if (auto w = anova::write_split_svg(c.plot, *series, *r, title); !w) return fail(w.error());
        std::fprintf(stderr, "plot written to %s\n", c.plot.c_str());
    }
    return kOk;
}

int run_serve(const AnovaCommands& c) {
    auto params = c.serve_params.params();
    if (!params) return fail(params.error());
    install_stop_handlers();
    anova::ServeOptions so;
    so.bind = c.bind;
    so.port = c.port;
    so.params = *params;
    so.encoding = c.serve_params.encoding;
    so.max_requests = c.count;
    so.stop = &stop_flag();
    std::fprintf(stderr, "serving ANOVA requests on %s udp/%u (Ctrl-C to stop)\n", c.bind.c_str(),
                 c.port);
    auto r = anova::serve(so);
    if (!r) return fail(r.error());
    std::fputs(anova::format_serve_stats(*r).c_str(), stderr);
    return kOk;
}

int run_send(const AnovaCommands& c) {
    auto params = c.send_params.params();
    if (!params) return fail(params.error());
    auto series = load_series(c.series, c.column);
    if (!series) return fail(series.error());
    anova::SendOptions so;
    so.target = c.target;
    so.port = c.port;
    so.encoding = c.send_params.encoding;
    so.frac_bits = params->frac_bits;
    so.timeout_ms = c.timeout_ms;
    so.retries = c.retries;
    so.udp_checksum = !c.no_udp_checksum;
    auto r = anova::send_series(so, *series);
    if (!r) return fail(r.error());
    if (auto w = write_text(c.output, anova::format_send_result(*series, *r)); !w)
        return fail(w.error());
    return r->lost ? kGeneral : kOk;
}

int run_bench(const AnovaCommands& c) {
    // Network namespaces (CAP_SYS_ADMIN) and two XDP programs.
    if (auto cp = require_capabilities("anova bench", {Cap::SysAdmin, Cap::NetAdmin}); !cp) return fail(cp.error());
    install_stop_handlers();
    anova::BenchOptions bo;
    bo.round_trips = c.windows;
    bo.series_path = c.bench_series;
    bo.stop = &stop_flag();
    auto r = anova::latency_bench(bo);
    if (!r) return fail(r.error());
    std::fputs(anova::format_bench(*r).c_str(), stdout);
    return r->aborted ? kGeneral : kOk;
}

}  // namespace

Result<anova::Params> AnovaParamArgs::params() const {
    anova::Params p;
    if (profile == "osh")
        p = anova::osh_profile();
    else if (profile == "report")
        p = anova::report_profile();
    else
        return Error{ErrorKind::Usage, 0, profile, "parse --profile", "unknown profile",
                     "osh (14 fractional bits, ε 1638) or report (10 bits)"};
    if (frac_bits) p.frac_bits = *frac_bits;
    if (eps) p.eps = *eps;
    if (eps2) p.eps2 = *eps2;
    if (auto v = anova::check_params(p); !v) return v.error();
    return p;
}

void add_anova_params(CLI::App* cmd, AnovaParamArgs& a, bool with_encoding) {
    const std::string g = "Rule";
    add_option(cmd, "--profile", a.profile,
                    "osh: 14 fractional bits, eps 1638, eps2 2684191 (the seed's code); "
                    "report: the seed report's 10-bit fixed point")
        ->capture_default_str()->group(g);
    add_option(cmd, "--eps", a.eps, "epsilon in fixed point (overrides the profile)")->group(g);
    add_option(cmd, "--eps2", a.eps2, "epsilon squared in fixed point (overrides the profile)")
        ->group(g);
    add_option(cmd, "--frac-bits", a.frac_bits, "fractional bits of the fixed point")->group(g);
    if (with_encoding) {
        const std::map<std::string, anova_encoding> encs{{"u32", ANOVA_ENC_U32},
                                                         {"f64", ANOVA_ENC_F64}};
        add_option(cmd, "--encoding", a.encoding,
                        "samples on the wire: u32 fixed point, or f64 (IEEE-754, converted in XDP)")
            ->transform(CLI::CheckedTransformer(encs, CLI::ignore_case))
            ->default_str("u32")
            ->group(g);
    }
}

void add_anova_commands(CLI::App& app, AnovaCommands& c) {
    c.check = app.add_subcommand(
        "check", "static check of BPF objects against a target's rules (exit 0: they comply)");
    add_option(c.check, "--target", c.check_target, "nfp: Netronome Agilio SmartNIC offload")
        ->capture_default_str();
    add_option(c.check, "--nfp-limit", c.check_limit, "NFP instruction budget of the firmware")
        ->capture_default_str();
    add_option(c.check, "OBJ", c.check_objects, "BPF ELF objects, e.g. bpf/anova.bpf.o")
        ->required();

    c.anova = app.add_subcommand("anova", "ANOVA state split: run, serve, send, benchmark");
    c.anova->require_subcommand(1);

    c.split = c.anova->add_subcommand(
        "split", "run the XDP program on every 16-sample window of a series (BPF_PROG_TEST_RUN)");
    add_option(c.split, "SERIES", c.series, "one value per line, or CSV with --column")->required();
    add_option(c.split, "--column", c.column, "CSV column: header name or 1-based number");
    add_option(c.split, "-o,--output", c.output, "write the splits here (default stdout)");
    add_option(c.split, "--plot", c.plot, "draw the series with the splits to this SVG file");
    add_option(c.split, "--title", c.title, "plot title (default: the file name)");
    add_anova_params(c.split, c.split_params);

    c.serve = c.anova->add_subcommand(
        "serve", "answer ANOVA requests from user space over UDP (the latency baseline)");
    add_option(c.serve, "--bind", c.bind, "address to listen on")->capture_default_str();
    add_option(c.serve, "--port", c.port, "UDP port")->capture_default_str();
    add_option(c.serve, "-c,--count", c.count, "stop after this many requests (0: until Ctrl-C)");
    add_anova_params(c.serve, c.serve_params);

    c.send = c.anova->add_subcommand(
        "send", "send every window of a series to a target and collect the verdicts");
    add_option(c.send, "SERIES", c.series, "one value per line, or CSV with --column")->required();
    add_option(c.send, "--column", c.column, "CSV column: header name or 1-based number");
    add_option(c.send, "--target", c.target, "address of the XDP program or server")
        ->capture_default_str();
    add_option(c.send, "--port", c.port, "UDP port")->capture_default_str();
    add_option(c.send, "--timeout-ms", c.timeout_ms, "wait for each reply")->capture_default_str();
    add_option(c.send, "--retries", c.retries, "extra attempts per window")->capture_default_str();
    c.send->add_flag("--no-udp-checksum", c.no_udp_checksum,
                     "send with UDP checksum 0: needed against an XDP tx reflector on a local "
                     "veth, where checksum offload leaves it unfinished");
    add_option(c.send, "-o,--output", c.output, "write the splits here (default stdout)");
    add_anova_params(c.send, c.send_params);

    c.bench = c.anova->add_subcommand(
        "bench",
        "round-trip latency, XDP_TX reflector vs user-space server, on a veth pair between two "
        "network namespaces it creates and removes");
    add_option(c.bench, "--windows", c.windows, "round trips per target")->check(at_most(kMaxBenchWindows))->capture_default_str();
    add_option(c.bench, "--series", c.bench_series, "series to send (default: a random walk)");
}

std::optional<int> run_anova_commands(const AnovaCommands& c) {
    if (c.check && c.check->parsed()) return run_check(c);
    if (c.split && c.split->parsed()) return run_split(c);
    if (c.serve && c.serve->parsed()) return run_serve(c);
    if (c.send && c.send->parsed()) return run_send(c);
    if (c.bench && c.bench->parsed()) return run_bench(c);
    return std::nullopt;
}

}  // namespace etcpipe::cli
