// Static check: can a BPF ELF object be offloaded to a Netronome NFP SmartNIC?
//
// `etcpipe check --target nfp OBJ` runs check_object() on each object. It never
// loads anything into the kernel: the object is opened with libbpf (program
// types, maps) and its code is read straight from the ELF (instructions and
// relocations), then every program is walked by a small forward abstract
// interpreter that tracks, per register and per constant-offset stack slot,
// either an unsigned interval (scalars) or a pointer kind plus an offset
// interval (ctx, stack, packet, map value). The rules are those of SPEC §6
// ("NFP offload rules"), taken from the kernel's nfp/bpf verifier and JIT and
// Netronome's public firmware. Anything the analysis cannot prove is reported
// (unprovable = true), never passed silently.
//
// Rule ids (Violation::rule): prog-type, opcode-mod, div, mul-operand-range,
// sign-extend, alu-offset, bswap, st-imm, atomic, opcode, helper,
// helper-firmware, helper-arg, tail-call, map-type, map-flags, map-size,
// map-write, map-variable-offset, global-data, ctx-field, stack-size,
// stack-variable-offset, packet-offset, return-code, insn-budget, and
// cannot-prove-{analysis,cfg,call,elf} when the checker itself gives up;
// "malformed" is an instruction the kernel would refuse to decode (register
// r11-r15, a write to r10, a cut or entered ld_imm64), "cannot-prove-elf"
// also an object it could not read in full (truncated or misaligned code,
// relocations to nothing, a program with no instructions) and
// "cannot-prove-cfg" also dead code.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <span>
#include <string>
#include <vector>

#include "common/result.hpp"

namespace etcpipe::nfp {

struct Violation {
    std::string program;  // program name; empty for object-level findings (maps)
    int insn = -1;        // instruction index in the program; -1: not tied to one
    std::string rule;     // stable id: "opcode-mod", "mul-operand-range", "helper", ...
    std::string message;
    std::string hint;
    bool unprovable = false;  // the analysis could not show the rule holds
};

struct ProgramEstimate {
    std::string program;
    std::string section;
    size_t bpf_insns = 0;
    size_t nfp_insns = 0;  // estimate, see the cost model in cost_model.cpp
};

struct Report {
    std::string object;
    std::vector<Violation> violations;
    std::vector<ProgramEstimate> programs;
    size_t nfp_limit = 2560;
    [[nodiscard]] bool offloadable() const { return violations.empty(); }
};

// Io error when the file cannot be read, Data error when it is not a BPF
// ELF, Bpf error when libbpf cannot open it. Any other object, however
// corrupt, gives a Report; one the checker could not read or walk in full is
// never offloadable ("malformed" and "cannot-prove-*" violations).
[[nodiscard]] Result<Report> check_object(const std::string& path, size_t nfp_limit = 2560);

// The same on an object in memory (check_object reads the file, then calls
// this); `name` stands for the object in the report and in errors, and names
// it for libbpf as its file name would.
[[nodiscard]] Result<Report> check_object_mem(std::span<const uint8_t> bytes,
                                              const std::string& name, size_t nfp_limit = 2560);

// Each violation (program, insn, rule, message, hint), then one estimate line
// per program, then a verdict line.
void print_report(std::FILE* out, const Report& r);

}  // namespace etcpipe::nfp
