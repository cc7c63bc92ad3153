#include "flowmgr/replay.hpp"

#include <arpa/inet.h>
#include <linux/bpf.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cinttypes>
#include <cstring>
#include <ctime>
#include <memory>
#include <unordered_map>

#include <utility>

#include "common/capture_loop.hpp"
#include "common/output_check.hpp"
#include "common/log.hpp"
#include "common/pcap.hpp"
#include "gpu/parse_packet.hpp"

namespace etcpipe {
namespace {

// Labels a new flow from its first packet, parsed by the program's parser's
// C++ twin: addresses, ports and VLANs in the packet's own orientation. Only
// names the flow for humans; selection is the BPF program's alone (the
// end-of-run check against the flow table catches a disagreement).
void describe(const features::pp::Parsed& pk, ReplayFlow& out) {
    const etc_flow_key& k = pk.key;
    const int af = k.family == 4 ? AF_INET : AF_INET6;
    char a[INET6_ADDRSTRLEN], b[INET6_ADDRSTRLEN];
    inet_ntop(af, k.addr_a, a, sizeof(a));
    inet_ntop(af, k.addr_b, b, sizeof(b));
    out.family = k.family;
    out.proto = k.proto;
    out.src = pk.from_a ? a : b;
    out.dst = pk.from_a ? b : a;
    out.sport = pk.from_a ? k.port_a : k.port_b;
    out.dport = pk.from_a ? k.port_b : k.port_a;
    for (int i = 0; i < ETC_MAX_VLAN_DEPTH; ++i) out.vlan[i] = k.vlan[i];
}

const char* proto_name(uint8_t p) {
    switch (p) {
        case 1: return "icmp";
        case 6: return "tcp";
        case 17: return "udp";
        case 47: return "gre";
        case 50: return "esp";
        case 51: return "ah";
        case 58: return "icmpv6";
        case 132: return "sctp";
        default: return nullptr;
    }
}

std::string iso_time(uint64_t ns) {
    time_t s = static_cast<time_t>(ns / 1'000'000'000ull);
    struct tm tm{};
    gmtime_r(&s, &tm);
    char buf[64];
    size_t n = std::strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%S", &tm);
    std::snprintf(buf + n, sizeof(buf) - n, ".%09llu",
                  static_cast<unsigned long long>(ns % 1'000'000'000ull));
    return std::string(buf) + "Z";
}

class Progress {
  public:
    Progress(bool enabled, const std::string& path) : enabled_(enabled && isatty(STDERR_FILENO)) {
        struct stat st{};
        if (enabled_ && stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode))
            total_ = static_cast<uint64_t>(st.st_size);
        else
            enabled_ = false;
    }
    void update(uint64_t offset, uint64_t frames, size_t flows, bool force = false) {
        if (!enabled_) return;
        auto now = std::chrono::steady_clock::now();
        if (!force && now - last_ < std::chrono::milliseconds(100)) return;
        last_ = now;
        const double frac = total_ ? static_cast<double>(offset) / static_cast<double>(total_) : 1.0;
        const int width = 30, filled = static_cast<int>(frac * width);
        std::fprintf(stderr, "\r[%.*s%*s] %3d%%  %" PRIu64 " frames  %zu flows", filled,
                     "##############################", width - filled, "",
                     static_cast<int>(frac * 100), frames, flows);
        drawn_ = true;
    }
    void finish() {
        if (drawn_) std::fputs("\r\033[K", stderr);
    }

  private:
    bool enabled_;
    bool drawn_ = false;
    uint64_t total_ = 0;
    std::chrono::steady_clock::time_point last_{};
};

struct JsonSink {
    std::FILE* f = nullptr;
    bool owned = false;
    ~JsonSink() {
        if (owned && f) std::fclose(f);
    }
};

}  // namespace

std::string flow_json(const ReplayFlow& f) {
    std::string j = "{\"flow_id\":" + std::to_string(f.flow_id);
    const char* pn = proto_name(f.proto);
    j += ",\"proto\":";
    j += pn ? std::string("\"") + pn + "\"" : std::to_string(f.proto);
    j += ",\"family\":" + std::to_string(f.family);
    j += ",\"src\":\"" + f.src + "\",\"sport\":" + std::to_string(f.sport);
    j += ",\"dst\":\"" + f.dst + "\",\"dport\":" + std::to_string(f.dport);
    j += ",\"vlan\":[";
    for (int i = 0, n = 0; i < ETC_MAX_VLAN_DEPTH; ++i)
        if (f.vlan[i]) j += (n++ ? "," : "") + std::to_string(f.vlan[i]);
    j += "],\"packets\":" + std::to_string(f.packets);
    j += ",\"packets_fwd\":" + std::to_string(f.packets_fwd);
    j += ",\"packets_rev\":" + std::to_string(f.packets_rev);
    j += ",\"bytes\":" + std::to_string(f.bytes);
    j += ",\"payload_packets\":" + std::to_string(f.payload_packets);
    j += ",\"selected\":" + std::to_string(f.selected);
    j += ",\"first_ns\":" + std::to_string(f.first_ns);
    j += ",\"last_ns\":" + std::to_string(f.last_ns);
    j += ",\"first_time\":\"" + iso_time(f.first_ns) + "\"";
    j += ",\"first_frame\":" + std::to_string(f.first_frame) + "}";
    return j;
}

void print_counters(std::FILE* out, const Counters& c, bool all) {
    for (int i = 0; i < ETC_CNT_MAX; ++i) {
        if (!all && c[static_cast<size_t>(i)] == 0) continue;
        std::fprintf(out, "  %-24s %12" PRIu64 "  %s\n", counter_name(i), c[static_cast<size_t>(i)],
                     counter_doc(i));
    }
}

Result<ReplayStats> replay_capture(FlowManager& fm, const std::string& capture, uint64_t max_frames,
                                   bool progress, const SelectedSink& on_selected, ReplayStats* partial) {
    auto reader = pcap::Reader::open(capture);
    if (!reader) return reader.error();
    return replay_capture(fm, *reader, capture, max_frames, progress, on_selected, partial);
}

Result<ReplayStats> replay_capture(FlowManager& fm, pcap::Reader& reader, const std::string& capture,
                                   uint64_t max_frames, bool progress, const SelectedSink& on_selected,
                                   ReplayStats* partial) {
    if (auto r = fm.reset(); !r) return r.error();

    ReplayStats st;
    std::unordered_map<uint64_t, size_t> by_id;  // flow_id → index in st.flows
    // Each flow's table key, from its first packet: the table is emptied
    // key by key at the end.
    std::vector<etc_flow_key> keys;
    std::optional<Error> write_error, run_error;
    const bool inline_mode = fm.options().delivery == ETC_DELIVERY_INLINE;
    // Inline delivery: the ring must be drained (or it fills); its records
    // are counted, the packet itself is taken whole from the capture.
    auto on_ring = [&](const etc_ring_hdr&, std::span<const uint8_t>) { ++st.ring_records; };

    Progress bar(progress, capture);
    const auto t0 = std::chrono::steady_clock::now();
    CaptureLoopOptions lo;
    lo.max_frames = max_frames;
    lo.on_first_not_ethernet = [&](const pcap::Frame& frame, const Error& e) {
        ETC_INFO("%s: frame %" PRIu64 " skipped: %s (further ones counted)", capture.c_str(),
                 frame.index + 1, e.message().c_str());
    };
    const auto loop = for_each_ethernet_frame(reader, [&](const EthernetFrame& ef) {
        auto res = fm.test_run(ef.bytes, ef.ts_ns);
        if (!res) {
            run_error = res.error();
            return false;
        }
        ++st.ran;
        if (res->meta) {
            const etc_meta& m = *res->meta;
            auto [it, fresh] = by_id.try_emplace(m.flow_id, st.flows.size());
            if (fresh) {
                ReplayFlow nf;
                nf.flow_id = m.flow_id;
                nf.first_ns = m.ts_ns;
                nf.first_frame = ef.frame->index + 1;
                features::pp::Parsed parsed;
                if (features::pp::parse(ef.bytes.data(), static_cast<uint32_t>(ef.bytes.size()), &parsed)) {
                    describe(parsed, nf);
                    keys.push_back(parsed.key);
                }
                st.flows.push_back(std::move(nf));
            }
            ReplayFlow& f = st.flows[it->second];
            ++f.packets;
            ++((m.flags & ETC_META_DIR_REPLY) ? f.packets_rev : f.packets_fwd);
            f.bytes += m.orig_len;
            f.last_ns = m.ts_ns;
            if (m.flags & ETC_META_PAYLOAD) ++f.payload_packets;
            if (m.flags & ETC_META_SELECTED) {
                ++f.selected;
                ++st.selected;
                if (inline_mode) {
                    if (auto d = fm.drain_ring(on_ring); !d) {
                        run_error = d.error();
                        return false;
                    }
                }
                if (on_selected && !write_error) {
                    if (auto r = on_selected(m.ts_ns, ef.bytes, ef.frame->origlen); !r)
                        write_error = r.error();
                    else
                        ++st.pcap_written;
                }
            }
        }
        if (((ef.frame->index + 1) & 1023) == 0) bar.update(reader.offset(), ef.frame->index + 1, st.flows.size());
        return true;
    }, lo);
    st.frames = loop.frames;
    st.not_convertible = loop.not_ethernet;
    st.too_short = loop.too_short;
    bar.update(reader.offset(), st.frames, st.flows.size(), true);
    bar.finish();
    st.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();

    if (auto c = fm.counters()) st.counters = *c;
    // The flow table must agree with what the metadata said about each flow
    // still in it (expired or evicted flows are gone from the table).
    // Taken out as it is read: the next capture starts from an empty table
    // without another pass over it.
    auto check = fm.take_flows(keys, [&](const etc_flow_key&, const etc_flow_value& v) {
        auto it = by_id.find(v.flow_id);
        if (it == by_id.end()) return;
        const ReplayFlow& f = st.flows[it->second];
        if (v.packets != f.packets || v.selected != f.selected) {
            if (st.table_mismatches++ < 5)
                ETC_WARN("%s: flow %" PRIu64 ": table says %u packets/%u selected, metadata %" PRIu64
                         "/%" PRIu64,
                         capture.c_str(), f.flow_id, v.packets, v.selected, f.packets, f.selected);
        }
    });
    if (!check) ETC_WARN("%s", check.error().message().c_str());
    if (inline_mode && st.ring_records != st.selected)
        ETC_WARN("%s: ring buffer gave %" PRIu64 " records for %" PRIu64
                 " selected packets (see ringbuf_full)",
                 capture.c_str(), st.ring_records, st.selected);
    if (partial) *partial = st;
    if (run_error) return *run_error;
    if (loop.capture_error) return *loop.capture_error;
    if (write_error) return *write_error;
    return st;
}

Result<ReplayStats> replay(const ReplayOptions& o, ReplayStats* partial) {
    // The capture, then the outputs, before the long part, so a bad path
    // fails at once.
    auto reader = pcap::Reader::open(o.capture);
    if (!reader) return reader.error();
    JsonSink json;
    if (o.json_path == "-") {
        json.f = stdout;
    } else if (!o.json_path.empty()) {
        json.f = std::fopen(o.json_path.c_str(), "w");
        if (!json.f) return make_error(ErrorKind::Io, errno, o.json_path, "create JSON output");
        json.owned = true;
    }
    std::optional<pcap::Writer> writer;
    if (!o.write_pcap.empty()) {
        auto w = pcap::Writer::create(o.write_pcap);
        if (!w) return w.error();
        writer.emplace(std::move(w.value()));
    }
    FlowMgrOptions fo = o.flowmgr;
    fo.ring_wakeup = false;  // drained after every run
    auto fm = FlowManager::load(fo);
    if (!fm) return fm.error();

    SelectedSink sink;
    if (writer)
        sink = [&](uint64_t ts, std::span<const uint8_t> frame, uint32_t origlen) {
            return writer->write(ts, frame, origlen);
        };
    ReplayStats st;
    auto r = replay_capture(*fm, *reader, o.capture, o.max_frames, o.progress, sink, &st);
    std::optional<Error> write_error;
    if (json.f) {
        for (const auto& f : st.flows) {
            std::string line = flow_json(f);
            line += '\n';
            if (std::fwrite(line.data(), 1, line.size(), json.f) != line.size()) {
                write_error = make_error(ErrorKind::Io, errno,
                                         o.json_path == "-" ? "stdout" : o.json_path, "write JSON");
                break;
            }
        }
        // finish_output closes it (unless stdout)
        std::FILE* f = std::exchange(json.f, nullptr);
        if (auto c = finish_output(f, o.json_path == "-" ? "stdout" : o.json_path); !c && !write_error)
            write_error = c.error();
    }
    if (writer && !write_error)
        if (auto c = writer->close(); !c) write_error = c.error();
    if (partial) *partial = st;
    if (!r) return r.error();
    if (write_error) return *write_error;
    return st;
}

}  // namespace etcpipe
