// ONNX → Model: parses the protobuf (libonnx_proto), checks the model
// contract of infer.hpp, infers shapes with a symbolic batch, folds
// BatchNormalization into the Conv/Gemm before it and fuses ReLU into it.
// The file is untrusted: every size taken from it is computed with checked
// arithmetic and held to the limits of infer.hpp before anything is
// allocated or indexed with it.
#include <onnx/onnx_pb.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <map>
#include <new>
#include <optional>
#include <set>
#include <stdexcept>

#include "infer.hpp"

namespace etcpipe::infer {

int64_t Shape::per_flow_elems() const {
    int64_t n = per_flow;
    for (int64_t d : dims) n *= d;
    return n;
}

std::string Shape::str() const {
    std::string s = per_flow == 1 ? "[N" : "[N*" + std::to_string(per_flow);
    for (int64_t d : dims) s += ", " + std::to_string(d);
    return s + "]";
}

int64_t Model::max_value_elems() const {
    int64_t m = 0;
    for (const Value& v : values) m = std::max(m, v.shape.per_flow_elems());
    return m;
}

int64_t Model::scratch_elems() const {
    int64_t sum = 0, conv = 0;
    for (const Value& v : values) sum += v.shape.per_flow_elems();
    for (const Op& op : ops)
        if (op.kind == OpKind::Conv1d) {
            const Shape& in = values[static_cast<size_t>(op.in[0])].shape;
            const Shape& out = values[static_cast<size_t>(op.out)].shape;
            conv = std::max(conv, in.per_flow * out.dims[1] * (op.cin * op.kernel + op.cout));
        }
    return sum + conv;
}

namespace {

constexpr const char* kSupported =
    "Conv (1-D), Gemm, MatMul, Add, Relu, MaxPool, GlobalMaxPool, BatchNormalization, "
    "Reshape, Flatten, Identity, Dropout, Concat, Softmax, Constant";

struct Tensor {  // a constant: initializer or Constant node
    std::vector<int64_t> dims;
    std::vector<float> f;
    std::vector<int64_t> i;
    bool is_int = false;
};

// a × b for sizes read from the file: nullopt if either is negative or the
// product overflows.
std::optional<int64_t> checked_mul(int64_t a, int64_t b) {
    int64_t r = 0;
    if (a < 0 || b < 0 || __builtin_mul_overflow(a, b, &r)) return std::nullopt;
    return r;
}

// s with control characters as \xNN, cut after 1000 characters.
std::string printable(const std::string& s) {
    constexpr size_t kMax = 1000;
    std::string o;
    size_t i = 0;
    for (; i < s.size() && o.size() < kMax; ++i) {
        const auto c = static_cast<unsigned char>(s[i]);
        if (c < 0x20 || c == 0x7f) {
            static constexpr char kHex[] = "0123456789abcdef";
            o += "\\x";
            o += kHex[c >> 4];
            o += kHex[c & 15];
        } else {
            o += s[i];
        }
    }
    if (i < s.size()) o += "... (" + std::to_string(s.size()) + " bytes)";
    return o;
}

// Index of the first NaN/Inf in v, or v.size().
size_t first_non_finite(const std::vector<float>& v) {
    for (size_t i = 0; i < v.size(); ++i)
        if (!std::isfinite(v[i])) return i;
    return v.size();
}

class Builder {
  public:
    explicit Builder(std::string subject) : subject_(std::move(subject)) {}

    // Names in messages come from the file: printable() keeps a hostile
    // one from writing control characters (or megabytes) to the terminal.
    Error err(const std::string& op, const std::string& detail, const std::string& hint = {}) const {
        return make_error(ErrorKind::Data, 0, subject_, printable(op), printable(detail), hint);
    }

    Result<Model> build(const onnx::ModelProto& m);

  private:
    Result<Tensor> to_tensor(const onnx::TensorProto& t, const std::string& label) const;
    Result<void> node(const onnx::NodeProto& n, size_t index);
    Result<int> value_of(const std::string& name, const std::string& where) const;
    Result<int> add_value(const std::string& name, Shape shape, const std::string& where);
    Result<void> hold(size_t floats, const std::string& where);
    Result<int64_t> window(const onnx::NodeProto& n, const std::string& where, Op& op, int64_t len,
                           bool pool) const;
    const Tensor* constant(const std::string& name) const {
        auto it = consts_.find(name);
        return it == consts_.end() ? nullptr : &it->second;
    }
    Result<void> fold_batchnorm(const onnx::NodeProto& n, const std::string& where);

    std::string subject_;
    Model model_;
    std::map<std::string, int> ids_;
    std::map<std::string, Tensor> consts_;
    std::map<std::string, int> consumers_;
    std::set<std::string> graph_outputs_;
    int64_t value_elems_ = 0;  // Σ per-flow elements of model_.values
    int64_t conv_elems_ = 0;   // largest im2col + GEMM result of a Conv, per flow
    int64_t held_ = 0;         // floats copied into ops (weights, biases, constants)
};

const onnx::AttributeProto* attr(const onnx::NodeProto& n, const char* name) {
    for (const auto& a : n.attribute())
        if (a.name() == name) return &a;
    return nullptr;
}
int64_t attr_i(const onnx::NodeProto& n, const char* name, int64_t def) {
    const auto* a = attr(n, name);
    return a ? a->i() : def;
}
float attr_f(const onnx::NodeProto& n, const char* name, float def) {
    const auto* a = attr(n, name);
    return a ? a->f() : def;
}
std::vector<int64_t> attr_ints(const onnx::NodeProto& n, const char* name) {
    const auto* a = attr(n, name);
    if (!a) return {};
    return {a->ints().begin(), a->ints().end()};
}

std::string dims_str(const std::vector<int64_t>& d) {
    std::string s = "[";
    for (size_t i = 0; i < d.size(); ++i) s += (i ? ", " : "") + std::to_string(d[i]);
    return s + "]";
}

// Parses a JSON array of strings (what train.py writes); nullopt if it is not one.
std::optional<std::vector<std::string>> parse_string_list(const std::string& s) {
    std::vector<std::string> out;
    size_t i = 0;
    auto ws = [&] { while (i < s.size() && std::isspace(static_cast<unsigned char>(s[i]))) ++i; };
    ws();
    if (i >= s.size() || s[i++] != '[') return std::nullopt;
    ws();
    if (i < s.size() && s[i] == ']') return out;
    for (;;) {
        ws();
        if (i >= s.size() || s[i++] != '"') return std::nullopt;
        std::string item;
        while (i < s.size() && s[i] != '"') {
            if (s[i] == '\\' && i + 1 < s.size()) ++i;
            item += s[i++];
        }
        if (i >= s.size()) return std::nullopt;
        ++i;
        out.push_back(item);
        ws();
        if (i < s.size() && s[i] == ',') { ++i; continue; }
        if (i < s.size() && s[i] == ']') { ++i; break; }
        return std::nullopt;
    }
    ws();
    if (i != s.size()) return std::nullopt;
    return out;
}

}  // namespace

// An initializer or Constant value, `label` naming it. The declared shape
// must match the data exactly (raw_data bytes or the typed field's count).
Result<Tensor> Builder::to_tensor(const onnx::TensorProto& t, const std::string& label) const {
    const std::string where = "constant '" + label + "'";
    Tensor out;
    out.dims.assign(t.dims().begin(), t.dims().end());
    int64_t n = 1;
    for (int64_t d : out.dims) {
        if (d < 0) return err(where, "negative dimension in shape " + dims_str(out.dims));
        const auto p = checked_mul(n, d);
        if (!p || *p > kMaxParameters)
            return err(where, "shape " + dims_str(out.dims) + " holds more than " +
                                  std::to_string(kMaxParameters) + " elements (kMaxParameters)");
        n = *p;
    }
    if (t.data_location() == onnx::TensorProto::EXTERNAL)
        return err(where, "external data is not supported", "save the model with all tensors inside the file");
    const std::string& raw = t.raw_data();
    const auto count = static_cast<size_t>(n);
    if (t.data_type() == onnx::TensorProto::FLOAT) {
        if (!raw.empty()) {
            if (raw.size() != count * 4)
                return err(where, "raw data holds " + std::to_string(raw.size()) + " bytes, shape " +
                                      dims_str(out.dims) + " needs " + std::to_string(count * 4));
            out.f.resize(count);
            std::memcpy(out.f.data(), raw.data(), raw.size());
        } else {
            if (static_cast<size_t>(t.float_data_size()) != count)
                return err(where, "holds " + std::to_string(t.float_data_size()) + " values, shape " +
                                      dims_str(out.dims) + " needs " + std::to_string(count));
            out.f.assign(t.float_data().begin(), t.float_data().end());
        }
        if (const size_t bad = first_non_finite(out.f); bad < out.f.size())
            return err(where, "element " + std::to_string(bad) + " is " +
                                  (std::isnan(out.f[bad]) ? "NaN" : "infinite"),
                       "weights must be finite; re-export a model trained without divergence");
    } else if (t.data_type() == onnx::TensorProto::INT64) {
        out.is_int = true;
        if (!raw.empty()) {
            if (raw.size() != count * 8)
                return err(where, "raw data holds " + std::to_string(raw.size()) + " bytes, shape " +
                                      dims_str(out.dims) + " needs " + std::to_string(count * 8));
            out.i.resize(count);
            std::memcpy(out.i.data(), raw.data(), raw.size());
        } else {
            if (static_cast<size_t>(t.int64_data_size()) != count)
                return err(where, "holds " + std::to_string(t.int64_data_size()) + " values, shape " +
                                      dims_str(out.dims) + " needs " + std::to_string(count));
            out.i.assign(t.int64_data().begin(), t.int64_data().end());
        }
    } else {
        return err(where, "element type " + std::to_string(t.data_type()) + " is not float32 or int64");
    }
    return out;
}

// A new tensor of the graph: every dimension ≥ 1, at most kMaxValueElems
// elements per flow, and all of them together within kMaxScratchElems.
Result<int> Builder::add_value(const std::string& name, Shape shape, const std::string& where) {
    std::optional<int64_t> n = shape.per_flow;
    for (int64_t d : shape.dims) {
        if (d < 1) return err(where, "output shape " + shape.str() + " has a dimension < 1");
        if (n) n = checked_mul(*n, d);
        if (n && *n > kMaxValueElems) n.reset();
    }
    if (shape.per_flow < 1 || !n)
        return err(where, "output shape " + shape.str() + " has more than " + std::to_string(kMaxValueElems) +
                              " elements per flow (kMaxValueElems)");
    value_elems_ += *n;  // both terms ≤ kMaxScratchElems: no overflow
    if (value_elems_ + conv_elems_ > kMaxScratchElems)
        return err(where, "the model's tensors need more than " + std::to_string(kMaxScratchElems) +
                              " floats per flow (kMaxScratchElems)");
    model_.values.push_back({name, std::move(shape)});
    ids_[name] = static_cast<int>(model_.values.size() - 1);
    return ids_[name];
}

// Counts floats an op is about to copy against kMaxParameters, before the copy.
Result<void> Builder::hold(size_t floats, const std::string& where) {
    if (floats > static_cast<size_t>(kMaxParameters) || held_ + static_cast<int64_t>(floats) > kMaxParameters)
        return err(where, "the model's weights exceed " + std::to_string(kMaxParameters) +
                              " floats (kMaxParameters)");
    held_ += static_cast<int64_t>(floats);
    return {};
}

// strides/pads of a 1-D Conv or MaxPool window of op.kernel over `len`
// positions: checked, stored in op; returns the output length (≥ 1).
Result<int64_t> Builder::window(const onnx::NodeProto& n, const std::string& where, Op& op, int64_t len,
                                bool pool) const {
    const auto strides = attr_ints(n, "strides");
    const auto pads = attr_ints(n, "pads");
    if (strides.size() > 1) return err(where, "expected 1 stride for a 1-D window, got " + dims_str(strides));
    if (!pads.empty() && pads.size() != 2)
        return err(where, "expected 2 pads for a 1-D window, got " + dims_str(pads));
    op.stride = strides.empty() ? 1 : strides[0];
    if (pads.size() == 2) {
        op.pad_begin = pads[0];
        op.pad_end = pads[1];
    }
    if (op.stride < 1) return err(where, "stride " + std::to_string(op.stride) + " must be at least 1");
    if (op.kernel < 1) return err(where, "kernel size " + std::to_string(op.kernel) + " must be at least 1");
    // Pooling pads stay below the kernel (no window of padding alone).
    const int64_t max_pad = pool ? std::min(op.kernel - 1, kMaxValueElems) : kMaxValueElems;
    if (op.pad_begin < 0 || op.pad_end < 0 || op.pad_begin > max_pad || op.pad_end > max_pad)
        return err(where, "pads " + dims_str({op.pad_begin, op.pad_end}) + " must be 0.." +
                              std::to_string(max_pad) + (pool ? " (less than the kernel)" : ""));
    const int64_t padded = len + op.pad_begin + op.pad_end;  // ≤ 3 · kMaxValueElems
    if (op.kernel > padded)
        return err(where, "kernel size " + std::to_string(op.kernel) + " is longer than the padded input (" +
                              std::to_string(padded) + " positions)");
    return (padded - op.kernel) / op.stride + 1;
}

Result<int> Builder::value_of(const std::string& name, const std::string& where) const {
    auto it = ids_.find(name);
    if (it == ids_.end())
        return err(where, "'" + name + "' is not produced by any earlier node "
                          "nor a graph input (graph not topologically sorted?)");
    return it->second;
}

Result<void> Builder::fold_batchnorm(const onnx::NodeProto& n, const std::string& where) {
    if (n.input_size() < 5) return err(where, "BatchNormalization needs 5 inputs");
    const Tensor* p[4];
    for (int k = 0; k < 4; ++k) {
        p[k] = constant(n.input(k + 1));
        if (!p[k] || p[k]->is_int) return err(where, "BatchNormalization parameters must be float constants");
    }
    auto x = value_of(n.input(0), where);
    if (!x) return x.error();
    Op* prod = nullptr;
    for (Op& o : model_.ops)
        if (o.out == *x) prod = &o;
    if (!prod || (prod->kind != OpKind::Conv1d && prod->kind != OpKind::Gemm) || prod->relu ||
        consumers_[n.input(0)] != 1 || graph_outputs_.count(n.input(0)))
        return err(where, "BatchNormalization can only be folded into the Conv or Gemm that "
                          "alone feeds it",
                   "export the model in eval mode with BatchNorm right after a Conv/Linear");
    const int64_t c = prod->cout;
    for (int k = 0; k < 4; ++k)
        if (static_cast<int64_t>(p[k]->f.size()) != c)
            return err(where, "BatchNormalization has " + std::to_string(p[k]->f.size()) +
                                  " channels, its input has " + std::to_string(c));
    // For Gemm the channel is the last dim: only 2-D inputs put it on axis 1.
    if (prod->kind == OpKind::Gemm && model_.values[*x].shape.dims.size() != 1)
        return err(where, "BatchNormalization after a Gemm on a tensor of rank > 2");
    const float eps = attr_f(n, "epsilon", 1e-5f);
    for (int64_t o = 0; o < c; ++o)
        if (!(static_cast<double>(p[3]->f[o]) + eps > 0))  // also NaN epsilon
            return err(where, "variance + epsilon of channel " + std::to_string(o) + " is " +
                                  std::to_string(static_cast<double>(p[3]->f[o]) + eps) + ", not positive");
    const int64_t per_out = static_cast<int64_t>(prod->weight.size()) / c;
    if (prod->bias.empty()) {
        if (auto h = hold(static_cast<size_t>(c), where); !h) return h.error();
        prod->bias.assign(static_cast<size_t>(c), 0.f);
    }
    for (int64_t o = 0; o < c; ++o) {
        const double scale = p[0]->f[o] / std::sqrt(static_cast<double>(p[3]->f[o]) + eps);
        for (int64_t j = 0; j < per_out; ++j)
            prod->weight[o * per_out + j] = static_cast<float>(prod->weight[o * per_out + j] * scale);
        prod->bias[o] = static_cast<float>((prod->bias[o] - p[2]->f[o]) * scale + p[1]->f[o]);
    }
    // The BatchNorm's output is the producer's output from now on.
    ids_[n.output(0)] = *x;
    return {};
}

// Long on purpose: one case per supported ONNX operator, each with its own
// attribute and shape checks, so the op set reads as one table.
Result<void> Builder::node(const onnx::NodeProto& n, size_t index) {
    const std::string name = n.name().empty() ? "#" + std::to_string(index) : n.name();
    const std::string where = "node '" + name + "' (" + n.op_type() + ")";
    const std::string& t = n.op_type();
    if (!n.domain().empty() && n.domain() != "ai.onnx")
        return err(where, "operator domain '" + n.domain() + "' is not supported",
                   std::string("supported: ") + kSupported);
    if (n.output_size() < 1) return err(where, "no output");

    if (t == "Constant") {
        const auto* v = attr(n, "value");
        if (!v || !v->has_t()) return err(where, "only the 'value' tensor form is supported");
        auto c = to_tensor(v->t(), n.output(0));
        if (!c) return c.error();
        consts_[n.output(0)] = std::move(*c);
        return {};
    }
    if (t == "BatchNormalization") return fold_batchnorm(n, where);
    // The exporter writes a weight shared by several layers once, and names
    // it again through Identity nodes: those outputs are the same constant.
    if (t == "Identity" && n.input_size() == 1 && consts_.count(n.input(0))) {
        consts_[n.output(0)] = consts_.at(n.input(0));
        return {};
    }

    Op op;
    op.node = name;
    auto input = [&](int k) -> Result<int> {
        if (k >= n.input_size() || n.input(k).empty()) return err(where, "missing input " + std::to_string(k));
        return value_of(n.input(k), where);
    };
    auto x = input(0);
    if (!x) return x.error();
    op.in = {*x};
    const Shape in = model_.values[*x].shape;
    Shape out = in;

    if (t == "Conv") {
        const Tensor* w = n.input_size() > 1 ? constant(n.input(1)) : nullptr;
        if (!w || w->is_int) return err(where, "weights must be a float constant");
        if (w->dims.size() != 3 || in.dims.size() != 2)
            return err(where, "only 1-D convolution is supported (input " + in.str() + ", weights " +
                                  dims_str(w->dims) + ")");
        if (attr_i(n, "group", 1) != 1) return err(where, "grouped convolution is not supported");
        for (int64_t d : attr_ints(n, "dilations"))
            if (d != 1) return err(where, "dilation " + std::to_string(d) + " is not supported");
        if (const auto* ap = attr(n, "auto_pad"); ap && ap->s() != "NOTSET")
            return err(where, "auto_pad " + ap->s() + " is not supported; use explicit pads");
        op.kind = OpKind::Conv1d;
        op.cout = w->dims[0];
        op.cin = w->dims[1];
        op.kernel = w->dims[2];
        if (op.cout < 1 || op.cin < 1 || op.kernel < 1)
            return err(where, "weights " + dims_str(w->dims) + " have a zero dimension");
        if (op.cin != in.dims[0])
            return err(where, "weights expect " + std::to_string(op.cin) + " input channels, input is " + in.str());
        if (const auto ks = attr_ints(n, "kernel_shape"); !ks.empty() && (ks.size() != 1 || ks[0] != op.kernel))
            return err(where, "kernel_shape " + dims_str(ks) + " disagrees with the weights " + dims_str(w->dims));
        auto lout = window(n, where, op, in.dims[1], false);
        if (!lout) return lout.error();
        // im2col matrix and GEMM result per flow: per_flow × Lout × (Cin·K + Cout)
        std::optional<int64_t> cols = checked_mul(in.per_flow, *lout);
        if (cols) cols = checked_mul(*cols, op.cin * op.kernel + op.cout);  // each factor ≤ kMaxParameters
        if (!cols || *cols > kMaxScratchElems - value_elems_)
            return err(where, "im2col of input " + in.str() + " needs more than " +
                                  std::to_string(kMaxScratchElems) + " floats per flow (kMaxScratchElems)");
        conv_elems_ = std::max(conv_elems_, *cols);
        const Tensor* b = nullptr;
        if (n.input_size() > 2 && !n.input(2).empty()) {
            b = constant(n.input(2));
            if (!b || b->is_int || static_cast<int64_t>(b->f.size()) != op.cout)
                return err(where, "bias must be a float constant of " + std::to_string(op.cout) + " values");
        }
        if (auto h = hold(w->f.size() + (b ? b->f.size() : 0), where); !h) return h.error();
        op.weight = w->f;
        if (b) op.bias = b->f;
        out.dims = {op.cout, *lout};
        model_.parameters += op.weight.size() + op.bias.size();
    } else if (t == "Gemm" || t == "MatMul") {
        const Tensor* b = n.input_size() > 1 ? constant(n.input(1)) : nullptr;
        if (!b || b->is_int || b->dims.size() != 2)
            return err(where, "the second operand must be a 2-D float constant (weights)");
        const bool trans_b = t == "Gemm" && attr_i(n, "transB", 0) != 0;
        if (t == "Gemm" && attr_i(n, "transA", 0) != 0) return err(where, "transA=1 is not supported");
        if (t == "Gemm" && in.dims.size() != 1) return err(where, "Gemm input must be 2-D, is " + in.str());
        if (in.dims.empty()) return err(where, "input has no feature dimension");
        const int64_t k = trans_b ? b->dims[1] : b->dims[0];
        const int64_t o = trans_b ? b->dims[0] : b->dims[1];
        if (k < 1 || o < 1) return err(where, "weights " + dims_str(b->dims) + " have a zero dimension");
        if (k != in.dims.back())
            return err(where, "weights " + dims_str(b->dims) + " do not match input " + in.str());
        const float alpha = t == "Gemm" ? attr_f(n, "alpha", 1.f) : 1.f;
        const float beta = t == "Gemm" ? attr_f(n, "beta", 1.f) : 1.f;
        if (!std::isfinite(alpha) || !std::isfinite(beta))
            return err(where, "alpha " + std::to_string(alpha) + " and beta " + std::to_string(beta) +
                                  " must be finite");
        op.kind = OpKind::Gemm;
        op.cin = k;
        op.cout = o;
        // b->f holds exactly k·o values (to_tensor), so k·o does not overflow.
        if (auto h = hold(b->f.size() + static_cast<size_t>(o), where); !h) return h.error();
        op.weight.resize(static_cast<size_t>(k * o));  // stored [Out, K]
        for (int64_t r = 0; r < o; ++r)
            for (int64_t c = 0; c < k; ++c)
                op.weight[r * k + c] = alpha * (trans_b ? b->f[r * k + c] : b->f[c * o + r]);
        if (t == "Gemm" && n.input_size() > 2 && !n.input(2).empty()) {
            const Tensor* c = constant(n.input(2));
            if (!c || c->is_int || (c->f.size() != 1 && static_cast<int64_t>(c->f.size()) != o))
                return err(where, "C must be a float constant of 1 or " + std::to_string(o) + " values");
            op.bias.resize(static_cast<size_t>(o));
            for (int64_t r = 0; r < o; ++r) op.bias[r] = beta * c->f[c->f.size() == 1 ? 0 : r];
        }
        out.dims.back() = o;
        model_.parameters += op.weight.size() + op.bias.size();
    } else if (t == "Relu") {
        op.kind = OpKind::Relu;
        // Fuse into the Conv/Gemm that alone feeds it.
        for (Op& p : model_.ops)
            if (p.out == *x && (p.kind == OpKind::Conv1d || p.kind == OpKind::Gemm) && !p.relu &&
                consumers_[n.input(0)] == 1 && !graph_outputs_.count(n.input(0))) {
                p.relu = true;
                ids_[n.output(0)] = *x;
                return {};
            }
    } else if (t == "MaxPool") {
        if (in.dims.size() != 2) return err(where, "only 1-D max pooling is supported (input " + in.str() + ")");
        const auto ks = attr_ints(n, "kernel_shape");
        if (ks.size() != 1) return err(where, "kernel_shape must have 1 value");
        if (attr_i(n, "ceil_mode", 0) != 0) return err(where, "ceil_mode=1 is not supported");
        for (int64_t d : attr_ints(n, "dilations"))
            if (d != 1) return err(where, "dilation is not supported");
        if (const auto* ap = attr(n, "auto_pad"); ap && ap->s() != "NOTSET")
            return err(where, "auto_pad " + ap->s() + " is not supported");
        if (n.output_size() > 1 && !n.output(1).empty()) return err(where, "the Indices output is not supported");
        op.kind = OpKind::MaxPool1d;
        op.kernel = ks[0];
        op.cout = in.dims[0];
        auto lout = window(n, where, op, in.dims[1], true);
        if (!lout) return lout.error();
        out.dims = {in.dims[0], *lout};
    } else if (t == "GlobalMaxPool") {
        if (in.dims.size() != 2) return err(where, "only [N, C, L] inputs are supported (input " + in.str() + ")");
        op.kind = OpKind::GlobalMaxPool;
        out.dims = {in.dims[0], 1};
    } else if (t == "Add") {
        op.kind = OpKind::Add;
        if (n.input_size() != 2) return err(where, "needs 2 inputs");
        if (const Tensor* c = constant(n.input(1))) {
            if (c->is_int) return err(where, "constant operand must be float");
            if (c->f.empty()) return err(where, "constant '" + n.input(1) + "' " + dims_str(c->dims) + " is empty");
            // Broadcast over the trailing dims: its shape must be a suffix of the input's.
            std::vector<int64_t> cd = c->dims;
            while (!cd.empty() && cd.front() == 1) cd.erase(cd.begin());
            if (cd.size() > in.dims.size() ||
                !std::equal(cd.begin(), cd.end(), in.dims.end() - static_cast<std::ptrdiff_t>(cd.size())))
                return err(where, "constant " + dims_str(c->dims) + " does not broadcast over " + in.str() +
                                      " (only trailing-dimension broadcasting is supported)");
            if (auto h = hold(c->f.size(), where); !h) return h.error();
            op.constant = c->f;
        } else {
            auto y = input(1);
            if (!y) return y.error();
            const Shape& ys = model_.values[*y].shape;
            if (ys.per_flow != in.per_flow || ys.dims != in.dims)
                return err(where, "operands " + in.str() + " and " + ys.str() + " differ");
            op.in.push_back(*y);
        }
    } else if (t == "Identity" || t == "Dropout") {
        if (t == "Dropout" && n.output_size() > 1 && !n.output(1).empty())
            return err(where, "the mask output is not supported");
        ids_[n.output(0)] = *x;  // no data movement at all
        return {};
    } else if (t == "Flatten") {
        int64_t axis = attr_i(n, "axis", 1);
        const int64_t rank = static_cast<int64_t>(in.dims.size()) + 1;
        if (axis < 0) axis += rank;
        if (axis < 1 || axis > rank) return err(where, "axis " + std::to_string(axis) + " would flatten the batch");
        op.kind = OpKind::Copy;
        int64_t outer = in.per_flow, inner = 1;
        for (int64_t d = 0; d < rank - 1; ++d) (d < axis - 1 ? outer : inner) *= in.dims[d];
        out.per_flow = outer;
        out.dims = {inner};
    } else if (t == "Reshape") {
        const Tensor* s = n.input_size() > 1 ? constant(n.input(1)) : nullptr;
        if (!s || !s->is_int) return err(where, "the target shape must be an int64 constant");
        if (attr_i(n, "allowzero", 0) != 0) return err(where, "allowzero=1 is not supported");
        std::vector<int64_t> target = s->i;
        if (target.empty()) return err(where, "empty target shape");
        const int64_t total = in.per_flow_elems();
        std::vector<int64_t> full = in.dims;  // for 0 = copy the dimension
        full.insert(full.begin(), -2);        // batch placeholder
        int64_t known = 1, unknown_at = -1;
        for (size_t d = 1; d < target.size(); ++d) {
            if (target[d] == 0) {
                if (d >= full.size()) return err(where, "0 refers to a dimension the input does not have");
                target[d] = full[d];
            }
            if (target[d] == -1) {
                if (unknown_at >= 0 || target[0] == -1) return err(where, "more than one -1 in " + dims_str(s->i));
                unknown_at = static_cast<int64_t>(d);
                continue;
            }
            if (target[d] < 1) return err(where, "bad target shape " + dims_str(s->i));
            const auto k = checked_mul(known, target[d]);
            if (!k || *k > total)
                return err(where, "cannot reshape " + in.str() + " to " + dims_str(s->i) +
                                      " (the target holds more elements)");
            known = *k;
        }
        op.kind = OpKind::Copy;
        if (target[0] == -1) {  // batch × per_flow absorbs the rest
            if (total % known) return err(where, "cannot reshape " + in.str() + " to " + dims_str(s->i));
            out.per_flow = total / known;
            out.dims.assign(target.begin() + 1, target.end());
        } else if (target[0] == 0) {
            const int64_t rest = total / in.per_flow;
            if (unknown_at >= 0) {
                if (rest % known) return err(where, "cannot reshape " + in.str() + " to " + dims_str(s->i));
                target[static_cast<size_t>(unknown_at)] = rest / known;
            } else if (rest != known) {
                return err(where, "cannot reshape " + in.str() + " to " + dims_str(s->i));
            }
            out.dims.assign(target.begin() + 1, target.end());
        } else {
            return err(where, "target shape " + dims_str(s->i) + " fixes the batch dimension",
                       "export with -1 (or 0) as the first dimension");
        }
        if (out.per_flow_elems() != total)
            return err(where, "cannot reshape " + in.str() + " to " + dims_str(s->i));
    } else if (t == "Concat") {
        op.kind = OpKind::Concat;
        const int64_t rank = static_cast<int64_t>(in.dims.size()) + 1;
        int64_t axis = attr_i(n, "axis", 0);
        if (axis < 0) axis += rank;
        if (axis < 1 || axis >= rank) return err(where, "concatenation along the batch axis is not supported");
        op.axis = axis;
        int64_t sum = in.dims[axis - 1];
        for (int k = 1; k < n.input_size(); ++k) {
            auto y = input(k);
            if (!y) return y.error();
            const Shape& ys = model_.values[*y].shape;
            bool same = ys.per_flow == in.per_flow && ys.dims.size() == in.dims.size();
            for (size_t d = 0; same && d < ys.dims.size(); ++d)
                if (static_cast<int64_t>(d) != axis - 1 && ys.dims[d] != in.dims[d]) same = false;
            if (!same) return err(where, "inputs " + in.str() + " and " + ys.str() + " do not concatenate on axis " +
                                             std::to_string(axis));
            if (__builtin_add_overflow(sum, ys.dims[axis - 1], &sum) || sum > kMaxValueElems)
                return err(where, "concatenation is longer than " + std::to_string(kMaxValueElems) +
                                      " (kMaxValueElems)");
            op.in.push_back(*y);
        }
        out.dims[axis - 1] = sum;
    } else if (t == "Softmax") {
        const int64_t rank = static_cast<int64_t>(in.dims.size()) + 1;
        int64_t axis = attr_i(n, "axis", -1);
        if (axis < 0) axis += rank;
        if (axis != rank - 1) return err(where, "softmax is supported over the last axis only");
        if (in.dims.empty()) return err(where, "softmax over the batch axis of " + in.str() + " is not supported");
        op.kind = OpKind::Softmax;
    } else {
        return err(where, "unsupported operator '" + t + "'", std::string("supported: ") + kSupported);
    }
    auto id = add_value(n.output(0), out, where);
    if (!id) return id.error();
    op.out = *id;
    model_.ops.push_back(std::move(op));
    return {};
}

// ~110 lines: the model-level checks in the order the file is read (opset,
// inputs, initialisers, nodes, outputs, metadata); splitting would pass the
// half-built model between pieces.
Result<Model> Builder::build(const onnx::ModelProto& m) {
    // Opset.
    for (const auto& o : m.opset_import())
        if (o.domain().empty() || o.domain() == "ai.onnx") model_.opset = o.version();
    if (model_.opset < 13 || model_.opset > 17)
        return err("opset", "default-domain opset is " + std::to_string(model_.opset) + ", supported 13..17",
                   "export with opset_version between 13 and 17");
    // Metadata.
    std::map<std::string, std::string> meta;
    for (const auto& p : m.metadata_props()) meta[p.key()] = p.value();
    auto need = [&](const char* key) -> Result<std::string> {
        auto it = meta.find(key);
        if (it == meta.end())
            return err("metadata", std::string("'") + key + "' is missing",
                       "scripts/train.py writes etcpipe.features, etcpipe.classes and etcpipe.preprocess");
        return it->second;
    };
    auto spec_text = need("etcpipe.features");
    if (!spec_text) return spec_text.error();
    auto spec = features::parse_spec(*spec_text);
    if (!spec) return err("metadata", "etcpipe.features '" + *spec_text + "': " + spec.error().detail);
    size_t in_bytes = 0;
    for (const auto& f : *spec)
        if (__builtin_add_overflow(in_bytes, f.row_bytes(), &in_bytes) || in_bytes > kMaxInputBytesPerFlow)
            return err("metadata", "etcpipe.features: feature '" + f.name() +
                                       "' brings a flow's input to more than " +
                                       std::to_string(kMaxInputBytesPerFlow) + " bytes (kMaxInputBytesPerFlow)");
    model_.spec = *spec;
    model_.spec_text = *spec_text;
    auto classes_text = need("etcpipe.classes");
    if (!classes_text) return classes_text.error();
    auto classes = parse_string_list(*classes_text);
    if (!classes || classes->empty())
        return err("metadata", "etcpipe.classes must be a non-empty JSON list of strings, is '" +
                                   *classes_text + "'");
    model_.classes = *classes;
    auto pre = need("etcpipe.preprocess");
    if (!pre) return pre.error();
    if (*pre != kPreprocess)
        return err("metadata", "etcpipe.preprocess is '" + *pre + "', this engine implements '" +
                                   kPreprocess + "'");

    const onnx::GraphProto& g = m.graph();
    for (const auto& t : g.initializer()) {
        auto c = to_tensor(t, t.name());
        if (!c) return c.error();
        consts_[t.name()] = std::move(*c);
    }
    for (const auto& o : g.output()) graph_outputs_.insert(o.name());
    for (const auto& n : g.node())
        for (const auto& i : n.input()) ++consumers_[i];

    // Inputs against the feature spec.
    std::vector<const onnx::ValueInfoProto*> inputs;
    for (const auto& v : g.input())
        if (!consts_.count(v.name())) inputs.push_back(&v);
    std::string want;
    for (const auto& f : model_.spec) want += (want.empty() ? "" : ", ") + f.name();
    if (inputs.size() != model_.spec.size()) {
        std::string have;
        for (const auto* v : inputs) have += (have.empty() ? "" : ", ") + v->name();
        return err("inputs", "the model has " + std::to_string(inputs.size()) + " inputs (" + have +
                                 "), feature spec '" + model_.spec_text + "' gives " +
                                 std::to_string(model_.spec.size()) + " (" + want + ")");
    }
    for (const auto& f : model_.spec) {
        const onnx::ValueInfoProto* v = nullptr;
        for (const auto* c : inputs)
            if (c->name() == f.name()) v = c;
        if (!v) return err("inputs", "no input named '" + f.name() + "' (inputs must be named " + want + ")");
        const std::string where = "input '" + f.name() + "'";
        if (!v->type().has_tensor_type() || v->type().tensor_type().elem_type() != onnx::TensorProto::FLOAT)
            return err(where, "element type must be float32");
        const auto& shp = v->type().tensor_type().shape();
        std::vector<int64_t> wanted = {f.h};
        if (f.kind == features::Kind::Payload || f.kind == features::Kind::Packet) wanted.push_back(f.l);
        if (shp.dim_size() != static_cast<int>(wanted.size()) + 1)
            return err(where, "rank is " + std::to_string(shp.dim_size()) + ", feature '" + f.name() +
                                  "' needs " + std::to_string(wanted.size() + 1) + " ([batch, " +
                                  (wanted.size() == 2 ? "H, L])" : "H])"));
        if (shp.dim(0).has_dim_value())
            return err(where, "batch dimension is fixed at " + std::to_string(shp.dim(0).dim_value()) +
                                  "; it must be dynamic", "export with dynamic_axes={name: {0: 'batch'}}");
        for (size_t d = 0; d < wanted.size(); ++d) {
            const auto& dim = shp.dim(static_cast<int>(d) + 1);
            if (!dim.has_dim_value() || dim.dim_value() != wanted[d])
                return err(where, "dim " + std::to_string(d + 1) + " is " +
                                      (dim.has_dim_value() ? std::to_string(dim.dim_value())
                                                           : "'" + dim.dim_param() + "'") +
                                      ", feature spec '" + model_.spec_text + "' needs " +
                                      std::to_string(wanted[d]));
        }
        Shape s;
        s.dims = wanted;
        auto id = add_value(f.name(), s, where);
        if (!id) return id.error();
        model_.inputs.push_back(*id);
    }

    for (int i = 0; i < g.node_size(); ++i)
        if (auto r = node(g.node(i), static_cast<size_t>(i)); !r) return r.error();
    // Constants are finite (to_tensor); what alpha/beta and BatchNorm folding
    // made of them must be too.
    for (const Op& op : model_.ops)
        for (const auto* v : {&op.weight, &op.bias, &op.constant})
            if (first_non_finite(*v) < v->size())
                return err("node '" + op.node + "'", "weights are not finite after folding BatchNormalization "
                                                     "and Gemm alpha/beta into them");

    if (g.output_size() != 1)
        return err("outputs", "the model has " + std::to_string(g.output_size()) + " outputs, expected 1 "
                              "(class probabilities)");
    auto out = value_of(g.output(0).name(), "outputs");
    if (!out) return out.error();
    model_.output = *out;
    const Shape& os = model_.values[*out].shape;
    if (os.per_flow != 1 || os.dims.size() != 1 ||
        os.dims[0] != static_cast<int64_t>(model_.classes.size()))
        return err("outputs", "output '" + g.output(0).name() + "' is " + os.str() + ", metadata names " +
                                  std::to_string(model_.classes.size()) + " classes: expected [N, " +
                                  std::to_string(model_.classes.size()) + "]");
    if (std::any_of(model_.inputs.begin(), model_.inputs.end(), [&](int v) { return v == *out; }))
        return err("outputs", "the output is an input");
    return std::move(model_);
}

Result<Model> Model::parse(std::span<const uint8_t> bytes, const std::string& subject) {
    if (bytes.size() > kMaxModelBytes)
        return make_error(ErrorKind::Data, 0, subject, "parse ONNX model",
                          std::to_string(bytes.size()) + " bytes, more than " + std::to_string(kMaxModelBytes) +
                              " (kMaxModelBytes, 256 MiB)");
    // The limits keep every allocation small; this is the last line should
    // one still fail, so that no exception leaves the loader.
    try {
        onnx::ModelProto m;
        if (!m.ParseFromArray(bytes.data(), static_cast<int>(bytes.size())))
            return make_error(ErrorKind::Data, 0, subject, "parse ONNX model",
                              "not a valid ONNX protobuf (" + std::to_string(bytes.size()) +
                                  " bytes; truncated or not a model?)");
        if (!m.has_graph()) return make_error(ErrorKind::Data, 0, subject, "parse ONNX model", "no graph");
        return Builder(subject).build(m);
    } catch (const std::bad_alloc&) {
        return make_error(ErrorKind::Data, ENOMEM, subject, "parse ONNX model", "out of memory");
    } catch (const std::length_error& e) {
        return make_error(ErrorKind::Data, 0, subject, "parse ONNX model", e.what());
    }
}

namespace {

// The file's bytes, at most kMaxModelBytes of them: a directory or a read
// error is an Io error, a longer file (or endless one: /dev/zero) a Data one.
Result<std::vector<uint8_t>> read_model_file(const std::string& path) {
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return make_error(ErrorKind::Io, errno, path, "open model");
    struct Closer {
        int fd;
        ~Closer() { ::close(fd); }
    } closer{fd};
    struct stat st {};
    if (::fstat(fd, &st) != 0) return make_error(ErrorKind::Io, errno, path, "open model");
    if (S_ISDIR(st.st_mode))
        return make_error(ErrorKind::Io, EISDIR, path, "open model", "",
                          "pass the .onnx file, e.g. models/etc_app.onnx");
    const auto too_big = [&] {
        return make_error(ErrorKind::Data, 0, path, "read model",
                          "more than " + std::to_string(kMaxModelBytes) +
                              " bytes (kMaxModelBytes, 256 MiB): not a model");
    };
    if (S_ISREG(st.st_mode) && static_cast<uint64_t>(st.st_size) > kMaxModelBytes) return too_big();
    std::vector<uint8_t> bytes;
    size_t have = 0;
    for (;;) {
        // One byte past the limit tells a file of exactly kMaxModelBytes from a longer one.
        const size_t want = std::min<size_t>(size_t{1} << 20, kMaxModelBytes + 1 - have);
        if (want == 0) return too_big();
        bytes.resize(have + want);
        const ssize_t n = ::read(fd, bytes.data() + have, want);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return make_error(ErrorKind::Io, errno, path, "read model");
        if (n == 0) break;
        have += static_cast<size_t>(n);
    }
    bytes.resize(have);
    return bytes;
}

}  // namespace

Result<Model> Model::load(const std::string& path) {
    auto bytes = read_model_file(path);
    if (!bytes) return bytes.error();
    return parse(*bytes, path);
}

}  // namespace etcpipe::infer
