#include "flowmgr/flow_assembler.hpp"

#include <algorithm>
#include <cstring>

namespace etcpipe::live {

void Assembler::add(const etc_meta& m, std::span<const uint8_t> frame, uint64_t now) {
    if (m.index >= h_) {
        st_.beyond_h++;
        return;
    }
    auto it = pending_.find(m.flow_id);
    if (it == pending_.end()) {
        if (pending_.size() >= max_pending_) {
            st_.pending_full++;
            return;
        }
        it = pending_.emplace(m.flow_id, PendingFlow{}).first;
        it->second.flow_id = m.flow_id;
        it->second.pkts.reserve(h_);
    }
    PendingFlow& f = it->second;
    st_.accepted++;
    f.last_seen_ns = now;
    f.pkts.push_back(PendingPkt{m.index, m.ts_ns, static_cast<uint32_t>(f.bytes.size()),
                                static_cast<uint32_t>(frame.size())});
    f.bytes.insert(f.bytes.end(), frame.begin(), frame.end());
    if (f.pkts.size() >= h_) {
        ready_.push_back(Ready{std::move(f), now, 1});
        ready_packets_ += h_;
        pending_.erase(it);
    }
}

void Assembler::expire(uint64_t now, uint64_t timeout_ns, bool all) {
    for (auto it = pending_.begin(); it != pending_.end();) {
        if (all || now - it->second.last_seen_ns >= timeout_ns) {
            ready_packets_ += it->second.pkts.size();
            ready_.push_back(Ready{std::move(it->second), now, 0});
            it = pending_.erase(it);
        } else {
            ++it;
        }
    }
}

void Assembler::take(features::Batch& batch, std::vector<uint64_t>& ids, std::vector<uint8_t>& complete) {
    for (Ready& r : ready_) {
        std::sort(r.flow.pkts.begin(), r.flow.pkts.end(),
                  [](const PendingPkt& a, const PendingPkt& b) { return a.index < b.index; });
        for (const PendingPkt& p : r.flow.pkts)
            batch.add({r.flow.bytes.data() + p.off, p.len}, p.ts_ns);
        ids.push_back(r.flow.flow_id);
        complete.push_back(r.complete);
    }
    ready_.clear();
    ready_packets_ = 0;
}

int on_ring_record(void* ctx, void* data, size_t size) {
    auto* c = static_cast<RingCtx*>(ctx);
    c->st->ring_rx++;
    if (size < sizeof(etc_ring_hdr)) {
        c->st->no_meta++;
        return 0;
    }
    etc_ring_hdr h;
    std::memcpy(&h, data, sizeof h);
    if (h.meta.magic != ETC_META_MAGIC || sizeof(etc_ring_hdr) + h.cap_len > size) {
        c->st->no_meta++;
        return 0;
    }
    c->asm_->add(h.meta, {static_cast<const uint8_t*>(data) + sizeof(etc_ring_hdr), h.cap_len}, c->now);
    return 0;
}

}  // namespace etcpipe::live
