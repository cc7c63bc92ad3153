// Tests of the inference engine (gpu/infer.hpp): the shipped model against
// python3-torch on real feature rows, a hand-built model against a value
// computed here, malformed models (each error names what is wrong), CPU
// thread/chunk independence, the GPU backend against the CPU backend (skips
// with the reason without a GPU) and `etcpipe classify` end to end.
#include <gtest/gtest.h>
#include <onnx/onnx_pb.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <string>
#include <regex>
#include <sstream>
#include <vector>

#include "gpu/features.hpp"
#include "gpu/cuda_plugin.hpp"
#include "gpu/infer.hpp"
#include "flowmgr/capture_features.hpp"
#include "common/pcap.hpp"
#include "tests/common/build_dir.hpp"
#include "tests/common/expect_ok.hpp"
#include "tests/common/skip.hpp"


namespace fs = std::filesystem;
using namespace etcpipe;
using namespace etcpipe::infer;

using etcpipe::testing::etcpipe_bin;

namespace {

const char* kModel = "models/etc_app.onnx";
const char* kCheckpoint = "models/etc_app.pt";
const char* kBatchNormModel = "tests/fixtures/etcnet_2026-11.onnx";

std::string read_file(const std::string& path) {
    std::ifstream f(path, std::ios::binary);
    return {std::istreambuf_iterator<char>(f), {}};
}

std::string temp_dir(const std::string& name) {
    const fs::path d = fs::temp_directory_path() / ("etcpipe-infer-" + std::to_string(getpid()) + "-" + name);
    fs::create_directories(d);
    return d.string();
}

int run(const std::string& cmd, std::string* out = nullptr) {
    std::FILE* p = popen((cmd + " 2>&1").c_str(), "r");
    if (!p) return -1;
    char buf[4096];
    size_t n;
    std::string s;
    while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) s.append(buf, n);
    const int st = pclose(p);
    if (out) *out = s;
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

// Real feature rows: the CPU extractor over the nDPI captures, in name order,
// until at least `want` flows.
struct Rows {
    features::Output out;
    size_t rows() const { return out.rows.size(); }
    HostBatch batch(size_t first, size_t n) const {
        HostBatch b;
        b.rows = n;
        for (size_t f = 0; f < out.spec.size(); ++f) {
            const size_t rb = out.spec[f].row_bytes();
            b.tensors.emplace_back(out.tensors[f].data() + first * rb, n * rb);
        }
        return b;
    }
};

Rows real_rows(const std::vector<features::Feature>& spec, size_t want) {
    Rows r;
    r.out.spec = spec;
    r.out.tensors.resize(spec.size());
    std::vector<fs::path> files;
    std::error_code ec;
    for (const auto& e : fs::directory_iterator("testdata/ndpi/pcap", ec))
        if (e.path().extension() == ".pcap" || e.path().extension() == ".pcapng") files.push_back(e.path());
    std::sort(files.begin(), files.end());
    for (const auto& path : files) {
        if (r.rows() >= want) break;
        auto o = extract_capture(path.string(), spec);
        if (!o) continue;
        for (size_t f = 0; f < spec.size(); ++f)
            r.out.tensors[f].insert(r.out.tensors[f].end(), o->tensors[f].begin(), o->tensors[f].end());
        r.out.rows.insert(r.out.rows.end(), o->rows.begin(), o->rows.end());
    }
    return r;
}

// Minimal .npy reader for what reference_infer.py writes: '<f4', C order, 2-D.
std::vector<float> read_npy_f32(const std::string& path, size_t* rows, size_t* cols) {
    const std::string s = read_file(path);
    if (s.size() < 10 || s.compare(0, 6, "\x93NUMPY") != 0) return {};
    const size_t hlen = static_cast<uint8_t>(s[8]) | (static_cast<size_t>(static_cast<uint8_t>(s[9])) << 8);
    const std::string header = s.substr(10, hlen);
    if (header.find("'<f4'") == std::string::npos || header.find("'fortran_order': False") == std::string::npos)
        return {};
    const size_t open = header.find("'shape': (");
    if (open == std::string::npos) return {};
    *rows = std::stoul(header.substr(open + 10));
    *cols = std::stoul(header.substr(header.find(',', open + 10) + 1));
    std::vector<float> v(*rows * *cols);
    if (s.size() != 10 + hlen + v.size() * 4) return {};
    std::memcpy(v.data(), s.data() + 10 + hlen, v.size() * 4);
    return v;
}

bool torch_available(std::string* why) {
    std::string out;
    if (run("/usr/bin/python3 -c 'import torch, numpy'", &out) != 0) {
        *why = "python3-torch not importable: " + out.substr(0, 200);
        return false;
    }
    return true;
}

// max over elements of |a - b| / max(|b|, 1e-6)
double max_rel_err(const std::vector<float>& a, const std::vector<float>& b) {
    double m = 0;
    for (size_t i = 0; i < a.size(); ++i)
        m = std::max(m, std::fabs(double(a[i]) - double(b[i])) / std::max(std::fabs(double(b[i])), 1e-6));
    return m;
}

std::vector<float> infer_all(Backend& be, const Rows& rows, size_t batch) {
    const size_t nc = be.model().num_classes();
    std::vector<float> p(rows.rows() * nc);
    for (size_t first = 0; first < rows.rows(); first += batch) {
        const size_t n = std::min(batch, rows.rows() - first);
        auto r = be.infer(rows.batch(first, n), std::span<float>(p.data() + first * nc, n * nc));
        EXPECT_OK(r);
    }
    return p;
}

class ShippedModel : public ::testing::Test {
  protected:
    void SetUp() override {
        if (!fs::exists(kModel)) GTEST_FAIL() << kModel << " missing: the model is committed, run from the repository root";
        auto m = Model::load(kModel);
        ASSERT_TRUE(m.ok()) << m.error().message();
        model_ = std::make_shared<const Model>(std::move(*m));
    }
    std::shared_ptr<const Model> model_;
};

TEST_F(ShippedModel, LoadsWithItsContract) {
    // scripts/train.py's candidates all read payload, sizes and iat (and some the port)
    EXPECT_EQ(model_->spec_text.rfind("payload:", 0), 0u) << model_->spec_text;
    EXPECT_NE(model_->spec_text.find(",sizes:10,iat:10"), std::string::npos) << model_->spec_text;
    EXPECT_EQ(model_->inputs.size(), model_->spec.size());
    EXPECT_GE(model_->num_classes(), 5u);
    EXPECT_GE(model_->opset, 13);
    EXPECT_LE(model_->opset, 17);
    // small enough for line rate on a CPU: not millions of parameters (BatchNorm folded in;
    // an ensemble counts every member)
    EXPECT_GT(model_->parameters, 10000u);
    EXPECT_LT(model_->parameters, 1000000u);
    for (const Op& op : model_->ops) EXPECT_NE(op.kind, OpKind::Relu) << op.node << ": ReLU not fused";
}

TEST_F(ShippedModel, MatchesTorchOnRealFlows) {
    SKIP_WITHOUT_TESTDATA("testdata/ndpi/pcap");
    std::string why;
    if (!torch_available(&why)) {
        std::printf("[  SKIPPED ] %s\n", why.c_str());
        GTEST_SKIP() << why;
    }
    const Rows rows = real_rows(model_->spec, 1200);
    ASSERT_GE(rows.rows(), 1000u);
    const std::string dir = temp_dir("ref");
    for (size_t f = 0; f < rows.out.spec.size(); ++f) {
        auto w = features::write_npy(dir + "/" + rows.out.spec[f].name() + ".npy", rows.out.spec[f],
                                     rows.out.tensors[f], rows.rows());
        ASSERT_TRUE(w.ok()) << w.error().message();
    }
    std::string log;
    ASSERT_EQ(run("/usr/bin/python3 scripts/reference_infer.py probs --threads 2 --checkpoint " +
                      std::string(kCheckpoint) + " --inputs " + dir + " --out " + dir + "/ref.npy",
                  &log),
              0)
        << log;
    size_t r = 0, c = 0;
    const auto ref = read_npy_f32(dir + "/ref.npy", &r, &c);
    ASSERT_EQ(r, rows.rows());
    ASSERT_EQ(c, model_->num_classes());

    BackendOptions bo;
    bo.threads = 2;
    auto be = make_cpu_backend(model_, bo);
    ASSERT_TRUE(be.ok());
    const auto ours = infer_all(**be, rows, 333);
    const double err = max_rel_err(ours, ref);
    size_t same_class = 0;
    for (size_t i = 0; i < r; ++i)
        same_class += std::max_element(&ours[i * c], &ours[i * c] + c) - &ours[i * c] ==
                      std::max_element(&ref[i * c], &ref[i * c] + c) - &ref[i * c];
    std::printf("engine vs python3-torch: %zu flows x %zu classes, max relative error %.3g, same class %zu/%zu\n",
                r, c, err, same_class, r);
    EXPECT_LE(err, 1e-4);
    EXPECT_EQ(same_class, r);
    fs::remove_all(dir);
}

TEST_F(ShippedModel, CpuThreadsAndChunksAgree) {
    SKIP_WITHOUT_TESTDATA("testdata/ndpi/pcap");
    const Rows rows = real_rows(model_->spec, 300);
    ASSERT_GT(rows.rows(), 0u);
    BackendOptions one, many;
    one.threads = 1;
    one.chunk_rows = 1000;
    many.threads = 3;
    many.chunk_rows = 7;
    auto a = make_cpu_backend(model_, one), b = make_cpu_backend(model_, many);
    ASSERT_TRUE(a.ok() && b.ok());
    const auto pa = infer_all(**a, rows, rows.rows()), pb = infer_all(**b, rows, 50);
    EXPECT_LE(max_rel_err(pb, pa), 1e-5);
}

TEST_F(ShippedModel, GpuMatchesCpu) {
    SKIP_WITHOUT_GPU(gpu_available);
    const Rows rows = real_rows(model_->spec, 1200);
    ASSERT_GE(rows.rows(), 1000u);
    auto cpu = make_cpu_backend(model_, {});
    auto gpu = make_gpu_backend(model_, {});
    ASSERT_TRUE(cpu.ok());
    ASSERT_TRUE(gpu.ok()) << gpu.error().message();
    const auto ref = infer_all(**cpu, rows, 1024);
    for (size_t batch : {1u, 64u, 1024u, 1000u}) {  // 1000 twice-used sizes hit the CUDA graph cache
        const auto got = infer_all(**gpu, rows, batch);
        const double err = max_rel_err(got, ref);
        std::printf("GPU vs CPU, batch %zu: max relative error %.3g\n", batch, err);
        EXPECT_LE(err, 1e-4) << "batch " << batch;
    }
    // The device path: features already on the device, probabilities stay
    // there (device memory through the CUDA plugin).
    DeviceBatch db;
    db.rows = rows.rows();
    std::vector<void*> owned;
    for (const auto& t : rows.out.tensors) {
        auto p = cuda_plugin::device_alloc(t.size());
        ASSERT_TRUE(p.ok()) << p.error().message();
        owned.push_back(*p);
        ASSERT_TRUE(cuda_plugin::copy(*p, t.data(), t.size(), cuda_plugin::CopyKind::HostToDevice).ok());
        db.tensors.push_back(*p);
    }
    auto dprobs = cuda_plugin::device_alloc(ref.size() * 4);
    ASSERT_TRUE(dprobs.ok()) << dprobs.error().message();
    auto r = (*gpu)->infer(db, static_cast<float*>(*dprobs));
    ASSERT_TRUE(r.ok()) << r.error().message();
    std::vector<float> got(ref.size());
    ASSERT_TRUE(cuda_plugin::copy(got.data(), *dprobs, got.size() * 4, cuda_plugin::CopyKind::DeviceToHost).ok());
    EXPECT_LE(max_rel_err(got, ref), 1e-4) << "device batch";
    cuda_plugin::device_free(*dprobs);
    for (void* p : owned) cuda_plugin::device_free(p);
}

// ---------------------------------------------------- malformed models --

// A serialised proto through the loader.
Result<Model> parse_proto(const onnx::ModelProto& m, const std::string& subject) {
    std::string s;
    EXPECT_TRUE(m.SerializeToString(&s));
    return Model::parse(std::span(reinterpret_cast<const uint8_t*>(s.data()), s.size()), subject);
}

// The load error of an edited model ("" = loaded).
std::string load_error(const onnx::ModelProto& m) {
    auto r = parse_proto(m, "edited.onnx");
    if (r.ok()) return "";
    EXPECT_EQ(r.error().kind, ErrorKind::Data) << r.error().message();
    return r.error().message();
}

class Malformed : public ::testing::Test {
  protected:
    void SetUp() override {
        bytes_ = read_file(kModel);
        ASSERT_FALSE(bytes_.empty()) << kModel;
        ASSERT_TRUE(proto_.ParseFromString(bytes_));
    }
    // Serialises the edited proto and returns the load error ("" = loaded).
    std::string error_of(const onnx::ModelProto& m) { return load_error(m); }
    // The first node of op type `op` (test fails without one).
    onnx::NodeProto* first(const std::string& op) {
        for (auto& n : *proto_.mutable_graph()->mutable_node())
            if (n.op_type() == op) return &n;
        ADD_FAILURE() << "the shipped model has no " << op;
        static onnx::NodeProto none;
        return &none;
    }
    // The initializer named `name`, or nullptr.
    onnx::TensorProto* initializer(const std::string& name) {
        for (auto& t : *proto_.mutable_graph()->mutable_initializer())
            if (t.name() == name) return &t;
        return nullptr;
    }
    void set_meta(onnx::ModelProto& m, const std::string& key, const std::string* value) {
        for (int i = 0; i < m.metadata_props_size(); ++i)
            if (m.metadata_props(i).key() == key) {
                if (value) {
                    m.mutable_metadata_props(i)->set_value(*value);
                } else {
                    m.mutable_metadata_props()->DeleteSubrange(i, 1);
                }
                return;
            }
        FAIL() << "no metadata " << key;
    }
    std::string bytes_;
    onnx::ModelProto proto_;
};

TEST_F(Malformed, Unedited) { EXPECT_EQ(error_of(proto_), ""); }

TEST_F(Malformed, TruncatedFile) {
    for (size_t keep : {bytes_.size() / 2, bytes_.size() - 3, size_t{0}}) {
        auto r = Model::parse(std::span(reinterpret_cast<const uint8_t*>(bytes_.data()), keep), "cut.onnx");
        ASSERT_FALSE(r.ok()) << keep;
        EXPECT_NE(r.error().message().find("cut.onnx"), std::string::npos);
        std::printf("truncated to %zu bytes: %s\n", keep, r.error().message().c_str());
    }
    auto missing = Model::load("/nonexistent/model.onnx");
    ASSERT_FALSE(missing.ok());
    EXPECT_EQ(missing.error().kind, ErrorKind::Io);
}

TEST_F(Malformed, UnknownOpNamesOpAndNode) {
    onnx::NodeProto* relu = nullptr;
    for (auto& n : *proto_.mutable_graph()->mutable_node())
        if (n.op_type() == "Relu" && !relu) relu = &n;
    ASSERT_NE(relu, nullptr);
    relu->set_op_type("Gelu");
    const std::string e = error_of(proto_);
    std::printf("%s\n", e.c_str());
    EXPECT_NE(e.find("unsupported operator 'Gelu'"), std::string::npos) << e;
    EXPECT_NE(e.find("node '" + relu->name() + "'"), std::string::npos) << e;
}

TEST_F(Malformed, WrongInputShape) {
    auto* in0 = proto_.mutable_graph()->mutable_input(0);
    ASSERT_EQ(in0->name().rfind("payload_", 0), 0u) << in0->name();
    auto* dim = in0->mutable_type()->mutable_tensor_type()->mutable_shape()->mutable_dim(2);
    const std::string l = std::to_string(dim->dim_value());
    dim->set_dim_value(1000);
    std::string e = error_of(proto_);
    std::printf("%s\n", e.c_str());
    EXPECT_NE(e.find("input '" + in0->name() + "': dim 2 is 1000"), std::string::npos) << e;
    EXPECT_NE(e.find("needs " + l), std::string::npos) << e;

    SetUp();  // fixed batch dimension
    proto_.mutable_graph()->mutable_input(1)->mutable_type()->mutable_tensor_type()->mutable_shape()->mutable_dim(0)->set_dim_value(4);
    e = error_of(proto_);
    EXPECT_NE(e.find("input 'sizes_10': batch dimension is fixed at 4"), std::string::npos) << e;

    SetUp();  // renamed input
    proto_.mutable_graph()->mutable_input(2)->set_name("iat_x");
    e = error_of(proto_);
    EXPECT_NE(e.find("no input named 'iat_10'"), std::string::npos) << e;
}

TEST_F(Malformed, WrongMetadata) {
    set_meta(proto_, "etcpipe.classes", nullptr);
    std::string e = error_of(proto_);
    EXPECT_NE(e.find("'etcpipe.classes' is missing"), std::string::npos) << e;

    SetUp();  // spec that disagrees with the inputs: the payload's shape changed
    std::string spec;
    for (const auto& p : proto_.metadata_props())
        if (p.key() == "etcpipe.features") spec = p.value();
    ASSERT_EQ(spec.rfind("payload:", 0), 0u) << spec;
    spec = "payload:10x1000" + spec.substr(spec.find(','));
    set_meta(proto_, "etcpipe.features", &spec);
    e = error_of(proto_);
    std::printf("%s\n", e.c_str());
    // input names carry the shape, so the name is the first thing that disagrees
    EXPECT_NE(e.find("no input named 'payload_10x1000'"), std::string::npos) << e;

    SetUp();  // one class too few for the output
    const std::string three = "[\"a\",\"b\",\"c\"]";
    set_meta(proto_, "etcpipe.classes", &three);
    e = error_of(proto_);
    EXPECT_NE(e.find("metadata names 3 classes"), std::string::npos) << e;

    SetUp();
    const std::string not_json = "a,b,c";
    set_meta(proto_, "etcpipe.classes", &not_json);
    EXPECT_NE(error_of(proto_).find("JSON list"), std::string::npos);

    SetUp();
    const std::string pre = "v0";
    set_meta(proto_, "etcpipe.preprocess", &pre);
    EXPECT_NE(error_of(proto_).find("etcpipe.preprocess is 'v0'"), std::string::npos);

    SetUp();
    proto_.mutable_opset_import(0)->set_version(9);
    EXPECT_NE(error_of(proto_).find("opset is 9"), std::string::npos);
}

// ------------------------------------------------- a model built here --

onnx::TensorProto float_tensor(const std::string& name, std::vector<int64_t> dims, std::vector<float> v) {
    onnx::TensorProto t;
    t.set_name(name);
    t.set_data_type(onnx::TensorProto::FLOAT);
    for (auto d : dims) t.add_dims(d);
    for (float x : v) t.add_float_data(x);
    return t;
}

void add_input(onnx::GraphProto* g, const std::string& name, std::vector<int64_t> dims) {
    auto* in = g->add_input();
    in->set_name(name);
    auto* tt = in->mutable_type()->mutable_tensor_type();
    tt->set_elem_type(onnx::TensorProto::FLOAT);
    tt->mutable_shape()->add_dim()->set_dim_param("batch");
    for (auto d : dims) tt->mutable_shape()->add_dim()->set_dim_value(d);
}

onnx::NodeProto* add_node(onnx::GraphProto* g, const std::string& op, std::vector<std::string> in,
                          const std::string& out) {
    auto* n = g->add_node();
    n->set_op_type(op);
    n->set_name("n_" + out);
    for (auto& i : in) n->add_input(i);
    n->add_output(out);
    return n;
}

void set_attr(onnx::NodeProto* n, const std::string& name, std::vector<int64_t> ints) {
    auto* a = n->add_attribute();
    a->set_name(name);
    a->set_type(onnx::AttributeProto::INTS);
    for (auto v : ints) a->add_ints(v);
}

void set_attr(onnx::NodeProto* n, const std::string& name, int64_t i) {
    auto* a = n->add_attribute();
    a->set_name(name);
    a->set_type(onnx::AttributeProto::INT);
    a->set_i(i);
}

// A model of `spec` with its metadata and inputs, no nodes yet.
onnx::ModelProto empty_model(const std::string& spec, const std::string& classes) {
    onnx::ModelProto m;
    m.set_ir_version(8);
    m.add_opset_import()->set_version(15);
    auto meta = [&](const char* k, const std::string& v) {
        auto* p = m.add_metadata_props();
        p->set_key(k);
        p->set_value(v);
    };
    meta("etcpipe.features", spec);
    meta("etcpipe.classes", classes);
    meta("etcpipe.preprocess", kPreprocess);
    auto parsed = features::parse_spec(spec);
    EXPECT_TRUE(parsed.ok()) << spec;
    if (parsed.ok())
        for (const auto& f : *parsed) {
            std::vector<int64_t> dims = {f.h};
            if (f.kind == features::Kind::Payload || f.kind == features::Kind::Packet) dims.push_back(f.l);
            add_input(m.mutable_graph(), f.name(), dims);
        }
    return m;
}

const std::vector<float> kHandW = {0.5f, -1.f, 2.f, 1.f, 0.25f, -0.5f, -2.f, 3.f, 1.f, 0.1f, 0.2f, 0.3f};  // [4, 3]
const std::vector<float> kHandB = {0.1f, -0.2f, 0.3f};

// sizes:2,iat:2 → Concat → MatMul(W) → Add(b) → Relu → Softmax; nodes
// n_cat, n_mm, n_add, n_relu, n_prob.
onnx::ModelProto hand_model() {
    onnx::ModelProto m = empty_model("sizes:2,iat:2", "[\"x\",\"y\",\"z\"]");
    auto* g = m.mutable_graph();
    *g->add_initializer() = float_tensor("W", {4, 3}, kHandW);
    *g->add_initializer() = float_tensor("b", {3}, kHandB);
    set_attr(add_node(g, "Concat", {"sizes_2", "iat_2"}, "cat"), "axis", int64_t{1});
    add_node(g, "MatMul", {"cat", "W"}, "mm");
    add_node(g, "Add", {"mm", "b"}, "add");
    add_node(g, "Relu", {"add"}, "relu");
    add_node(g, "Softmax", {"relu"}, "prob");
    g->add_output()->set_name("prob");
    return m;
}

onnx::TensorProto* hand_initializer(onnx::ModelProto& m, const std::string& name) {
    for (auto& t : *m.mutable_graph()->mutable_initializer())
        if (t.name() == name) return &t;
    ADD_FAILURE() << "no initializer " << name;
    return m.mutable_graph()->add_initializer();
}

// Checked against the same arithmetic written out here.
TEST(HandBuilt, MatMulAddConcatSoftmax) {
    const onnx::ModelProto m = hand_model();
    const std::vector<float>& w = kHandW;
    const std::vector<float>& b = kHandB;
    auto model = parse_proto(m, "hand.onnx");
    ASSERT_TRUE(model.ok()) << model.error().message();
    auto be = make_cpu_backend(std::make_shared<const Model>(std::move(*model)), {});
    ASSERT_TRUE(be.ok());

    const std::vector<int32_t> sizes = {1500, -3000, 0, 750};
    const std::vector<int64_t> iat = {0, 1000000, -5, 42};
    HostBatch hb;
    hb.rows = 2;
    hb.tensors.emplace_back(reinterpret_cast<const uint8_t*>(sizes.data()), sizes.size() * 4);
    hb.tensors.emplace_back(reinterpret_cast<const uint8_t*>(iat.data()), iat.size() * 8);
    std::vector<float> probs(6);
    auto r = (*be)->infer(hb, probs);
    ASSERT_TRUE(r.ok()) << r.error().message();
    for (int row = 0; row < 2; ++row) {
        double x[4] = {sizes[row * 2] / 1500.0, sizes[row * 2 + 1] / 1500.0, 0, 0};
        for (int j = 0; j < 2; ++j) {
            const double v = static_cast<double>(iat[row * 2 + j]);
            x[2 + j] = (v < 0 ? -1 : 1) * std::log1p(std::fabs(v)) / 16.0;
        }
        double z[3], sum = 0;
        for (int c = 0; c < 3; ++c) {
            z[c] = b[c];
            for (int k = 0; k < 4; ++k) z[c] += x[k] * w[k * 3 + c];
            z[c] = std::max(z[c], 0.0);
        }
        const double mx = std::max({z[0], z[1], z[2]});
        for (double& v : z) sum += v = std::exp(v - mx);
        for (int c = 0; c < 3; ++c) EXPECT_NEAR(probs[row * 3 + c], z[c] / sum, 1e-6) << row << "," << c;
    }
}

// ------------------------------------------------- hostile model files --
// Each case below crashed, hung or printed "nan" before the loader checked
// it (heap overflow, SIGFPE, bad_alloc, uncaught ios_base::failure); now each
// is a Data (or Io) error naming what is wrong.

// Sets an int64 constant (initializer or Constant node value) to `v`, shape [v.size()].
void set_int64(onnx::TensorProto* t, const std::vector<int64_t>& v) {
    t->clear_raw_data();
    t->clear_int64_data();
    t->clear_dims();
    t->add_dims(static_cast<int64_t>(v.size()));
    t->set_data_type(onnx::TensorProto::INT64);
    for (auto x : v) t->add_int64_data(x);
}

// The float at `index` of a float tensor, whichever field holds the data.
void poke_float(onnx::TensorProto* t, size_t index, float v) {
    if (!t->raw_data().empty()) {
        ASSERT_LE((index + 1) * 4, t->raw_data().size());
        std::memcpy(t->mutable_raw_data()->data() + index * 4, &v, 4);
    } else {
        ASSERT_LT(index, static_cast<size_t>(t->float_data_size()));
        t->set_float_data(static_cast<int>(index), v);
    }
}

void expect_has(const std::string& e, std::initializer_list<const char*> parts) {
    EXPECT_NE(e, "") << "loaded";
    for (const char* p : parts) EXPECT_NE(e.find(p), std::string::npos) << "want '" << p << "' in: " << e;
}

// 4·2^62 wraps to 0: the weights "held" their 0 values and the Gemm
// transposition wrote 2^64 floats into an empty vector.
TEST(HandBuiltMalformed, WeightDimsWhoseProductWraps) {
    onnx::ModelProto m = hand_model();
    onnx::TensorProto* w = hand_initializer(m, "W");
    w->clear_float_data();
    w->clear_dims();
    w->add_dims(4);
    w->add_dims(int64_t{1} << 62);
    const std::string e = load_error(m);
    std::printf("%s\n", e.c_str());
    expect_has(e, {"constant 'W'", "[4, 4611686018427387904]", "kMaxParameters"});

    m = hand_model();  // 2^32 × 2^32 = 2^64: the same through raw_data
    w = hand_initializer(m, "W");
    w->clear_float_data();
    w->clear_dims();
    w->add_dims(int64_t{1} << 32);
    w->add_dims(int64_t{1} << 32);
    w->set_raw_data(std::string(48, '\0'));
    expect_has(load_error(m), {"constant 'W'", "kMaxParameters"});
}

TEST(HandBuiltMalformed, DataLengthDisagreesWithDims) {
    onnx::ModelProto m = hand_model();
    hand_initializer(m, "W")->mutable_float_data()->RemoveLast();  // 11 values for [4, 3]
    expect_has(load_error(m), {"constant 'W'", "holds 11 values", "[4, 3] needs 12"});

    m = hand_model();  // raw_data one float short
    onnx::TensorProto* w = hand_initializer(m, "W");
    w->clear_float_data();
    w->set_raw_data(std::string(44, '\0'));
    expect_has(load_error(m), {"constant 'W'", "raw data holds 44 bytes", "needs 48"});

    m = hand_model();
    w = hand_initializer(m, "W");
    w->set_dims(1, -3);
    expect_has(load_error(m), {"constant 'W'", "negative dimension"});
}

// A [4, 0] weight made a [N, 0] tensor: Softmax divided by its width 0, an
// Add with an empty constant took it for tensor + tensor and read a second
// input that does not exist.
TEST(HandBuiltMalformed, ZeroSizedWeightsAndConstants) {
    onnx::ModelProto m = hand_model();
    onnx::TensorProto* w = hand_initializer(m, "W");
    w->clear_float_data();
    w->set_dims(1, 0);
    expect_has(load_error(m), {"node 'n_mm' (MatMul)", "[4, 0] have a zero dimension"});

    m = hand_model();
    onnx::TensorProto* b = hand_initializer(m, "b");
    b->clear_float_data();
    b->set_dims(0, 0);
    expect_has(load_error(m), {"node 'n_add' (Add)", "constant 'b' [0] is empty"});

    // Softmax over a tensor without a feature dimension (Reshape to [-1]).
    m = empty_model("sizes:3", "[\"a\",\"b\",\"c\"]");
    auto* g = m.mutable_graph();
    onnx::TensorProto shape;
    shape.set_name("flat");
    set_int64(&shape, {-1});
    *g->add_initializer() = shape;
    add_node(g, "Reshape", {"sizes_3", "flat"}, "r");
    add_node(g, "Softmax", {"r"}, "prob");
    g->add_output()->set_name("prob");
    expect_has(load_error(m), {"node 'n_prob' (Softmax)", "batch axis"});
}

// Stride 0 divided by zero (SIGFPE) computing the output length.
TEST_F(Malformed, StridesKernelsAndPads) {
    const auto edit = [&](const char* op, const char* name, std::vector<int64_t> v) {
        SetUp();
        onnx::NodeProto* n = first(op);
        for (int i = 0; i < n->attribute_size(); ++i)
            if (n->attribute(i).name() == name) n->mutable_attribute()->DeleteSubrange(i--, 1);
        set_attr(n, name, v);
        const std::string e = error_of(proto_);
        std::printf("%s %s %s: %s\n", op, name, ::testing::PrintToString(v).c_str(), e.c_str());
        EXPECT_NE(e.find("node '" + n->name() + "' (" + op + ")"), std::string::npos) << e;
        return e;
    };
    expect_has(edit("Conv", "strides", {0}), {"stride 0 must be at least 1"});
    expect_has(edit("Conv", "strides", {-2}), {"stride -2 must be at least 1"});
    expect_has(edit("Conv", "pads", {-300, 0}), {"pads [-300, 0]"});
    expect_has(edit("Conv", "pads", {int64_t{1} << 62, 0}), {"pads [4611686018427387904, 0]"});
    expect_has(edit("Conv", "strides", {1, 1}), {"expected 1 stride"});
    expect_has(edit("MaxPool", "strides", {0}), {"stride 0 must be at least 1"});
    expect_has(edit("MaxPool", "kernel_shape", {0}), {"kernel size 0 must be at least 1"});
    expect_has(edit("MaxPool", "kernel_shape", {int64_t{1} << 40}), {"longer than the padded input"});
    SetUp();
    int64_t kernel = 0;
    for (const auto& a : first("MaxPool")->attribute())
        if (a.name() == "kernel_shape" && a.ints_size() == 1) kernel = a.ints(0);
    ASSERT_GT(kernel, 0);
    expect_has(edit("MaxPool", "pads", {1, kernel}), {"less than the kernel"});
    expect_has(edit("MaxPool", "pads", {1}), {"expected 2 pads"});
}

// 2^32 · 2^32 wrapped to 0 and `total % known` divided by zero (SIGFPE).
TEST_F(Malformed, ReshapeWhoseProductOverflows) {
    onnx::NodeProto* r = first("Reshape");
    const std::string target = r->input(1);
    onnx::TensorProto* t = initializer(target);
    for (auto& n : *proto_.mutable_graph()->mutable_node())
        if (n.op_type() == "Constant" && n.output(0) == target) t = n.mutable_attribute(0)->mutable_t();
    ASSERT_NE(t, nullptr) << "no constant " << target;
    set_int64(t, {-1, int64_t{1} << 32, int64_t{1} << 32});
    const std::string e = error_of(proto_);
    std::printf("%s\n", e.c_str());
    expect_has(e, {("node '" + r->name() + "' (Reshape)").c_str(), "cannot reshape"});
}

// payload:65536x65536 is 4 GiB per flow: the extractor and the backend's
// scratch died of bad_alloc.
TEST_F(Malformed, InputSpecOverTheLimits) {
    const std::string spec = "payload:65536x65536,sizes:10,iat:10";
    set_meta(proto_, "etcpipe.features", &spec);
    auto* in = proto_.mutable_graph()->mutable_input(0);
    in->set_name("payload_65536x65536");
    auto* shape = in->mutable_type()->mutable_tensor_type()->mutable_shape();
    for (int d = 1; d <= 2; ++d) shape->mutable_dim(d)->set_dim_value(65536);
    const std::string e = error_of(proto_);
    std::printf("%s\n", e.c_str());
    expect_has(e, {"metadata", "payload_65536x65536", "4194304 bytes (kMaxInputBytesPerFlow)"});
}

// Within the input limit, the tensors the graph makes of it are held too:
// per tensor, all tensors together, and a Conv's im2col matrix.
TEST(HandBuiltMalformed, ActivationsOverTheLimits) {
    onnx::ModelProto m = empty_model("payload:4096x1024", "[\"a\"]");  // 4 MiB: at the limit
    auto* g = m.mutable_graph();
    set_attr(add_node(g, "Concat", {"payload_4096x1024", "payload_4096x1024"}, "twice"), "axis", int64_t{1});
    expect_has(load_error(m), {"node 'n_twice' (Concat)", "kMaxValueElems"});

    m = empty_model("payload:4096x1024", "[\"a\"]");
    g = m.mutable_graph();
    std::string prev = "payload_4096x1024";
    for (int i = 0; i < 5; ++i) {
        const std::string out = "r" + std::to_string(i);
        add_node(g, "Relu", {prev}, out);
        prev = out;
    }
    expect_has(load_error(m), {"node 'n_r3' (Relu)", "kMaxScratchElems"});

    m = empty_model("payload:16x4096", "[\"a\"]");
    g = m.mutable_graph();
    *g->add_initializer() = float_tensor("k", {1, 16, 1024}, std::vector<float>(16 * 1024, 0.f));
    add_node(g, "Conv", {"payload_16x4096", "k"}, "conv");
    expect_has(load_error(m), {"node 'n_conv' (Conv)", "im2col", "kMaxScratchElems"});
}

// NaN weights gave "probability":nan on every flow (not JSON).
TEST_F(Malformed, NonFiniteWeights) {
    const onnx::NodeProto* conv = first("Conv");
    const std::string w = conv->input(1);
    for (float bad : {std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::infinity(),
                      -std::numeric_limits<float>::infinity()}) {
        SetUp();
        poke_float(initializer(w), 7, bad);
        const std::string e = error_of(proto_);
        std::printf("%s\n", e.c_str());
        expect_has(e, {("constant '" + w + "'").c_str(), "element 7 is", std::isnan(bad) ? "NaN" : "infinite"});
    }
    // A BatchNormalization variance that is negative: sqrt of a negative. The
    // shipped model has no BatchNormalization; the EtcNet shipped before has
    // one (tests/fixtures/etcnet_2026-11.onnx, made by scripts/train.py).
    const auto with_bn = [&] {
        bytes_ = read_file(kBatchNormModel);
        ASSERT_FALSE(bytes_.empty()) << kBatchNormModel;
        ASSERT_TRUE(proto_.ParseFromString(bytes_));
    };
    with_bn();
    EXPECT_EQ(error_of(proto_), "");
    const onnx::NodeProto* bn = first("BatchNormalization");
    poke_float(initializer(bn->input(4)), 0, -1.f);
    expect_has(error_of(proto_),
               {("node '" + bn->name() + "'").c_str(), "variance + epsilon of channel 0", "not positive"});
    // Finite parameters whose folding overflows float32.
    with_bn();
    bn = first("BatchNormalization");
    for (int k : {1, 2}) poke_float(initializer(bn->input(k)), 0, 3e38f);  // scale, bias
    poke_float(initializer(bn->input(4)), 0, 0.f);
    expect_has(error_of(proto_), {"not finite after folding"});
    // Gemm alpha = inf.
    SetUp();
    onnx::NodeProto* gemm = first("Gemm");
    for (int i = 0; i < gemm->attribute_size(); ++i)
        if (gemm->attribute(i).name() == "alpha") gemm->mutable_attribute()->DeleteSubrange(i--, 1);
    auto* a = gemm->add_attribute();
    a->set_name("alpha");
    a->set_type(onnx::AttributeProto::FLOAT);
    a->set_f(std::numeric_limits<float>::infinity());
    expect_has(error_of(proto_), {"(Gemm)", "must be finite"});
}

// Names from the file reach the terminal: control characters escaped, a
// megabyte name cut short.
TEST(HandBuiltMalformed, NamesInMessagesArePrintable) {
    onnx::ModelProto m = hand_model();
    m.mutable_graph()->mutable_node(1)->set_name("evil\x1b[2J\x07");
    m.mutable_graph()->mutable_node(1)->set_op_type("Gelu");
    std::string e = load_error(m);
    expect_has(e, {"node 'evil\\x1b[2J\\x07' (Gelu)"});
    EXPECT_EQ(e.find('\x1b'), std::string::npos) << e;

    m = hand_model();
    m.mutable_graph()->mutable_node(1)->set_name(std::string(1 << 20, 'n'));
    m.mutable_graph()->mutable_node(1)->set_op_type("Gelu");
    e = load_error(m);
    expect_has(e, {"... (", "bytes)", "unsupported operator 'Gelu'"});
    EXPECT_LT(e.size(), 4000u);
}

// Finite weights can still overflow on an input: an error, not nan.
TEST(HandBuilt, OverflowingOutputIsAnError) {
    onnx::ModelProto m = hand_model();
    onnx::TensorProto* w = hand_initializer(m, "W");
    for (int i = 0; i < w->float_data_size(); ++i) w->set_float_data(i, 3e38f);
    auto model = parse_proto(m, "huge.onnx");
    ASSERT_TRUE(model.ok()) << model.error().message();
    auto be = make_cpu_backend(std::make_shared<const Model>(std::move(*model)), {});
    ASSERT_TRUE(be.ok());
    const std::vector<int32_t> sizes = {1500, 1500};
    const std::vector<int64_t> iat = {1000000, 1000000};
    HostBatch hb;
    hb.rows = 1;
    hb.tensors.emplace_back(reinterpret_cast<const uint8_t*>(sizes.data()), sizes.size() * 4);
    hb.tensors.emplace_back(reinterpret_cast<const uint8_t*>(iat.data()), iat.size() * 8);
    std::vector<float> probs(3);
    auto r = (*be)->infer(hb, probs);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().kind, ErrorKind::Data);
    std::printf("%s\n", r.error().message().c_str());
    EXPECT_NE(r.error().message().find("model output for row 0 of the batch, class 0 is NaN"), std::string::npos)
        << r.error().message();
}

// A directory died of an uncaught std::ios_base::failure; /dev/zero was read forever.
TEST_F(Malformed, ModelPathThatIsNotAModelFile) {
    const std::string dir = temp_dir("model-dir");
    auto d = Model::load(dir);
    ASSERT_FALSE(d.ok());
    EXPECT_EQ(d.error().kind, ErrorKind::Io);
    EXPECT_NE(d.error().message().find("Is a directory"), std::string::npos) << d.error().message();
    fs::remove_all(dir);

    // Unreadable: reading /proc/self/mem at offset 0 fails with EIO, root or not.
    auto u = Model::load("/proc/self/mem");
    ASSERT_FALSE(u.ok());
    EXPECT_EQ(u.error().kind, ErrorKind::Io) << u.error().message();
    EXPECT_NE(u.error().message().find("read model"), std::string::npos) << u.error().message();

    const auto t0 = std::chrono::steady_clock::now();
    auto z = Model::load("/dev/zero");
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    ASSERT_FALSE(z.ok());
    std::printf("/dev/zero in %.2f s: %s\n", s, z.error().message().c_str());
    EXPECT_NE(z.error().message().find("kMaxModelBytes"), std::string::npos) << z.error().message();
    EXPECT_LT(s, 20.0);

    // The in-memory entry point takes no more than the file one.
    const std::vector<uint8_t> big(kMaxModelBytes + 1);
    auto b = Model::parse(big, "big.onnx");
    ASSERT_FALSE(b.ok());
    EXPECT_NE(b.error().message().find("kMaxModelBytes"), std::string::npos) << b.error().message();
}

// ------------------------------------------------------ etcpipe classify --

TEST(Classify, CaptureToJsonLines) {
    const std::string bin = etcpipe_bin();
    if (!fs::exists(bin)) GTEST_SKIP() << bin << " not built";
    SKIP_WITHOUT_TESTDATA("testdata/ndpi/pcap/skype.pcap");
    std::string out;
    ASSERT_EQ(run(bin + " classify testdata/ndpi/pcap/skype.pcap --model " + kModel +
                      " --device cpu --batch 64 -q", &out), 0) << out;
    size_t lines = 0, with_class = 0;
    for (size_t p = 0; (p = out.find('\n', p)) != std::string::npos; ++p) ++lines;
    for (size_t p = 0; (p = out.find("\"class\":\"", p)) != std::string::npos; ++p) ++with_class;
    // as many lines as `etcpipe features` finds flows
    const std::string dir = temp_dir("cls");
    std::string fo;
    ASSERT_EQ(run(bin + " features testdata/ndpi/pcap/skype.pcap -o " + dir +
                      " --features payload:10x256,sizes:10,iat:10 --device cpu -q", &fo), 0) << fo;
    const std::string csv = read_file(dir + "/flows.csv");
    const size_t flows = static_cast<size_t>(std::count(csv.begin(), csv.end(), '\n')) - 1;
    EXPECT_EQ(lines, flows);
    EXPECT_EQ(with_class, flows);
    EXPECT_NE(out.find("\"sport\":"), std::string::npos);
    fs::remove_all(dir);

    // Errors: exit codes from cli_common.hpp, one clear line.
    EXPECT_EQ(run(bin + " classify testdata/ndpi/pcap/skype.pcap --model /nonexistent.onnx", &out), 4) << out;
    EXPECT_EQ(run(bin + " classify testdata/ndpi/pcap/skype.pcap --model testdata/ndpi/pcap/skype.pcap", &out), 5) << out;
    EXPECT_NE(out.find("not a valid ONNX protobuf"), std::string::npos) << out;
    EXPECT_EQ(run(bin + " classify testdata/ndpi/pcap/skype.pcap --model models", &out), 4) << out;
    EXPECT_NE(out.find("models: open model: Is a directory"), std::string::npos) << out;
    if (fs::exists("testdata/ndpi/pcap/fuzz-2021-10-13.pcap")) {
        EXPECT_EQ(run(bin + " classify testdata/ndpi/pcap/fuzz-2021-10-13.pcap --model " + kModel + " --device cpu", &out), 5) << out;
        EXPECT_NE(out.find("corrupt record"), std::string::npos) << out;
    }
    std::string why;
    if (!gpu_available(&why)) {
        EXPECT_EQ(run(bin + " classify testdata/ndpi/pcap/skype.pcap --model " + std::string(kModel) + " --device gpu", &out), 2) << out;
    }
}

}  // namespace

namespace {

// Per line: the flow's endpoints and its probabilities, from classify's JSON.
std::vector<std::pair<std::string, std::vector<double>>> parse_classified(const std::string& out) {
    std::vector<std::pair<std::string, std::vector<double>>> flows;
    std::istringstream in(out);
    std::string line;
    const std::regex ends("\"src\":\"[^\"]*\",\"sport\":[0-9]+,\"dst\":\"[^\"]*\",\"dport\":[0-9]+");
    const std::regex probs("\"probabilities\":\\{([^}]*)\\}");
    const std::regex num(":([-0-9.e]+)");
    while (std::getline(in, line)) {
        std::smatch e, p;
        if (!std::regex_search(line, e, ends) || !std::regex_search(line, p, probs)) continue;
        std::vector<double> v;
        const std::string body = p[1];
        for (auto it = std::sregex_iterator(body.begin(), body.end(), num); it != std::sregex_iterator(); ++it)
            v.push_back(std::stod((*it)[1]));
        flows.emplace_back(e[0], std::move(v));
    }
    return flows;
}

}  // namespace

// --min-prob: exactly the flows whose top probability is below P become
// "unknown" (the guess kept in model_class), the rest are unchanged; --explain
// adds what each flow fed the model, consistent with its selected count.
TEST(Classify, MinProbLabelsUnsureFlowsUnknownAndExplainSaysWhatWasFed) {
    const std::string bin = etcpipe_bin();
    if (!fs::exists(bin)) GTEST_SKIP() << bin << " not built";
    SKIP_WITHOUT_TESTDATA("testdata/ndpi/pcap/skype.pcap");
    std::string plain, unsure;
    auto model = Model::load(kModel);
    ASSERT_TRUE(model.ok()) << model.error().message();
    const std::string cmd = bin + " classify testdata/ndpi/pcap/skype.pcap --model " + kModel + " --device cpu -q";
    ASSERT_EQ(run(cmd, &plain), 0) << plain;
    ASSERT_EQ(run(cmd + " --min-prob 0.6 --explain", &unsure), 0) << unsure;
    std::istringstream a(plain), b(unsure);
    std::string la, lb;
    const std::regex top("\"probability\":([0-9.e-]+)"), cls("\"class\":\"([^\"]*)\"");
    const std::regex guess("\"model_class\":\"([^\"]*)\""), fed("\"fed\":\\{\"payload_packets\":([0-9]+)");
    const std::regex sel("\"selected\":([0-9]+)");
    size_t flows = 0, unknown = 0;
    while (std::getline(a, la)) {
        ASSERT_TRUE(std::getline(b, lb));
        ++flows;
        std::smatch ta, ca, cb, g, f, s;
        ASSERT_TRUE(std::regex_search(la, ta, top) && std::regex_search(la, ca, cls)) << la;
        ASSERT_TRUE(std::regex_search(lb, cb, cls)) << lb;
        if (std::stod(ta[1]) < 0.6) {
            ++unknown;
            EXPECT_EQ(cb[1], "unknown") << lb;
            ASSERT_TRUE(std::regex_search(lb, g, guess)) << lb;
            EXPECT_EQ(g[1], ca[1]);
        } else {
            EXPECT_EQ(cb[1], ca[1]) << lb;
            EXPECT_EQ(lb.find("model_class"), std::string::npos) << lb;
        }
        ASSERT_TRUE(std::regex_search(lb, f, fed) && std::regex_search(lb, s, sel)) << lb;
        EXPECT_EQ(f[1], s[1]) << lb;
        for (const auto& feat : model->spec)  // every input of the model is explained
            EXPECT_NE(lb.find("\"name\":\"" + feat.name() + "\""), std::string::npos) << lb;
    }
    EXPECT_FALSE(std::getline(b, lb));
    EXPECT_GT(flows, 0u);
    std::printf("--min-prob 0.6: %zu of %zu flows unknown\n", unknown, flows);
    std::string out;
    EXPECT_EQ(run(cmd + " --min-prob 1.5", &out), 2) << out;
}

// The GPU path of classify: extractor rows kept on the device, handed to the
// engine there (no host round trip), against the CPU path on real captures.
TEST(Classify, GpuDevicePathMatchesCpu) {
    SKIP_WITHOUT_GPU(gpu_available);
    const std::string bin = etcpipe_bin();
    size_t compared = 0;
    for (const char* cap : {"skype.pcap", "quic.pcap", "signal.pcap", "android.pcap", "1kxun.pcap"}) {
        const std::string path = std::string("testdata/ndpi/pcap/") + cap;
        if (!fs::exists(path)) continue;
        std::string cpu, gpu;
        ASSERT_EQ(run(bin + " classify " + path + " --model " + kModel + " --device cpu -q", &cpu), 0) << cpu;
        ASSERT_EQ(run(bin + " classify " + path + " --model " + kModel + " --device gpu -q --batch 100", &gpu), 0) << gpu;
        const auto a = parse_classified(cpu), b = parse_classified(gpu);
        ASSERT_EQ(a.size(), b.size()) << cap;
        for (size_t i = 0; i < a.size(); ++i) {
            EXPECT_EQ(a[i].first, b[i].first) << cap << " flow " << i;
            ASSERT_EQ(a[i].second.size(), b[i].second.size());
            for (size_t c = 0; c < a[i].second.size(); ++c)
                EXPECT_NEAR(b[i].second[c], a[i].second[c], 1e-4 * std::max(1.0, std::fabs(a[i].second[c])))
                    << cap << " flow " << i << " class " << c;
        }
        compared += a.size();
    }
    std::printf("classify GPU (device-resident features) vs CPU: %zu flows compared\n", compared);
    EXPECT_GT(compared, 0u);
}
