// Unit tests for loader/nfp_check (`etcpipe check --target nfp`). No root
// needed: objects are only opened, never loaded. Each fixture in
// tests/bpf_progs/nfp_*.bpf.c breaks exactly one NFP offload rule (the tail
// call one needs a PROG_ARRAY, so it also breaks "map-type"); the table below
// names it. Objects are found under $ETCPIPE_BUILD (default "build").
#include <elf.h>
#include <gtest/gtest.h>
#include <linux/bpf.h>
#include <linux/btf.h>

#include <climits>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <set>
#include <string>
#include <utility>
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

// Both ANOVA objects (one per encoding, bpf/anova_prog.h) are offloadable
// and name their one program xdp_anova; the u32 one, the program meant for
// the NFP, keeps a margin: at most 75 % of the code store by the checker's
// own estimate, which has about ±20 % error.
TEST(NfpCheck, AnovaIsOffloadable) {
    struct Want {
        const char* object;
        size_t max_percent;  // of Report::nfp_limit
    };
    for (const Want& w : {Want{"anova.bpf.o", 75}, Want{"anova_f64.bpf.o", 100}}) {
        SCOPED_TRACE(w.object);
        const std::string path = build_dir() + "/bpf/" + w.object;
        ASSERT_TRUE(fs::exists(path)) << path << " missing: `make` builds it";
        const Report r = must_check(path);
        std::fputs(dump(r).c_str(), stdout);
        EXPECT_TRUE(r.offloadable()) << dump(r);
        ASSERT_EQ(r.programs.size(), 1u) << dump(r);
        const auto& p = r.programs.front();
        EXPECT_EQ(p.program, "xdp_anova");
        EXPECT_GT(p.nfp_insns, p.bpf_insns) << "every BPF instruction costs at least one";
        EXPECT_LE(p.nfp_insns * 100, r.nfp_limit * w.max_percent)
            << p.program << ": " << p.nfp_insns << " of " << r.nfp_limit << " NFP instructions";
        std::printf("[ estimate ] %s: %zu of %zu NFP instructions (%zu %%), %zu BPF\n", w.object,
                    p.nfp_insns, r.nfp_limit, p.nfp_insns * 100 / r.nfp_limit, p.bpf_insns);
        // The same object under that budget: the checker itself draws the
        // line (its insn-budget rule), not only this test's arithmetic.
        auto tight = check_object(path, r.nfp_limit * w.max_percent / 100);
        ASSERT_TRUE(tight) << tight.error().message();
        EXPECT_TRUE(tight->offloadable()) << dump(*tight);
        // One instruction less than the estimate, and only the budget fails.
        auto below = check_object(path, p.nfp_insns - 1);
        ASSERT_TRUE(below) << below.error().message();
        EXPECT_EQ(rules_of(*below), std::set<std::string>{"insn-budget"}) << dump(*below);
    }
}

// The in-NIC networks (issue 16): the digit CNN and the DSCP tagger pass
// every rule, within the code store by the checker's own estimate.
TEST(NfpCheck, InNicNetworksAreOffloadable) {
    for (const auto& [object, prog] : {std::pair{"nicnn.bpf.o", "xdp_nicnn"},
                                       std::pair{"pkttag.bpf.o", "xdp_pkttag"}}) {
        SCOPED_TRACE(object);
        const std::string path = build_dir() + "/bpf/" + object;
        ASSERT_TRUE(fs::exists(path)) << path << " missing: `make` builds it";
        const Report r = must_check(path);
        EXPECT_TRUE(r.offloadable()) << dump(r);
        ASSERT_EQ(r.programs.size(), 1u) << dump(r);
        const auto& p = r.programs.front();
        EXPECT_EQ(p.program, prog);
        EXPECT_LE(p.nfp_insns, r.nfp_limit) << dump(r);
        std::printf("[ estimate ] %s: %zu of %zu NFP instructions (%zu %%), %zu BPF\n", object,
                    p.nfp_insns, r.nfp_limit, p.nfp_insns * 100 / r.nfp_limit, p.bpf_insns);
    }
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

// ---- corrupt objects ---------------------------------------------------------
// Each test below takes a real built object, corrupts it in memory the way a
// truncated download, a bit flip or a hand-edited object would, writes it to
// a temporary file and checks it: the checker must answer with a Data/Bpf
// error or a report that is not offloadable, with the right rule, and never
// crash (these tests also run under ASan+UBSan). The byte offsets are found
// from the ELF headers, never hard-coded; instruction indexes are those of
// tests/bpf_progs/nfp_clean.bpf.c as clang -O2 builds it (the test checks the
// opcodes it patches, so a different build fails loudly, not silently).

namespace {

// A BPF object's bytes, and the few ELF lookups the corruption tests need.
struct ElfBytes {
    std::vector<uint8_t> b;

    static ElfBytes load(const std::string& path) {
        std::ifstream f(path, std::ios::binary);
        ElfBytes e;
        e.b.assign(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
        return e;
    }
    template <class T>
    [[nodiscard]] T get(size_t off) const {
        T v{};
        if (off + sizeof v <= b.size()) std::memcpy(&v, b.data() + off, sizeof v);
        return v;
    }
    template <class T>
    void put(size_t off, T v) {
        ASSERT_LE(off + sizeof v, b.size());
        std::memcpy(b.data() + off, &v, sizeof v);
    }
    [[nodiscard]] Elf64_Ehdr ehdr() const { return get<Elf64_Ehdr>(0); }
    [[nodiscard]] size_t shdr_off(size_t i) const { return ehdr().e_shoff + i * sizeof(Elf64_Shdr); }
    [[nodiscard]] Elf64_Shdr shdr(size_t i) const { return get<Elf64_Shdr>(shdr_off(i)); }
    [[nodiscard]] std::string sec_name(size_t i) const {
        const size_t at = shdr(ehdr().e_shstrndx).sh_offset + shdr(i).sh_name;
        return at < b.size() ? std::string(reinterpret_cast<const char*>(b.data() + at)) : "";
    }
    // Index of the section called `name`, 0 when there is none.
    [[nodiscard]] size_t sec(const std::string& name) const {
        for (size_t i = 1; i < ehdr().e_shnum; ++i)
            if (sec_name(i) == name) return i;
        return 0;
    }
    // File offset of instruction `idx` of section `name`.
    [[nodiscard]] size_t insn(const std::string& name, size_t idx) const {
        return shdr(sec(name)).sh_offset + 8 * idx;
    }
    [[nodiscard]] uint8_t opcode(const std::string& name, size_t idx) const {
        return get<uint8_t>(insn(name, idx));
    }
    void set_regs(const std::string& name, size_t idx, int dst, int src) {
        uint8_t r = get<uint8_t>(insn(name, idx) + 1);
        if (dst >= 0) r = static_cast<uint8_t>((r & 0xf0) | dst);
        if (src >= 0) r = static_cast<uint8_t>((r & 0x0f) | (src << 4));
        put<uint8_t>(insn(name, idx) + 1, r);
    }
    void set_off(const std::string& name, size_t idx, int16_t off) { put(insn(name, idx) + 2, off); }
    void set_imm(const std::string& name, size_t idx, int32_t imm) { put(insn(name, idx) + 4, imm); }
    void set_code(const std::string& name, size_t idx, uint8_t code) { put(insn(name, idx), code); }
};

// nfp_clean.bpf.o, with the instructions the tests patch checked.
ElfBytes clean_object() {
    ElfBytes e = ElfBytes::load(fixture("nfp_clean"));
    EXPECT_FALSE(e.b.empty()) << fixture("nfp_clean") << " missing: `make` builds it";
    if (e.b.empty()) return e;
    const std::pair<size_t, uint8_t> expect[] = {
        {3, BPF_ALU64 | BPF_MOV | BPF_X},  {4, BPF_ALU64 | BPF_ADD | BPF_K},
        {5, BPF_JMP | BPF_JGT | BPF_X},    {6, BPF_LDX | BPF_MEM | BPF_B},
        {8, BPF_ALU | BPF_LSH | BPF_K},    {10, BPF_ALU | BPF_MOV | BPF_K},
        {15, BPF_JMP | BPF_JGT | BPF_X},   {17, BPF_STX | BPF_MEM | BPF_W},
        {19, BPF_ALU64 | BPF_ADD | BPF_K}, {20, BPF_LD | BPF_IMM | BPF_DW},
        {22, BPF_JMP | BPF_CALL},          {26, BPF_LDX | BPF_MEM | BPF_W},
        {34, BPF_JMP | BPF_EXIT},
    };
    for (auto [idx, code] : expect)
        EXPECT_EQ(e.opcode("xdp", idx), code) << "nfp_clean insn " << idx << " changed: update the test";
    return e;
}

// Writes the bytes to a temporary file and checks it, like `etcpipe check`.
Result<Report> check_bytes(const ElfBytes& e, const std::string& tag) {
    const fs::path p = fs::temp_directory_path() / ("etcpipe_nfp_" + tag + ".bpf.o");
    std::ofstream(p, std::ios::binary).write(reinterpret_cast<const char*>(e.b.data()),
                                             static_cast<std::streamsize>(e.b.size()));
    auto r = check_object(p.string());
    fs::remove(p);
    return r;
}

Report must_check_bytes(const ElfBytes& e, const std::string& tag) {
    auto r = check_bytes(e, tag);
    if (!r) {
        ADD_FAILURE() << tag << ": " << r.error().message();
        return Report{};
    }
    return std::move(r).value();
}

const Violation* find(const Report& r, const std::string& rule, const std::string& in_message = {}) {
    for (const auto& v : r.violations)
        if (v.rule == rule && v.message.find(in_message) != std::string::npos) return &v;
    return nullptr;
}

}  // namespace

TEST(NfpCheck, UnpatchedCleanObjectStaysOffloadableThroughTheByteHelpers) {
    const ElfBytes e = clean_object();
    const Report r = must_check_bytes(e, "unpatched");
    EXPECT_TRUE(r.offloadable()) << dump(r);
}

// Bug: the ALU walker indexed the 11-entry register array with r14.
TEST(NfpCheck, RegisterNumbersAbove10AreMalformedNotARead) {
    struct Patch {
        size_t insn;
        int dst, src;  // -1: keep
        const char* what;
    };
    const Patch patches[] = {
        {4, 14, -1, "alu dst"},     {3, -1, 14, "alu src"},  {5, 15, -1, "jmp dst"},
        {5, -1, 12, "jmp src"},     {6, 11, -1, "ldx dst"},  {6, -1, 13, "ldx src"},
        {17, 14, -1, "stx base"},   {17, -1, 14, "stx src"}, {20, 14, -1, "ld_imm64 dst"},
        {22, 15, -1, "call dst"},   {34, 13, -1, "exit dst"},
    };
    for (const Patch& p : patches) {
        SCOPED_TRACE(p.what);
        ElfBytes e = clean_object();
        e.set_regs("xdp", p.insn, p.dst, p.src);
        const Report r = must_check_bytes(e, "reg");
        EXPECT_FALSE(r.offloadable());
        const int reg = p.dst >= 0 ? p.dst : p.src;
        const Violation* v = find(r, "malformed", "register r" + std::to_string(reg) + " does not exist");
        ASSERT_NE(v, nullptr) << dump(r);
        EXPECT_EQ(v->insn, static_cast<int>(p.insn));
        EXPECT_TRUE(v->unprovable);
        EXPECT_FALSE(v->hint.empty());
    }
    // The same in a real program of the project: anova's first ALU instruction.
    ElfBytes a = ElfBytes::load(build_dir() + "/bpf/anova.bpf.o");
    ASSERT_FALSE(a.b.empty());
    const size_t n = a.shdr(a.sec("xdp")).sh_size / 8;
    size_t alu = n;
    for (size_t i = 0; i < n && alu == n; ++i)
        if (BPF_CLASS(a.opcode("xdp", i)) == BPF_ALU64 || BPF_CLASS(a.opcode("xdp", i)) == BPF_ALU) alu = i;
    ASSERT_LT(alu, n);
    a.set_regs("xdp", alu, 14, -1);
    const Report r = must_check_bytes(a, "anova_reg");
    EXPECT_FALSE(r.offloadable());
    EXPECT_NE(find(r, "malformed", "r14 does not exist"), nullptr) << dump(r);
}

// Bug: stack slots computed from an instruction's offset were not all bounds-checked.
TEST(NfpCheck, StackAccessesOutsideTheFrameAreReported) {
    // insn 17: *(u32 *)(r10 - 4) = r1. Offsets that put any of its 4 bytes
    // outside [fp-512, fp) are stack-size violations; fp-512 itself is inside.
    for (const int16_t off : {int16_t{0}, int16_t{-2}, int16_t{-516}, int16_t{8},
                              int16_t{32767}, int16_t{-32768}}) {
        SCOPED_TRACE(off);
        ElfBytes e = clean_object();
        e.set_off("xdp", 17, off);
        const Report r = must_check_bytes(e, "stack_st");
        const Violation* v = find(r, "stack-size", "outside the 512-byte frame");
        ASSERT_NE(v, nullptr) << dump(r);
        EXPECT_EQ(v->insn, 17);
    }
    {
        ElfBytes e = clean_object();
        e.set_off("xdp", 17, -512);
        e.set_imm("xdp", 19, -512);  // the key pointer follows the key
        const Report r = must_check_bytes(e, "stack_edge");
        EXPECT_TRUE(r.offloadable()) << dump(r);
    }
    // A load from the stack: insn 26 becomes r2 = *(u32 *)(r10 - 2).
    {
        ElfBytes e = clean_object();
        e.set_regs("xdp", 26, -1, 10);
        e.set_off("xdp", 26, -2);
        const Report r = must_check_bytes(e, "stack_ld");
        const Violation* v = find(r, "stack-size");
        ASSERT_NE(v, nullptr) << dump(r);
        EXPECT_EQ(v->insn, 26);
    }
    // The map key pointer (insn 19: r2 += -4) moved out of the frame.
    for (const int32_t imm : {8, 0, -600, INT32_MIN, INT32_MAX}) {
        SCOPED_TRACE(imm);
        ElfBytes e = clean_object();
        e.set_imm("xdp", 19, imm);
        const Report r = must_check_bytes(e, "stack_key");
        const Violation* v = find(r, "helper-arg", "outside the 512-byte frame");
        ASSERT_NE(v, nullptr) << dump(r);
        EXPECT_EQ(v->insn, 22);
    }
}

TEST(NfpCheck, PacketAccessBeforeTheStartIsReported) {
    ElfBytes e = clean_object();
    e.set_off("xdp", 6, -1);  // r1 = *(u8 *)(r6 - 1), r6 = ctx->data
    const Report r = must_check_bytes(e, "pkt_neg");
    const Violation* v = find(r, "packet-offset", "before the start of the packet");
    ASSERT_NE(v, nullptr) << dump(r);
    EXPECT_EQ(v->insn, 6);
}

// Bug: the SEGV. libbpf 1.1 trusts the type ids in .BTF: a map definition
// member whose type id is past the last type made bpf_object__open
// dereference NULL. Such an object is a Data error now, before libbpf runs.
TEST(NfpCheck, CorruptBtfIsADataErrorNotACrash) {
    const ElfBytes clean = clean_object();
    const size_t sec = clean.sec(".BTF");
    ASSERT_NE(sec, 0u);
    const size_t base = clean.shdr(sec).sh_offset;
    const auto h = clean.get<btf_header>(base);
    ASSERT_EQ(h.magic, BTF_MAGIC);
    // Every type's file offset, by id (0: void), and the string section.
    std::vector<size_t> at{0};
    const size_t strs = base + h.hdr_len + h.str_off;
    size_t o = base + h.hdr_len + h.type_off;
    for (const size_t end = o + h.type_len; o < end;) {
        const auto t = clean.get<btf_type>(o);
        const uint32_t vlen = BTF_INFO_VLEN(t.info);
        size_t extra = 0;
        switch (BTF_INFO_KIND(t.info)) {
            case BTF_KIND_INT: case BTF_KIND_VAR: case BTF_KIND_DECL_TAG: extra = 4; break;
            case BTF_KIND_ARRAY: extra = sizeof(btf_array); break;
            case BTF_KIND_STRUCT: case BTF_KIND_UNION: extra = vlen * sizeof(btf_member); break;
            case BTF_KIND_ENUM: extra = vlen * sizeof(btf_enum); break;
            case BTF_KIND_ENUM64: extra = vlen * sizeof(btf_enum64); break;
            case BTF_KIND_FUNC_PROTO: extra = vlen * sizeof(btf_param); break;
            case BTF_KIND_DATASEC: extra = vlen * sizeof(btf_var_secinfo); break;
            default: break;
        }
        at.push_back(o);
        o += sizeof(btf_type) + extra;
    }
    auto type = [&](uint32_t id) { return clean.get<btf_type>(at.at(id)); };
    auto name = [&](uint32_t id) {
        return std::string(reinterpret_cast<const char*>(clean.b.data() + strs + type(id).name_off));
    };
    // The map definition libbpf parses: DATASEC ".maps" -> VAR -> STRUCT,
    // whose first member ("type") is what skip_mods_and_typedefs() follows.
    size_t member_type = 0, alias_type = 0;
    uint32_t alias_id = 0;
    for (uint32_t id = 1; id < at.size(); ++id) {
        const uint32_t kind = BTF_INFO_KIND(type(id).info);
        if (kind == BTF_KIND_DATASEC && name(id) == ".maps" && BTF_INFO_VLEN(type(id).info) > 0) {
            const auto var = clean.get<btf_var_secinfo>(at[id] + sizeof(btf_type)).type;
            const uint32_t def = type(var).type;
            ASSERT_EQ(BTF_INFO_KIND(type(def).info), static_cast<uint32_t>(BTF_KIND_STRUCT));
            member_type = at[def] + sizeof(btf_type) + offsetof(btf_member, type);
        }
        if ((kind == BTF_KIND_TYPEDEF || kind == BTF_KIND_CONST || kind == BTF_KIND_VOLATILE) &&
            !alias_type) {
            alias_type = at[id] + offsetof(btf_type, type);
            alias_id = id;
        }
    }
    ASSERT_NE(member_type, 0u);
    ASSERT_NE(alias_type, 0u);

    struct Case {
        const char* what;
        size_t at;
        uint32_t value;
        const char* detail;
    };
    const Case cases[] = {
        {"member type id past the end (the SEGV)", member_type,
         clean.get<uint32_t>(member_type) | 0xa0000000U, "out of range"},
        {"typedef/modifier naming itself (an endless loop in libbpf)", alias_type, alias_id, "loop"},
        {"type name past the string section", base + h.hdr_len + h.type_off, h.str_len + 100,
         "name offset"},
    };
    for (const Case& c : cases) {
        SCOPED_TRACE(c.what);
        ElfBytes e = clean;
        e.put(c.at, c.value);
        auto r = check_bytes(e, "btf");
        ASSERT_FALSE(r) << dump(*r);
        EXPECT_EQ(r.error().kind, ErrorKind::Data);
        EXPECT_EQ(r.error().operation, "read .BTF");
        EXPECT_NE(r.error().detail.find(c.detail), std::string::npos) << r.error().message();
    }
}

// Bug: a corrupt object was reported offloadable. An object whose code
// section lost its executable flag has no program for libbpf: nothing was
// walked, and the verdict read "offloadable".
TEST(NfpCheck, ObjectWithoutProgramsIsNotOffloadable) {
    ElfBytes e = clean_object();
    const size_t xdp = e.sec("xdp");
    e.put<uint64_t>(e.shdr_off(xdp) + offsetof(Elf64_Shdr, sh_flags), SHF_ALLOC);
    const Report r = must_check_bytes(e, "noprog");
    EXPECT_FALSE(r.offloadable()) << dump(r);
    EXPECT_TRUE(r.programs.empty());
    const Violation* v = find(r, "cannot-prove-elf", "no program");
    ASSERT_NE(v, nullptr) << dump(r);
    EXPECT_TRUE(v->unprovable);
    EXPECT_NE(dump(r).find("NOT offloadable"), std::string::npos);
}

// Code that the walk cannot finish is never passed: an endless loop, dead
// code, an exit with operands.
TEST(NfpCheck, EndlessLoopsDeadCodeAndBadExitsAreNotOffloadable) {
    {  // insn 34, the only exit, becomes `goto -1`
        ElfBytes e = clean_object();
        e.set_code("xdp", 34, BPF_JMP | BPF_JA);
        e.set_off("xdp", 34, -1);
        const Report r = must_check_bytes(e, "loop");
        EXPECT_FALSE(r.offloadable());
        const Violation* v = find(r, "cannot-prove-cfg", "no path from here reaches an exit");
        ASSERT_NE(v, nullptr) << dump(r);
        EXPECT_TRUE(v->unprovable);
        EXPECT_TRUE(has(r, "cannot-prove-cfg", "the walk reached no exit")) << dump(r);
    }
    {  // insn 5 `if r1 > r2 goto +28` becomes `goto +28`: insns 6-33 are dead
        ElfBytes e = clean_object();
        e.set_code("xdp", 5, BPF_JMP | BPF_JA);
        e.set_regs("xdp", 5, 0, 0);
        const Report r = must_check_bytes(e, "dead");
        const Violation* v = find(r, "cannot-prove-cfg", "unreachable");
        ASSERT_NE(v, nullptr) << dump(r);
        EXPECT_EQ(v->insn, 6);
    }
    {  // exit with a nonzero immediate: not an exit the kernel decodes
        ElfBytes e = clean_object();
        e.set_imm("xdp", 34, -1);
        const Report r = must_check_bytes(e, "exit_imm");
        const Violation* v = find(r, "malformed", "exit with operands");
        ASSERT_NE(v, nullptr) << dump(r);
        EXPECT_EQ(v->insn, 34);
    }
}

TEST(NfpCheck, JumpsOutOfTheProgramAndCutLdImm64AreReported) {
    {  // insn 5 jumps 1000 instructions ahead, past the end
        ElfBytes e = clean_object();
        e.set_off("xdp", 5, 1000);
        const Report r = must_check_bytes(e, "jmp_out");
        const Violation* v = find(r, "cannot-prove-cfg", "leaves the function");
        ASSERT_NE(v, nullptr) << dump(r);
        EXPECT_EQ(v->insn, 5);
    }
    {  // insn 5 jumps backwards before the start
        ElfBytes e = clean_object();
        e.set_off("xdp", 5, -100);
        const Report r = must_check_bytes(e, "jmp_before");
        EXPECT_NE(find(r, "cannot-prove-cfg", "leaves the function"), nullptr) << dump(r);
    }
    {  // insn 15 jumps into the second half of the ld_imm64 at 20
        ElfBytes e = clean_object();
        e.set_off("xdp", 15, 5);
        const Report r = must_check_bytes(e, "jmp_imm64");
        const Violation* v = find(r, "malformed", "second half of an ld_imm64");
        ASSERT_NE(v, nullptr) << dump(r);
        EXPECT_EQ(v->insn, 21);
    }
    {  // the last instruction (the exit) becomes the first half of an ld_imm64
        ElfBytes e = clean_object();
        e.set_code("xdp", 34, BPF_LD | BPF_IMM | BPF_DW);
        const Report r = must_check_bytes(e, "imm64_last");
        const Violation* v = find(r, "malformed", "ld_imm64 without its second half");
        ASSERT_NE(v, nullptr) << dump(r);
        EXPECT_EQ(v->insn, 34);
        EXPECT_FALSE(r.offloadable());
    }
}

// The kernel checks every jump, taken or not; this one never is (r0 == 1).
TEST(NfpCheck, DeadJumpOutOfTheProgramIsStillReported) {
    ElfBytes e = clean_object();
    e.set_code("xdp", 10, BPF_JMP | BPF_JEQ | BPF_K);  // if r0 == 2 goto -32768
    e.set_regs("xdp", 10, 0, 0);
    e.set_off("xdp", 10, INT16_MIN);
    e.set_imm("xdp", 10, 2);
    const Report r = must_check_bytes(e, "dead_jmp");
    const Violation* v = find(r, "cannot-prove-cfg", "leaves the function");
    ASSERT_NE(v, nullptr) << dump(r);
    EXPECT_EQ(v->insn, 10);
    EXPECT_FALSE(v->hint.empty());
}

TEST(NfpCheck, InvalidShiftsAndLegacyLoadsInXdpAreReported) {
    for (const int32_t sh : {32, 64, -1, INT32_MAX}) {  // insn 8: w3 <<= 8
        SCOPED_TRACE(sh);
        ElfBytes e = clean_object();
        e.set_imm("xdp", 8, sh);
        const Report r = must_check_bytes(e, "shift");
        const Violation* v = find(r, "malformed", "shift by " + std::to_string(sh));
        ASSERT_NE(v, nullptr) << dump(r);
        EXPECT_EQ(v->insn, 8);
    }
    ElfBytes e = clean_object();  // insn 26 becomes r0 = *(u32 *)skb[1]
    e.set_code("xdp", 26, BPF_LD | BPF_ABS | BPF_W);
    e.set_regs("xdp", 26, 0, 0);
    e.set_off("xdp", 26, 0);
    e.set_imm("xdp", 26, 1);
    const Report r = must_check_bytes(e, "ld_abs");
    const Violation* v = find(r, "opcode", "legacy packet load");
    ASSERT_NE(v, nullptr) << dump(r);
    EXPECT_EQ(v->insn, 26);
}

// What libbpf refuses to open is a Bpf error, never a crash; its own error
// codes (4000 up, enum libbpf_errno) read as text, not "Unknown error 4001".
TEST(NfpCheck, LibbpfFormatErrorsAreNamed) {
    const ElfBytes clean = clean_object();
    const size_t rel = clean.sec(".relxdp");
    ASSERT_NE(rel, 0u);
    const size_t rel0 = clean.shdr(rel).sh_offset;
    const size_t xdp = clean.sec("xdp");
    struct Case {
        const char* what;
        std::function<void(ElfBytes&)> patch;
    };
    const Case cases[] = {
        {"relocation symbol index out of range",
         [&](ElfBytes& e) { e.put<uint64_t>(rel0 + 8, (uint64_t{100000} << 32) | 1); }},
        {"relocation past the code", [&](ElfBytes& e) { e.put<uint64_t>(rel0, 8 * 100000); }},
        {"relocation not on an instruction", [&](ElfBytes& e) { e.put<uint64_t>(rel0, 8 * 20 + 4); }},
        {"code section cut short", [&](ElfBytes& e) {
             e.put<uint64_t>(e.shdr_off(xdp) + offsetof(Elf64_Shdr, sh_size), 80);
         }},
        {"code section size not a multiple of 8", [&](ElfBytes& e) {
             e.put<uint64_t>(e.shdr_off(xdp) + offsetof(Elf64_Shdr, sh_size), e.shdr(xdp).sh_size - 4);
         }},
        {"code past the end of the file", [&](ElfBytes& e) {
             e.put<uint64_t>(e.shdr_off(xdp) + offsetof(Elf64_Shdr, sh_offset), 1 << 20);
         }},
        {"executable instead of relocatable", [&](ElfBytes& e) {
             e.put<uint16_t>(offsetof(Elf64_Ehdr, e_type), ET_EXEC);
         }},
    };
    for (const Case& c : cases) {
        SCOPED_TRACE(c.what);
        ElfBytes e = clean;
        c.patch(e);
        auto r = check_bytes(e, "libbpf");
        ASSERT_FALSE(r) << dump(*r);  // libbpf 1.1 refuses each of these
        EXPECT_EQ(r.error().kind, ErrorKind::Bpf);
        const std::string m = r.error().message();
        EXPECT_EQ(m.find("Unknown error"), std::string::npos) << m;
        EXPECT_NE(m.find("BPF object format invalid"), std::string::npos) << m;
    }
}

// Reading the file and checking its bytes in memory give the same report.
TEST(NfpCheck, InMemoryCheckMatchesTheFileCheck) {
    for (const std::string& path : {build_dir() + "/bpf/anova.bpf.o", build_dir() + "/bpf/anova_f64.bpf.o",
                                   build_dir() + "/bpf/flowmgr.bpf.o", fixture("nfp_tail_call")}) {
        SCOPED_TRACE(path);
        const ElfBytes e = ElfBytes::load(path);
        auto mem = check_object_mem(e.b, path);
        ASSERT_TRUE(mem) << mem.error().message();
        const Report file = must_check(path);
        EXPECT_EQ(dump(*mem), dump(file));
    }
    auto empty = check_object_mem({}, "empty.bpf.o");
    ASSERT_FALSE(empty);
    EXPECT_EQ(empty.error().kind, ErrorKind::Data);
}
