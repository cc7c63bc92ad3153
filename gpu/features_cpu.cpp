// Multi-threaded CPU feature extractor (semantics: gpu/features.hpp).
//
// push(batch), one team of T threads, three phases separated by barriers:
//  1. parse: thread t parses the contiguous index range [n·t/T, n·(t+1)/T)
//     with pp::parse (gpu/parse_packet.hpp, the code the CUDA twin runs too)
//     and counts its packets per owner (key hash % T);
//  2. bucket: from those counts every thread knows where its range's packets
//     go in each owner's bucket and scatters their indices there (a counting
//     sort: ranges are in arrival order, so each bucket keeps arrival order);
//  3. flows: thread t walks only its bucket, so each flow sees its packets in
//     order, no flow state is shared between threads and nobody touches
//     packets of other threads' flows.
// Flow state lives in a flat open-addressing table (hash, flow index) per
// thread, keyed by a private hash (ownership and table slots only, never in
// the output). A selected packet appends one record to its thread's log: the
// non-zero prefix of each feature's row j (payload/packet bytes copied once
// with memcpy, addresses/ports zeroed; sizes; iat), so there is no per-packet
// or per-flow allocation and no zero padding is stored. A flow that reaches H
// selected packets is marked done in its table slot: later packets of that
// key are skipped right after the lookup — they neither re-create the flow
// nor count in its `packets` — because a key is one flow for the whole input.
// Its row is frozen from then on, so finish() takes every flow with ≥ 1
// selected packet in the order of the global index of its first parsed
// packet (row r). A thread's flows are created in that order already, so
// each thread ranks its own flows against the others' with a merge walk (no
// global sort), copies their rows, scatters its records into row r of the
// tensors (fresh calloc pages: no zero-fill) and frees its log, all in
// parallel. The T − 1 helper threads are started once per extractor, not
// per batch. The thread count only changes who does the work, never the
// bytes. With one thread the same code runs without the bucketing.
#include <algorithm>
#include <barrier>
#include <cassert>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <mutex>
#include <new>
#include <memory>
#include <thread>

#include "features.hpp"
#include "parse_packet.hpp"

namespace etcpipe::features {
namespace {

struct ParsedSlot {
    pp::Parsed pk;
    uint64_t hash;
    bool ok;
};

struct FlowState {
    FlowRow row;
    uint64_t last_sel_ns = 0;
};

struct FreeDeleter {
    void operator()(uint8_t* p) const { std::free(p); }
};

// Append-only byte log in chunks; pointers stay valid until clear(). The
// first kKeep chunks outlive clear(): an extractor reused capture after
// capture writes into pages it has already faulted in.
class Log {
  public:
    void init(size_t max_piece) { chunk_ = std::max<size_t>(size_t{32} << 20, max_piece); }
    uint8_t* reserve(size_t n) {  // room for n bytes at the returned pointer
        if (left_ < n) {
            if (used_ == chunks_.size()) {
                auto* c = static_cast<uint8_t*>(std::malloc(chunk_));
                if (!c) throw std::bad_alloc();
                chunks_.emplace_back(c);
            }
            cur_ = chunks_[used_++].get();
            left_ = chunk_;
        }
        return cur_;
    }
    void commit(size_t n) {
        cur_ += n;
        left_ -= n;
    }
    void clear() {
        if (chunks_.size() > kKeep) chunks_.resize(kKeep);
        used_ = 0;
        cur_ = nullptr;
        left_ = 0;
    }

  private:
    static constexpr size_t kKeep = 2;
    size_t chunk_ = size_t{1} << 20;
    std::vector<std::unique_ptr<uint8_t, FreeDeleter>> chunks_;
    size_t used_ = 0;
    uint8_t* cur_ = nullptr;
    size_t left_ = 0;
};

// One selected packet: its flow, its index j in the flow, and a blob with,
// for each feature f with j < h_f in spec order, a u32 length then that many
// bytes of f's row j (the row's non-zero prefix; the rest stays zero).
struct Rec {
    uint32_t flow;
    uint32_t j;
    const uint8_t* blob;
};

// Key hash for thread ownership and the table (never part of the output).
inline uint64_t fast_hash(const etc_flow_key& k) {
    constexpr size_t kW = sizeof(etc_flow_key) / 8, kTail = sizeof(etc_flow_key) % 8;
    const auto* b = reinterpret_cast<const uint8_t*>(&k);
    uint64_t h = 0x243F6A8885A308D3ull;
    for (size_t i = 0; i < kW; ++i) {
        uint64_t v;
        std::memcpy(&v, b + 8 * i, 8);
        h ^= v;
        h *= 0xff51afd7ed558ccdull;
        h ^= h >> 32;
    }
    if constexpr (kTail > 0) {
        uint64_t v = 0;
        std::memcpy(&v, b + 8 * kW, kTail);
        h ^= v;
        h *= 0xff51afd7ed558ccdull;
        h ^= h >> 32;
    }
    h *= 0xc4ceb9fe1a85ec53ull;
    return h ^ (h >> 29);
}

// Below these a push / finish runs on the calling thread alone: waking the
// helpers costs more than it saves (most captures have fewer packets).
constexpr size_t kSerialBatch = 1024;  // packets in one push
constexpr size_t kSerialFlows = 4096;  // flows in finish()

constexpr uint32_t kEmpty = UINT32_MAX;
constexpr uint32_t kDone = 0x80000000u;  // in Slot::idx: the flow reached H

struct Slot {
    uint64_t hash;
    uint32_t idx;  // flow index | kDone, or kEmpty
};

struct Worker {
    std::vector<Slot> table;  // power of two
    uint32_t mask = 0;
    std::vector<FlowState> flows;
    std::vector<Rec> recs;
    Log log;

    void clear() {
        table.clear();
        mask = 0;
        flows.clear();
        recs.clear();
        log.clear();
    }

    static size_t pos(uint64_t h, uint32_t mask) {
        return static_cast<size_t>((h * 0x9E3779B97F4A7C15ull) >> 32) & mask;
    }

    void grow() {
        const size_t cap = table.empty() ? 4096 : table.size() * 2;
        std::vector<Slot> nt(cap, Slot{0, kEmpty});
        const uint32_t nm = static_cast<uint32_t>(cap - 1);
        for (const Slot& s : table) {
            if (s.idx == kEmpty) continue;
            size_t p = pos(s.hash, nm);
            while (nt[p].idx != kEmpty) p = (p + 1) & nm;
            nt[p] = s;
        }
        table.swap(nt);
        mask = nm;
    }

    // The slot for key k (hash h): existing, or a fresh empty one.
    Slot* find(uint64_t h, const etc_flow_key& k, bool* fresh) {
        if ((flows.size() + 1) * 2 > table.size()) grow();
        size_t p = pos(h, mask);
        for (;;) {
            Slot& s = table[p];
            if (s.idx == kEmpty) {
                *fresh = true;
                return &s;
            }
            if (s.hash == h &&
                std::memcmp(&flows[s.idx & ~kDone].row.key, &k, sizeof(etc_flow_key)) == 0) {
                *fresh = false;
                return &s;
            }
            p = (p + 1) & mask;
        }
    }
};

// T − 1 helper threads started once; run(fn) calls fn(0) on the caller and
// fn(1..T−1) on the helpers, all at once (the phases of push() wait for each
// other on a barrier), and returns when every call has.
class Team {
  public:
    explicit Team(unsigned threads) {
        for (unsigned t = 1; t < threads; ++t) helpers_.emplace_back([this, t] { loop(t); });
    }
    Team(const Team&) = delete;
    Team& operator=(const Team&) = delete;
    ~Team() {
        {
            std::lock_guard<std::mutex> lk(m_);
            stop_ = true;
        }
        start_.notify_all();
        for (std::thread& x : helpers_) x.join();
    }

    void run(const std::function<void(unsigned)>& fn) {
        {
            std::lock_guard<std::mutex> lk(m_);
            job_ = &fn;
            busy_ = static_cast<unsigned>(helpers_.size());
            ++generation_;
        }
        start_.notify_all();
        fn(0u);
        std::unique_lock<std::mutex> lk(m_);
        done_.wait(lk, [this] { return busy_ == 0; });
        job_ = nullptr;
    }

  private:
    void loop(unsigned t) {
        uint64_t seen = 0;
        for (;;) {
            const std::function<void(unsigned)>* job;
            {
                std::unique_lock<std::mutex> lk(m_);
                start_.wait(lk, [&] { return stop_ || generation_ != seen; });
                if (stop_) return;
                seen = generation_;
                job = job_;
            }
            (*job)(t);
            std::lock_guard<std::mutex> lk(m_);
            if (--busy_ == 0) done_.notify_one();
        }
    }

    std::vector<std::thread> helpers_;
    std::mutex m_;
    std::condition_variable start_, done_;
    const std::function<void(unsigned)>* job_ = nullptr;
    uint64_t generation_ = 0;
    unsigned busy_ = 0;
    bool stop_ = false;
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
        size_t blob = 0;
        for (const Feature& f : spec_) {
            feat_row_.push_back(f.kind == Kind::Sizes || f.kind == Kind::Port ? 4u
                                : f.kind == Kind::Iat                          ? 8u
                                                                               : f.l);
            blob += 4 + feat_row_.back();
        }
        max_blob_ = blob;
        for (Worker& w : workers_) w.log.init(max_blob_);
        counts_.assign(size_t{threads} * threads, 0);
        bucket_.assign(size_t{threads} * 2, 0);
    }

    Result<void> push(const Batch& b) override {
        const size_t n = b.size();
        if (n == 0) return {};
        if (auto v = check_batch(b, next_index_); !v) return v;
        next_index_ = b.first_index + n;
        const unsigned T = static_cast<unsigned>(workers_.size());
        if (slots_.size() < n) slots_.resize(n);

        if (T <= 1 || n < kSerialBatch) {
            // Two passes: the parse loop alone keeps more frames' loads in
            // flight. A small batch is not worth waking the helpers (three
            // phases, two barriers): this thread hands each packet to its
            // owner's flows itself, in order, so the bytes stay the same.
            for (size_t i = 0; i < n; ++i) parse_one(b, i, slots_[i]);
            for (size_t i = 0; i < n; ++i) {
                ParsedSlot& s = slots_[i];
                if (s.ok) flow_packet(workers_[T <= 1 ? 0 : s.hash % T], b, i, s);
            }
            return {};
        }

        if (order_.size() < n) order_.resize(n);
        std::barrier sync(static_cast<std::ptrdiff_t>(T));
        run_parallel(T, [&](unsigned t) {
            const size_t lo = n * t / T, hi = n * (t + 1) / T;
            uint32_t* cnt = counts_.data() + size_t{t} * T;  // row t: range t's count per owner
            std::fill(cnt, cnt + T, 0u);
            for (size_t i = lo; i < hi; ++i) {
                ParsedSlot& s = slots_[i];
                parse_one(b, i, s);
                if (s.ok) cnt[s.hash % T]++;
            }
            sync.arrive_and_wait();
            // Start of (owner o, range t) = Σ counts of all ranges for owners < o
            // + Σ counts of ranges < t for owner o.
            std::vector<size_t> pos(T);
            size_t acc = 0;
            for (unsigned o = 0; o < T; ++o) {
                if (o == t) bucket_lo(t) = acc;
                for (unsigned r = 0; r < T; ++r) {
                    if (r == t) pos[o] = acc;
                    acc += counts_[size_t{r} * T + o];
                }
                if (o == t) bucket_hi(t) = acc;
            }
            uint32_t* ord = order_.data();
            for (size_t i = lo; i < hi; ++i) {
                const ParsedSlot& s = slots_[i];
                if (s.ok) ord[pos[s.hash % T]++] = static_cast<uint32_t>(i);
            }
            sync.arrive_and_wait();
            Worker& w = workers_[t];
            const size_t blo = bucket_lo(t), bhi = bucket_hi(t);
            for (size_t q = blo; q < bhi; ++q) {
                const uint32_t i = ord[q];
                if (q + 4 < bhi) __builtin_prefetch(&slots_[ord[q + 4]]);
                flow_packet(w, b, i, slots_[i]);
            }
        });
        return {};
    }

    Result<Output> finish() override {
        const unsigned T = static_cast<unsigned>(workers_.size());
        size_t total = 0;
        for (const Worker& w : workers_) total += w.flows.size();
        // A small input is not worth waking the helpers for (also the empty
        // one that the CLI's reuse of an extractor discards).
        const unsigned TF = total < kSerialFlows ? 1u : T;
        // Per thread: its flows with ≥ 1 selected packet and their first
        // packet's index, in creation order, which is that index's order.
        std::vector<std::vector<uint32_t>> sel(T);
        std::vector<std::vector<uint64_t>> first(T);
        for_each_worker(TF, [&](unsigned t) {
            const Worker& w = workers_[t];
            for (size_t fi = 0; fi < w.flows.size(); ++fi) {
                if (w.flows[fi].row.selected == 0) continue;
                const uint64_t x = w.flows[fi].row.first_index;
                assert(first[t].empty() || x > first[t].back());  // push() makes flows in packet order
                sel[t].push_back(static_cast<uint32_t>(fi));
                first[t].push_back(x);
            }
        });
        size_t R = 0;
        for (const auto& v : sel) R += v.size();
        Output out;
        out.spec = spec_;
        out.rows.resize(R);
        out.tensors.resize(spec_.size());
        for (size_t f = 0; f < spec_.size(); ++f) out.tensors[f].resize(R * spec_[f].row_bytes());
        for_each_worker(TF, [&](unsigned t) {
            Worker& w = workers_[t];
            // Row of own flow k = k + the other threads' flows that start
            // earlier: one merge walk per other thread.
            std::vector<uint32_t> row_of(w.flows.size(), 0);
            std::vector<size_t> at(T, 0);
            for (size_t k = 0; k < sel[t].size(); ++k) {
                const uint64_t x = first[t][k];
                size_t r = k;
                for (unsigned u = 0; u < T; ++u) {
                    if (u == t) continue;
                    const std::vector<uint64_t>& fu = first[u];
                    size_t& a = at[u];
                    while (a < fu.size() && fu[a] < x) ++a;
                    r += a;
                }
                row_of[sel[t][k]] = static_cast<uint32_t>(r);
                out.rows[r] = w.flows[sel[t][k]].row;
            }
            const size_t F = spec_.size();
            for (const Rec& rc : w.recs) {
                const size_t r = row_of[rc.flow];
                const uint8_t* q = rc.blob;
                for (size_t f = 0; f < F; ++f) {
                    if (rc.j >= spec_[f].h) continue;
                    uint32_t len;
                    std::memcpy(&len, q, 4);
                    q += 4;
                    const size_t rb = spec_[f].row_bytes();
                    std::memcpy(out.tensors[f].data() + r * rb + size_t{rc.j} * feat_row_[f], q, len);
                    q += len;
                }
            }
            w.clear();
        });
        next_index_ = 0;  // the next push starts a new input (as the GPU extractor)
        return out;
    }

    const char* name() const override { return "cpu"; }

  private:
    size_t& bucket_lo(unsigned t) { return bucket_[2 * t]; }
    size_t& bucket_hi(unsigned t) { return bucket_[2 * t + 1]; }

    // fn(t) for every worker t: on T threads (T = the workers) or, with
    // T = 1, one after the other on this one.
    template <class F>
    void for_each_worker(unsigned T, F&& fn) {
        if (T <= 1) {
            for (unsigned t = 0; t < workers_.size(); ++t) fn(t);
            return;
        }
        run_parallel(T, fn);
    }

    template <class F>
    void run_parallel(unsigned T, F&& fn) {
        if (T <= 1) {
            fn(0u);
            return;
        }
        if (!team_) team_ = std::make_unique<Team>(T);
        team_->run(std::function<void(unsigned)>(std::ref(fn)));
    }

    static void parse_one(const Batch& b, size_t i, ParsedSlot& s) {
        const uint8_t* p = b.bytes.data() + b.offsets[i];
        const auto caplen = static_cast<uint32_t>(b.offsets[i + 1] - b.offsets[i]);
        s.ok = pp::parse(p, caplen, &s.pk);
        if (s.ok) s.hash = fast_hash(s.pk.key);
    }

    void flow_packet(Worker& w, const Batch& b, size_t i, const ParsedSlot& s) {
        bool fresh;
        Slot* slot = w.find(s.hash, s.pk.key, &fresh);
        if (!fresh && (slot->idx & kDone)) return;
        if (fresh) {
            slot->hash = s.hash;
            slot->idx = static_cast<uint32_t>(w.flows.size());
            FlowState& nf = w.flows.emplace_back();
            nf.row.key = s.pk.key;
            nf.row.initiator_is_a = s.pk.from_a;
            nf.row.first_index = b.first_index + i;
            nf.row.first_ns = b.ts_ns[i];
        }
        FlowState& st = w.flows[slot->idx];
        st.row.packets++;
        if (s.pk.payload_len == 0) return;
        const uint32_t j = st.row.selected++;
        const uint8_t* p = b.bytes.data() + b.offsets[i];
        const auto caplen = static_cast<uint32_t>(b.offsets[i + 1] - b.offsets[i]);
        const uint64_t ts = b.ts_ns[i];
        uint8_t* const blob = w.log.reserve(max_blob_);
        uint8_t* q = blob;
        for (size_t f = 0; f < spec_.size(); ++f) {
            const Feature& ft = spec_[f];
            if (j >= ft.h) continue;
            uint32_t len = 0;
            uint8_t* dst = q + 4;
            switch (ft.kind) {
            case Kind::Payload:
                // pp::fill_payload's copied prefix (the zero padding is implicit).
                len = std::min(std::min(ft.l, s.pk.payload_len), caplen - s.pk.payload_off);
                std::memcpy(dst, p + s.pk.payload_off, len);
                break;
            case Kind::Packet: {
                // pp::fill_packet's copied prefix with addresses/ports zeroed.
                len = std::min(std::min(ft.l, s.pk.ip_len), caplen - s.pk.ip_off);
                std::memcpy(dst, p + s.pk.ip_off, len);
                const uint32_t a0 = s.pk.key.family == 4 ? 12u : 8u;
                const uint32_t a1 = s.pk.key.family == 4 ? 20u : 40u;
                for (uint32_t k = a0; k < a1 && k < len; ++k) dst[k] = 0;
                if (s.pk.has_ports) {
                    const uint32_t l4 = s.pk.l4_off - s.pk.ip_off;
                    for (uint32_t k = l4; k < l4 + 4 && k < len; ++k) dst[k] = 0;
                }
                break;
            }
            case Kind::Sizes: {
                const int32_t v = pp::signed_size(s.pk, st.row.initiator_is_a);
                std::memcpy(dst, &v, 4);
                len = 4;
                break;
            }
            case Kind::Iat: {
                const int64_t v = j == 0 ? 0 : pp::iat_us(ts, st.last_sel_ns);
                std::memcpy(dst, &v, 8);
                len = 8;
                break;
            }
            case Kind::Port: {
                const int32_t v = pp::port_code(s.pk);
                std::memcpy(dst, &v, 4);
                len = 4;
                break;
            }
            }
            std::memcpy(q, &len, 4);
            q += 4 + len;
        }
        w.log.commit(static_cast<size_t>(q - blob));
        w.recs.push_back(Rec{slot->idx, j, blob});
        st.last_sel_ns = ts;
        if (st.row.selected == h_) slot->idx |= kDone;
    }

    std::vector<Feature> spec_;
    uint32_t h_;
    std::vector<size_t> feat_off_;
    size_t flow_bytes_ = 0;
    std::vector<uint32_t> feat_row_;  // bytes of one packet's row per feature
    size_t max_blob_ = 0;
    std::vector<Worker> workers_;
    std::vector<ParsedSlot> slots_;
    std::vector<uint32_t> order_;
    std::vector<uint32_t> counts_;
    std::vector<size_t> bucket_;
    uint64_t next_index_ = 0;
    std::unique_ptr<Team> team_;  // started at the first parallel phase
};

}  // namespace

std::unique_ptr<Extractor> make_cpu_extractor(const std::vector<Feature>& spec,
                                              const CpuOptions& opts) {
    unsigned t = opts.threads;
    if (t == 0) t = std::max(1u, std::thread::hardware_concurrency());
    return std::make_unique<CpuExtractor>(spec, t);
}

}  // namespace etcpipe::features
