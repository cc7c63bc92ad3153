#include "cli/cli_pkttag.hpp"

#include <cerrno>
#include <cinttypes>
#include <cstdio>
#include <map>
#include <optional>
#include <tuple>

#include "cli/cli_common.hpp"
#include "common/json_text.hpp"
#include "common/capture_loop.hpp"
#include "common/pcap.hpp"
#include "pkttag/pkttag.hpp"

namespace etcpipe::cli {

namespace {

// A bidirectional flow within one capture: protocol and the two endpoints
// in a fixed order.
using FlowKey = std::tuple<uint8_t, std::string, uint16_t, std::string, uint16_t>;

struct Flow {
    uint64_t id = 0, packets = 0, tagged = 0;
    uint8_t proto = 0;
    std::string src, dst;  // client: the sender of the first packet
    uint16_t sport = 0, dport = 0;
    std::vector<uint64_t> votes;  // per tag, over the first `vote` tagged packets
    uint32_t majority() const {
        uint32_t best = 0;
        for (uint32_t t = 1; t < votes.size(); ++t)
            if (votes[t] > votes[best]) best = t;
        return votes.empty() || votes[best] == 0 ? 0 : best;
    }
};

FlowKey key_of(const pkttag::Packet& p) {
    if (std::tie(p.src, p.sport) < std::tie(p.dst, p.dport)) return {p.proto, p.src, p.sport, p.dst, p.dport};
    return {p.proto, p.dst, p.dport, p.src, p.sport};
}

bool put(std::FILE* f, const std::string& s) { return std::fwrite(s.data(), 1, s.size(), f) == s.size(); }

// " NAME COUNT" for each tag counted at least once.
void print_tag_counts(const std::vector<uint64_t>& counts) {
    for (size_t t = 0; t < counts.size(); ++t)
        if (counts[t]) std::fprintf(stderr, " %s %" PRIu64, pkttag::tag_name(static_cast<uint32_t>(t)), counts[t]);
}

}  // namespace

int run_pkttag_replay(const PkttagReplayArgs& a) {
    const auto variant = a.variant == "dscp" ? pkttag::Variant::Dscp : pkttag::Variant::Meta;
    std::FILE* json = nullptr;
    std::string json_path = a.json_path;
    if (a.table && json_path == "-") json_path.clear();
    if (json_path == "-") {
        json = stdout;
    } else if (!json_path.empty()) {
        json = std::fopen(json_path.c_str(), "w");
        if (!json) return fail(make_error(ErrorKind::Io, errno, json_path, "create JSON output"));
    }
    auto prog = pkttag::Program::load(variant);
    if (!prog) return fail(prog.error());
    const int ntags = pkttag::classes() + 1;
    std::vector<uint64_t> total_tags(static_cast<size_t>(ntags), 0), total_flow_tags(static_cast<size_t>(ntags), 0);
    uint64_t frames = 0, ran = 0, skipped = 0, mismatches = 0, flows_total = 0;
    int failed = 0, first_error = 0;
    for (const auto& cap : a.captures) {
        auto rd = pcap::Reader::open(cap);
        if (!rd) {
            fail(rd.error());
            ++failed;
            if (!first_error) first_error = exit_code(rd.error());
            continue;
        }
        std::map<FlowKey, Flow> flows;
        std::vector<const Flow*> order;
        const std::string head = "{\"capture\":" + json::string(cap);
        bool write_failed = false;
        std::optional<Error> run_error;
        CaptureLoopOptions lo;
        lo.max_frames = a.max_frames;
        const auto loop = for_each_ethernet_frame(*rd, [&](const EthernetFrame& ef) {
            auto run = prog->run(ef.bytes);
            if (!run) {
                run_error = run.error();
                return false;
            }
            ++ran;
            const pkttag::Packet p = pkttag::parse(ef.bytes);
            const uint32_t ref = p.ok ? static_cast<uint32_t>(pkttag::infer(p.x)) + 1 : 0;
            const uint32_t tag = run->tag;
            if (tag != ref) ++mismatches;
            if (tag < total_tags.size()) ++total_tags[tag];
            Flow* fl = nullptr;
            if (p.family) {
                auto [it, fresh] = flows.try_emplace(key_of(p));
                fl = &it->second;
                if (fresh) {
                    fl->id = order.size();
                    fl->proto = p.proto;
                    fl->src = p.src, fl->dst = p.dst, fl->sport = p.sport, fl->dport = p.dport;
                    fl->votes.assign(static_cast<size_t>(ntags), 0);
                    order.push_back(fl);
                }
                ++fl->packets;
                if (tag && tag < fl->votes.size() && fl->tagged < a.vote) ++fl->votes[tag], ++fl->tagged;
            }
            if (json && !a.flows_only) {
                std::string line = head + ",\"type\":\"packet\",\"frame\":" + std::to_string(ef.frame->index) +
                                   ",\"tag\":" + std::to_string(tag) + ",\"class\":" +
                                   json::string(pkttag::tag_name(tag));
                if (tag != ref) line += ",\"reference\":" + std::to_string(ref);
                if (p.family)
                    line += ",\"flow\":" + std::to_string(fl->id) + ",\"proto\":" + std::to_string(p.proto) +
                            ",\"src\":" + json::string(p.src) + ",\"sport\":" + std::to_string(p.sport) +
                            ",\"dst\":" + json::string(p.dst) + ",\"dport\":" + std::to_string(p.dport);
                if (a.features && p.ok) {
                    line += ",\"x\":[";
                    for (size_t i = 0; i < p.x.size(); ++i) line += (i ? "," : "") + std::to_string(p.x[i]);
                    line += "]";
                }
                line += "}\n";
                if (!put(json, line)) write_failed = true;
            }
            return true;
        }, lo);
        if (run_error) return fail(*run_error);
        const uint64_t n = loop.frames;
        frames += loop.frames;
        skipped += loop.not_ethernet + loop.too_short;
        if (loop.capture_error) {
            fail(*loop.capture_error);
            ++failed;
            if (!first_error) first_error = exit_code(*loop.capture_error);
        }
        std::vector<uint64_t> flow_tags(static_cast<size_t>(ntags), 0);
        if (a.table && !order.empty())
            std::printf("%-40s %6s %5s %-41s %-41s %7s %-16s\n", "capture", "flow", "proto", "client",
                        "server", "packets", "majority");
        for (const Flow* fl : order) {
            const uint32_t m = fl->majority();
            ++flow_tags[m];
            ++total_flow_tags[m];
            if (json) {
                std::string line = head + ",\"type\":\"flow\",\"flow\":" + std::to_string(fl->id) +
                                   ",\"proto\":" + std::to_string(fl->proto) + ",\"src\":" + json::string(fl->src) +
                                   ",\"sport\":" + std::to_string(fl->sport) + ",\"dst\":" + json::string(fl->dst) +
                                   ",\"dport\":" + std::to_string(fl->dport) + ",\"packets\":" +
                                   std::to_string(fl->packets) + ",\"tag\":" + std::to_string(m) +
                                   ",\"class\":" + json::string(pkttag::tag_name(m)) + ",\"votes\":{";
                bool first = true;
                for (uint32_t t = 1; t < fl->votes.size(); ++t)
                    if (fl->votes[t]) {
                        line += (first ? "" : ",") + json::string(pkttag::tag_name(t)) + ":" +
                                std::to_string(fl->votes[t]);
                        first = false;
                    }
                line += "}}\n";
                if (!put(json, line)) write_failed = true;
            }
            if (a.table)
                std::printf("%-40s %6" PRIu64 " %5u %-41s %-41s %7" PRIu64 " %-16s\n", cap.c_str(), fl->id,
                            fl->proto, (fl->src + ":" + std::to_string(fl->sport)).c_str(),
                            (fl->dst + ":" + std::to_string(fl->dport)).c_str(), fl->packets,
                            pkttag::tag_name(m));
        }
        flows_total += order.size();
        if (write_failed)
            return fail(make_error(ErrorKind::Io, errno ? errno : EIO, json_path == "-" ? "stdout" : json_path,
                                   "write JSON"));
        if (!a.quiet && a.captures.size() == 1) {
            std::fprintf(stderr, "%s: %" PRIu64 " frames, %zu flows; flows by majority tag (first %u tagged packets):",
                         cap.c_str(), n, order.size(), a.vote);
            print_tag_counts(flow_tags);
            std::fputc('\n', stderr);
        }
    }
    if (json && json != stdout && std::fclose(json) != 0)
        return fail(make_error(ErrorKind::Io, errno, json_path, "close JSON output"));
    if (json == stdout) std::fflush(stdout);
    if (!a.quiet) {
        std::fprintf(stderr,
                     "%zu capture%s: %" PRIu64 " frames read, %" PRIu64 " run through %s, %" PRIu64
                     " skipped (shorter than 14 bytes or link layer not convertible), %" PRIu64
                     " flows, %" PRIu64 " tags differing from the reference\n",
                     a.captures.size(), a.captures.size() == 1 ? "" : "s", frames, ran,
                     pkttag::prog_name(variant), skipped, flows_total, mismatches);
        std::fprintf(stderr, "packets by tag:");
        print_tag_counts(total_tags);
        std::fprintf(stderr, "\nflows by majority tag:");
        print_tag_counts(total_flow_tags);
        std::fputc('\n', stderr);
        if (failed) std::fprintf(stderr, "%d of %zu captures failed (named above)\n", failed, a.captures.size());
    }
    if (first_error) return first_error;
    return mismatches ? kGeneral : kOk;
}

}  // namespace etcpipe::cli
