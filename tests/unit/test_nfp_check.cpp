// Unit tests for loader/nfp_check (`etcpipe check --target nfp`). No root
// needed: objects are only opened, never loaded. Each fixture in
// tests/bpf_progs/nfp_*.bpf.c breaks exactly one NFP offload rule (the tail
// call one needs a PROG_ARRAY, so it also breaks "map-type"); the table below
// names it. Objects are found under $ETCPIPE_BUILD (default "build").
#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>
#include <string>
#include <vector>

#include "nfp/nfp_check.hpp"
#include "tests/common/build_dir.hpp"

namespace fs = std::filesystem;
using namespace etcpipe;
using namespace etcpipe::nfp;

using etcpipe::testing::build_dir;

namespace {

std::string fixture(const std::string& name) {
    return build_dir() + "/tests/bpf_progs/" + name + ".bpf.o";
}

std::set<std::string> rules_of(const Report& r) {
    std::set<std::string> s;
    for (const auto& v : r.violations) s.insert(v.rule);
    return s;
}

bool has(const Report& r, const std::string& rule, const std::string& in_message = {}) {
    for (const auto& v : r.violations)
        if (v.rule == rule && v.message.find(in_message) != std::string::npos) return true;
    return false;
}

std::string dump(const Report& r) {
    char* buf = nullptr;
    size_t len = 0;
    std::FILE* f = open_memstream(&buf, &len);
    print_report(f, r);
    std::fclose(f);
    std::string s(buf, len);
    std::free(buf);
    return s;
}

Report must_check(const std::string& path) {
    auto r = check_object(path);
    if (!r) {
        ADD_FAILURE() << "check_object(" << path << "): " << r.error().message();
        return Report{};
    }
    return std::move(r).value();
}

struct Case {
    const char* fixture;
    std::set<std::string> rules;  // exactly these rule ids
    bool insn_tied;                // the violation names an instruction
};

const Case kCases[] = {
    {"nfp_mod", {"opcode-mod"}, true},
    {"nfp_div_var", {"div"}, true},
    {"nfp_mul_unbounded", {"mul-operand-range"}, true},
    {"nfp_helper", {"helper"}, true},
    {"nfp_helper_firmware", {"helper-firmware"}, true},
    {"nfp_map_type", {"map-type"}, false},
    {"nfp_map_flags", {"map-flags"}, false},
    {"nfp_map_size", {"map-size"}, false},
    {"nfp_global_data", {"global-data"}, true},
    {"nfp_ctx_field", {"ctx-field"}, true},
    {"nfp_stack", {"stack-variable-offset"}, true},
    {"nfp_return_code", {"return-code"}, true},
    {"nfp_tail_call", {"tail-call", "map-type"}, true},
    {"nfp_packet_offset", {"packet-offset"}, true},
    {"nfp_atomic_fetch", {"atomic"}, true},
    {"nfp_map_write", {"map-write"}, true},
    {"nfp_st_imm", {"st-imm"}, true},
    {"nfp_sign_extend", {"sign-extend"}, true},
    {"nfp_prog_type", {"prog-type"}, false},
};

}  // namespace

TEST(NfpCheck, CleanFixtureIsOffloadableWithEstimate) {
    const Report r = must_check(fixture("nfp_clean"));
    EXPECT_TRUE(r.offloadable()) << dump(r);
    ASSERT_EQ(r.programs.size(), 1u);
    EXPECT_EQ(r.programs[0].program, "nfp_clean");
    EXPECT_EQ(r.programs[0].section, "xdp");
    EXPECT_GT(r.programs[0].bpf_insns, 0u);
    EXPECT_GT(r.programs[0].nfp_insns, r.programs[0].bpf_insns);
    EXPECT_LT(r.programs[0].nfp_insns, r.nfp_limit);
    const std::string text = dump(r);
    EXPECT_NE(text.find("NFP instructions (estimate) of 2560"), std::string::npos) << text;
    EXPECT_NE(text.find("offloadable"), std::string::npos) << text;
}

TEST(NfpCheck, EachFixtureBreaksItsRule) {
    for (const Case& c : kCases) {
        SCOPED_TRACE(c.fixture);
        const Report r = must_check(fixture(c.fixture));
        EXPECT_FALSE(r.offloadable());
        EXPECT_EQ(rules_of(r), c.rules) << dump(r);
        for (const auto& v : r.violations) {
            EXPECT_FALSE(v.message.empty());
            EXPECT_FALSE(v.hint.empty()) << v.rule;
            if (c.insn_tied && v.rule != "map-type" && v.rule != "global-data") {
                EXPECT_GE(v.insn, 0) << v.rule;
            }
        }
        ASSERT_EQ(r.programs.size(), 1u);
        EXPECT_GT(r.programs[0].nfp_insns, 0u);
    }
}

TEST(NfpCheck, UnprovableMultiplyIsReportedAsSuch) {
    const Report r = must_check(fixture("nfp_mul_unbounded"));
    ASSERT_EQ(r.violations.size(), 1u) << dump(r);
    EXPECT_TRUE(r.violations[0].unprovable);
    EXPECT_NE(r.violations[0].message.find("cannot prove ≤ 2^32−1"), std::string::npos);
}

TEST(NfpCheck, ViolationsNameInstructionAndReturnCode) {
    const Report r = must_check(fixture("nfp_return_code"));
    ASSERT_EQ(r.violations.size(), 1u) << dump(r);
    EXPECT_EQ(r.violations[0].program, "nfp_return_code");
    EXPECT_EQ(r.violations[0].insn, 1);  // r0 = 4; exit
    EXPECT_NE(r.violations[0].message.find("XDP_REDIRECT"), std::string::npos);
    EXPECT_FALSE(r.violations[0].unprovable);
}

TEST(NfpCheck, TinyBudgetTripsInsnBudget) {
    auto r = check_object(fixture("nfp_clean"), 10);
    ASSERT_TRUE(r) << r.error().message();
    EXPECT_EQ(rules_of(*r), std::set<std::string>{"insn-budget"}) << dump(*r);
    EXPECT_EQ(r->nfp_limit, 10u);
}

TEST(NfpCheck, FlowmgrIsNotOffloadableForItsRealReasons) {
    const std::string path = build_dir() + "/bpf/flowmgr.bpf.o";
    const Report r = must_check(path);
    std::fputs(dump(r).c_str(), stdout);
    EXPECT_FALSE(r.offloadable());
    EXPECT_TRUE(has(r, "map-type", "lru_hash"));
    EXPECT_TRUE(has(r, "map-type", "percpu_array"));
    EXPECT_TRUE(has(r, "map-type", "ringbuf"));
    EXPECT_TRUE(has(r, "map-type", "xskmap"));
    EXPECT_TRUE(has(r, "map-type", "lpm_trie"));
    EXPECT_TRUE(has(r, "map-flags"));
    EXPECT_TRUE(has(r, "global-data", ".rodata"));
    EXPECT_TRUE(has(r, "helper", "bpf_redirect_map"));
    EXPECT_TRUE(has(r, "helper", "bpf_ktime_get_ns"));
    EXPECT_TRUE(has(r, "helper", "bpf_ringbuf"));
    EXPECT_TRUE(has(r, "ctx-field", "data_meta"));
}

TEST(NfpCheck, AnovaIsOffloadable) {
    const std::string path = build_dir() + "/bpf/anova.bpf.o";
    ASSERT_TRUE(fs::exists(path)) << path << " missing: `make` builds it";
    const Report r = must_check(path);
    std::fputs(dump(r).c_str(), stdout);
    EXPECT_TRUE(r.offloadable()) << dump(r);
    ASSERT_FALSE(r.programs.empty());
    for (const auto& p : r.programs) EXPECT_LE(p.nfp_insns, r.nfp_limit) << p.program;
}

TEST(NfpCheck, MissingFileIsAnIoError) {
    auto r = check_object(build_dir() + "/tests/bpf_progs/does_not_exist.bpf.o");
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().kind, ErrorKind::Io);
    EXPECT_EQ(r.error().code, ENOENT);
}

TEST(NfpCheck, NonBpfFileIsADataError) {
    const fs::path p = fs::temp_directory_path() / "etcpipe_nfp_not_elf.o";
    std::ofstream(p) << "definitely not an ELF file\n";
    auto r = check_object(p.string());
    fs::remove(p);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().kind, ErrorKind::Data);

    // A host ELF (this test binary) is ELF but not BPF.
    auto self = check_object("/proc/self/exe");
    ASSERT_FALSE(self);
    EXPECT_EQ(self.error().kind, ErrorKind::Data);
}
