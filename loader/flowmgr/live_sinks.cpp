#include "flowmgr/live_sinks.hpp"

#include "common/json_text.hpp"

#include <arpa/inet.h>
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <utility>

namespace etcpipe::live {

size_t Predictions::best(size_t r) const {
    const size_t nc = classes->size();
    return static_cast<size_t>(std::max_element(probs.begin() + static_cast<long>(r * nc),
                                                probs.begin() + static_cast<long>((r + 1) * nc)) -
                               (probs.begin() + static_cast<long>(r * nc)));
}

namespace {

std::string addr_text(const uint8_t* a, uint8_t family) {
    char buf[INET6_ADDRSTRLEN] = {};
    if (!inet_ntop(family == 6 ? AF_INET6 : AF_INET, a, buf, sizeof buf)) return "?";
    return buf;
}

// The flow's id, 5-tuple (initiator first), VLANs, start, packet count.
void append_flow(std::string& s, const features::FlowRow& row, uint64_t id, bool complete) {
    const etc_flow_key& k = row.key;
    const bool a = row.initiator_is_a != 0;
    s += "{\"flow_id\":" + std::to_string(id);
    const char* pn = k.proto == 6 ? "tcp" : k.proto == 17 ? "udp" : k.proto == 1 ? "icmp"
                   : k.proto == 58 ? "icmp6" : nullptr;
    s += ",\"proto\":" + (pn ? "\"" + std::string(pn) + "\"" : std::to_string(k.proto));
    s += ",\"src\":\"" + addr_text(a ? k.addr_a : k.addr_b, k.family) + "\"";
    s += ",\"sport\":" + std::to_string(a ? k.port_a : k.port_b);
    s += ",\"dst\":\"" + addr_text(a ? k.addr_b : k.addr_a, k.family) + "\"";
    s += ",\"dport\":" + std::to_string(a ? k.port_b : k.port_a);
    s += ",\"vlan\":[" + std::to_string(k.vlan[0]) + "," + std::to_string(k.vlan[1]) + "]";
    s += ",\"first_ns\":" + std::to_string(row.first_ns);
    s += ",\"packets\":" + std::to_string(row.selected);
    s += std::string(",\"complete\":") + (complete ? "true" : "false");
}


// The model's class for row r, its probability, and every class's.
void append_prediction(std::string& s, const Predictions& pred, size_t r) {
    const size_t nc = pred.classes->size(), b = pred.best(r);
    s += ",\"class\":" + json::string((*pred.classes)[b]) +
         ",\"probability\":" + json::probability(pred.probs[r * nc + b]) + ",\"probabilities\":{";
    for (size_t c = 0; c < nc; ++c)
        s += (c ? "," : "") + json::string((*pred.classes)[c]) + ":" + json::probability(pred.probs[r * nc + c]);
    s += '}';
}

// One feature of a row: payload/packet rows as hex, one string per packet.
void append_feature(std::string& s, const features::Feature& ft, const uint8_t* base) {
    static constexpr char kHex[] = "0123456789abcdef";
    s += ",\"" + ft.name() + "\":[";
    for (uint32_t j = 0; j < ft.h; ++j) {
        if (j) s += ',';
        if (ft.kind == features::Kind::Payload || ft.kind == features::Kind::Packet) {
            s += '"';
            const uint8_t* p = base + size_t{j} * ft.l;
            for (uint32_t i = 0; i < ft.l; ++i) {
                s += kHex[p[i] >> 4];
                s += kHex[p[i] & 15];
            }
            s += '"';
        } else if (ft.kind == features::Kind::Sizes || ft.kind == features::Kind::Port) {
            int32_t v;
            std::memcpy(&v, base + size_t{j} * 4, 4);
            s += std::to_string(v);
        } else {
            int64_t v;
            std::memcpy(&v, base + size_t{j} * 8, 8);
            s += std::to_string(v);
        }
    }
    s += ']';
}

// One JSON object per flow.
class JsonlSink final : public Sink {
  public:
    Result<void> write(const features::Output& out, const std::vector<uint64_t>& ids,
                       const std::vector<uint8_t>& complete, const Predictions& pred) override {
        std::string s;
        for (size_t r = 0; r < out.rows.size(); ++r) {
            append_flow(s, out.rows[r], r < ids.size() ? ids[r] : 0, r < complete.size() && complete[r]);
            if (!pred.empty()) append_prediction(s, pred, r);
            for (size_t f = 0; f < out.spec.size(); ++f)
                append_feature(s, out.spec[f], out.tensors[f].data() + r * out.spec[f].row_bytes());
            s += "}\n";
        }
        if (std::fwrite(s.data(), 1, s.size(), stdout) != s.size() || std::fflush(stdout))
            return make_error(ErrorKind::Io, errno ? errno : EIO, "stdout", "write JSON Lines");
        return {};
    }
};

// Rolling parts: DIR/part-000000/{<feature>.npy…, flows.csv}, each with up
// to `rotate` flows, written when full and at the end.
class NpySink final : public Sink {
  public:
    NpySink(std::string dir, uint32_t rotate) : dir_(std::move(dir)), rotate_(rotate) {}

    Result<void> write(const features::Output& out, const std::vector<uint64_t>&,
                       const std::vector<uint8_t>&, const Predictions& pred) override {
        if (!pred.empty()) classes_ = pred.classes;
        if (acc_.spec.empty()) {
            acc_.spec = out.spec;
            acc_.tensors.resize(out.spec.size());
        }
        for (size_t r = 0; r < out.rows.size(); ++r) {
            acc_.rows.push_back(out.rows[r]);
            if (!pred.empty()) {
                const size_t b = pred.best(r);
                pred_.emplace_back(static_cast<uint32_t>(b), pred.probs[r * pred.classes->size() + b]);
            }
            for (size_t f = 0; f < out.spec.size(); ++f) {
                const size_t rb = out.spec[f].row_bytes();
                const uint8_t* p = out.tensors[f].data() + r * rb;
                acc_.tensors[f].insert(acc_.tensors[f].end(), p, p + rb);
            }
            if (acc_.rows.size() >= rotate_)
                if (auto w = flush(); !w) return w.error();
        }
        return {};
    }

    Result<void> close() override { return acc_.rows.empty() && part_ > 0 ? Result<void>{} : flush(); }

  private:
    Result<void> flush() {
        char name[32];
        std::snprintf(name, sizeof name, "/part-%06u", part_++);
        const std::string d = dir_ + name;
        if (mkdir(d.c_str(), 0755) && errno != EEXIST)
            return make_error(ErrorKind::Io, errno, d, "create output part");
        if (acc_.spec.empty()) return {};
        for (size_t f = 0; f < acc_.spec.size(); ++f)
            if (auto r = features::write_npy(d + "/" + acc_.spec[f].name() + ".npy", acc_.spec[f],
                                             acc_.tensors[f], acc_.rows.size());
                !r)
                return r.error();
        if (auto r = features::write_flows_csv(d + "/flows.csv", acc_); !r) return r.error();
        if (classes_)
            if (auto r = write_predictions(d + "/predictions.csv"); !r) return r.error();
        pred_.clear();
        acc_.rows.clear();
        for (auto& t : acc_.tensors) t.clear();
        return {};
    }

    // One line per row of flows.csv: the model's class and its probability.
    Result<void> write_predictions(const std::string& path) const {
        std::ofstream p(path, std::ios::trunc);
        p << "row,class,probability\n";
        for (size_t r = 0; r < pred_.size(); ++r)
            p << r << ',' << (*classes_)[pred_[r].first] << ',' << pred_[r].second << '\n';
        p.close();
        if (!p) return make_error(ErrorKind::Io, errno ? errno : EIO, path, "write");
        return {};
    }

    std::string dir_;
    uint32_t rotate_;
    uint32_t part_ = 0;
    features::Output acc_;
    const std::vector<std::string>* classes_ = nullptr;
    std::vector<std::pair<uint32_t, float>> pred_;
};

}  // namespace

std::unique_ptr<Sink> make_sink(const std::string& output, uint32_t rotate_flows) {
    if (output == "-") return std::make_unique<JsonlSink>();
    return std::make_unique<NpySink>(output, rotate_flows);
}

}  // namespace etcpipe::live
