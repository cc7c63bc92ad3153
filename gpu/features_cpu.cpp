// Multi-threaded CPU feature extractor (semantics: gpu/features.hpp).
//
// push(batch), two phases:
//  1. parse: threads over contiguous index ranges parse every frame with
//     pp::parse (gpu/parse_packet.hpp, the code the CUDA twin runs too);
//  2. flows: thread t owns the flows whose key hash % T == t and walks the
//     whole batch in arrival order, handling only its flows, so each flow
//     sees its packets in order and no flow state is shared between threads.
// A flow that reaches H selected packets is emitted at once (moved to its
// thread's emitted list) and its key stays in the map as "done": later
// packets of that key are ignored entirely — they neither re-create the flow
// nor count in its `packets` — because a key is one flow for the whole input.
// finish() emits the remaining flows with ≥ 1 selected packet, merges all
// threads' rows, sorts them by the global index of the first parsed packet
// and lays out the tensors in that order. The thread count only changes who
// does the work, never the bytes.
#include <algorithm>
#include <cstring>
#include <thread>
#include <unordered_map>

#include "features.hpp"
#include "parse_packet.hpp"

namespace etcpipe::features {
namespace {

struct KeyHash {
    size_t operator()(const etc_flow_key& k) const { return static_cast<size_t>(pp::key_hash(k)); }
};
struct KeyEq {
    bool operator()(const etc_flow_key& a, const etc_flow_key& b) const {
        return pp::key_equal(a, b);
    }
};

struct ParsedSlot {
    pp::Parsed pk;
    uint64_t hash;
    bool ok;
};

struct FlowState {
    FlowRow row;
    uint64_t last_sel_ns = 0;
    bool done = false;
    std::vector<uint8_t> buf;  // all features' rows of this flow, feature after feature
};

struct Emitted {
    FlowRow row;
    std::vector<uint8_t> buf;  // empty: no selected packet (never emitted)
};

struct Worker {
    std::unordered_map<etc_flow_key, FlowState, KeyHash, KeyEq> flows;
    std::vector<Emitted> emitted;
};

class CpuExtractor final : public Extractor {
  public:
    CpuExtractor(std::vector<Feature> spec, unsigned threads)
        : spec_(std::move(spec)), h_(max_packets(spec_)), workers_(threads) {
        size_t off = 0;
        for (const Feature& f : spec_) {
            feat_off_.push_back(off);
            off += f.row_bytes();
        }
        flow_bytes_ = off;
    }

    Result<void> push(const Batch& b) override {
        const size_t n = b.size();
        if (n == 0) return {};
        if (b.offsets.size() != n + 1 || b.offsets.back() > b.bytes.size())
            return make_error(ErrorKind::Data, 0, "", "feature batch",
                              "offsets/ts_ns sizes disagree or run past the bytes");
        for (size_t i = 0; i < n; ++i)
            if (b.offsets[i] > b.offsets[i + 1] || b.offsets[i + 1] - b.offsets[i] > UINT32_MAX)
                return make_error(ErrorKind::Data, 0, "", "feature batch",
                                  "bad offset at frame " + std::to_string(i));
        if (b.first_index < next_index_)
            return make_error(ErrorKind::Usage, 0, "", "feature batch",
                              "batches out of order: first_index " +
                                  std::to_string(b.first_index) + " < " +
                                  std::to_string(next_index_));
        next_index_ = b.first_index + n;
        slots_.resize(n);
        const unsigned T = static_cast<unsigned>(workers_.size());

        run_parallel(T, [&](unsigned t) {
            const size_t lo = n * t / T, hi = n * (t + 1) / T;
            for (size_t i = lo; i < hi; ++i) {
                ParsedSlot& s = slots_[i];
                const uint8_t* p = b.bytes.data() + b.offsets[i];
                const auto caplen = static_cast<uint32_t>(b.offsets[i + 1] - b.offsets[i]);
                s.ok = pp::parse(p, caplen, &s.pk);
                if (s.ok) s.hash = pp::key_hash(s.pk.key);
            }
        });
        run_parallel(T, [&](unsigned t) { flows_phase(b, t, T); });
        return {};
    }

    Result<Output> finish() override {
        std::vector<Emitted> all;
        for (Worker& w : workers_) {
            for (Emitted& e : w.emitted) all.push_back(std::move(e));
            w.emitted.clear();
            for (auto& [k, st] : w.flows)
                if (!st.done && st.row.selected > 0)
                    all.push_back(Emitted{st.row, std::move(st.buf)});
            w.flows.clear();
        }
        std::sort(all.begin(), all.end(), [](const Emitted& a, const Emitted& b) {
            return a.row.first_index < b.row.first_index;
        });
        Output out;
        out.spec = spec_;
        out.rows.reserve(all.size());
        out.tensors.resize(spec_.size());
        for (size_t f = 0; f < spec_.size(); ++f) out.tensors[f].resize(all.size() * spec_[f].row_bytes());
        for (size_t r = 0; r < all.size(); ++r) {
            out.rows.push_back(all[r].row);
            for (size_t f = 0; f < spec_.size(); ++f) {
                const size_t rb = spec_[f].row_bytes();
                std::memcpy(out.tensors[f].data() + r * rb, all[r].buf.data() + feat_off_[f], rb);
            }
        }
        return out;
    }

    const char* name() const override { return "cpu"; }

  private:
    template <class F>
    static void run_parallel(unsigned T, F&& fn) {
        if (T <= 1) {
            fn(0u);
            return;
        }
        std::vector<std::thread> th;
        th.reserve(T - 1);
        for (unsigned t = 1; t < T; ++t) th.emplace_back([&fn, t] { fn(t); });
        fn(0u);
        for (std::thread& x : th) x.join();
    }

    void flows_phase(const Batch& b, unsigned t, unsigned T) {
        Worker& w = workers_[t];
        const size_t n = b.size();
        for (size_t i = 0; i < n; ++i) {
            const ParsedSlot& s = slots_[i];
            if (!s.ok || s.hash % T != t) continue;
            auto [it, fresh] = w.flows.try_emplace(s.pk.key);
            FlowState& st = it->second;
            if (fresh) {
                st.row.key = s.pk.key;
                st.row.initiator_is_a = s.pk.from_a;
                st.row.first_index = b.first_index + i;
                st.row.first_ns = b.ts_ns[i];
            }
            if (st.done) continue;
            st.row.packets++;
            if (s.pk.payload_len == 0) continue;
            const uint32_t j = st.row.selected++;
            if (st.buf.empty()) st.buf.assign(flow_bytes_, 0);
            const uint8_t* p = b.bytes.data() + b.offsets[i];
            const auto caplen = static_cast<uint32_t>(b.offsets[i + 1] - b.offsets[i]);
            const uint64_t ts = b.ts_ns[i];
            for (size_t f = 0; f < spec_.size(); ++f) {
                const Feature& ft = spec_[f];
                if (j >= ft.h) continue;
                uint8_t* base = st.buf.data() + feat_off_[f];
                switch (ft.kind) {
                case Kind::Payload:
                    pp::fill_payload(p, caplen, s.pk, base + size_t{j} * ft.l, ft.l);
                    break;
                case Kind::Packet:
                    pp::fill_packet(p, caplen, s.pk, base + size_t{j} * ft.l, ft.l);
                    break;
                case Kind::Sizes: {
                    const int32_t v = pp::signed_size(s.pk, st.row.initiator_is_a);
                    std::memcpy(base + size_t{j} * 4, &v, 4);
                    break;
                }
                case Kind::Iat: {
                    const int64_t v = j == 0 ? 0 : pp::iat_us(ts, st.last_sel_ns);
                    std::memcpy(base + size_t{j} * 8, &v, 8);
                    break;
                }
                }
            }
            st.last_sel_ns = ts;
            if (st.row.selected == h_) {
                w.emitted.push_back(Emitted{st.row, std::move(st.buf)});
                st.buf = std::vector<uint8_t>();
                st.done = true;
            }
        }
    }

    std::vector<Feature> spec_;
    uint32_t h_;
    std::vector<size_t> feat_off_;
    size_t flow_bytes_ = 0;
    std::vector<Worker> workers_;
    std::vector<ParsedSlot> slots_;
    uint64_t next_index_ = 0;
};

}  // namespace

std::unique_ptr<Extractor> make_cpu_extractor(const std::vector<Feature>& spec,
                                              const CpuOptions& opts) {
    unsigned t = opts.threads;
    if (t == 0) t = std::max(1u, std::thread::hardware_concurrency());
    return std::make_unique<CpuExtractor>(spec, t);
}

}  // namespace etcpipe::features
