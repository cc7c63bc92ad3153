// NFP checker, 1. ELF reading: the code of a BPF object read straight from
// its ELF (executable sections, function symbols, relocations).
#include <gelf.h>
#include <libelf.h>

#include <cerrno>

#include "nfp/checker_internal.hpp"

#ifndef EM_BPF
#define EM_BPF 247
#endif

namespace etcpipe::nfp::checker {
namespace {

struct ElfCloser {
    Elf* e = nullptr;
    ~ElfCloser() {
        if (e) elf_end(e);
    }
};

// What the pass over the section headers finds beside the code.
struct ElfIndex {
    Elf* e = nullptr;
    size_t nsec = 0;
    Elf_Data* symtab = nullptr;
    size_t strtab = 0;                                  // section holding the symbol names
    std::vector<std::pair<size_t, Elf_Scn*>> rel_secs;  // (target section, rel scn)
    std::string btf_error;                              // a .BTF libbpf must not see

    bool sym_at(size_t i, GElf_Sym& s) const {
        return gelf_getsym(symtab, static_cast<int>(i), &s) != nullptr;
    }
    [[nodiscard]] std::string sym_name(const GElf_Sym& s) const {
        const char* nm = elf_strptr(e, strtab, s.st_name);
        return nm ? nm : "";
    }
};

std::vector<Insn> decode_insns(const Elf_Data* d) {
    const size_t n = d->d_size / 8;
    const auto* raw = static_cast<const uint8_t*>(d->d_buf);
    std::vector<Insn> insns(n);
    for (size_t i = 0; i < n; ++i) {
        const uint8_t* p = raw + 8 * i;
        Insn& in = insns[i];
        in.code = p[0];
        in.dst = p[1] & 0x0f;  // little-endian BPF objects only (read_image checks)
        in.src = static_cast<uint8_t>(p[1] >> 4);
        in.off = static_cast<int16_t>(p[2] | (p[3] << 8));
        in.imm = static_cast<int32_t>(static_cast<uint32_t>(p[4]) |
                                      (static_cast<uint32_t>(p[5]) << 8) |
                                      (static_cast<uint32_t>(p[6]) << 16) |
                                      (static_cast<uint32_t>(p[7]) << 24));
    }
    return insns;
}

// Reads one executable section's code; what is missing or cut short is a defect.
void read_code(Elf_Scn* scn, const GElf_Shdr& sh, Section& sec, Image& img) {
    const std::string what = "code section '" + sec.name + "'";
    Elf_Data* d = elf_getdata(scn, nullptr);
    if (!d) {
        img.defects.push_back(what + ": its " + std::to_string(sh.sh_size) +
                              " B cannot be read (" + elf_errmsg(-1) + ")");
        return;
    }
    const size_t have = d->d_buf ? d->d_size : 0;
    if (have != sh.sh_size) {
        img.defects.push_back(what + ": " + std::to_string(have) + " of " +
                              std::to_string(sh.sh_size) + " B readable");
        if (!d->d_buf) return;
    }
    if (d->d_size % 8 != 0)
        img.defects.push_back(what + ": size " + std::to_string(d->d_size) +
                              " B is not a multiple of the 8-byte instruction");
    sec.insns = decode_insns(d);
}

// Names every section, decodes the executable ones, finds the symbol table
// and the relocation sections.
void read_sections(ElfIndex& x, size_t shstrndx, Image& img) {
    img.secs.resize(x.nsec);
    for (Elf_Scn* scn = elf_nextscn(x.e, nullptr); scn; scn = elf_nextscn(x.e, scn)) {
        GElf_Shdr sh;
        const size_t idx = elf_ndxscn(scn);
        if (idx >= x.nsec) continue;
        if (!gelf_getshdr(scn, &sh)) {
            img.defects.push_back("section #" + std::to_string(idx) + ": unreadable header");
            continue;
        }
        const char* nm = elf_strptr(x.e, shstrndx, sh.sh_name);
        img.secs[idx].name = nm ? nm : "";
        if (sh.sh_type == SHT_PROGBITS && (sh.sh_flags & SHF_EXECINSTR)) {
            img.secs[idx].exec = true;
            read_code(scn, sh, img.secs[idx], img);
        } else if (sh.sh_type == SHT_PROGBITS && img.secs[idx].name == ".BTF") {
            // libbpf takes the last section of that name: check each one.
            Elf_Data* d = elf_getdata(scn, nullptr);
            if (d && d->d_buf) {
                auto bad = btf_defect({static_cast<const uint8_t*>(d->d_buf), d->d_size});
                if (bad && x.btf_error.empty()) x.btf_error = *bad;
            }
        } else if (sh.sh_type == SHT_SYMTAB) {
            x.symtab = elf_getdata(scn, nullptr);
            x.strtab = sh.sh_link;
        } else if (sh.sh_type == SHT_REL) {
            x.rel_secs.emplace_back(sh.sh_info, scn);
        }
    }
}

// A function symbol must start and end on instruction boundaries inside its
// section; one that does not is kept (clamped where it is walked) and noted.
void read_funcs(const ElfIndex& x, Image& img) {
    const size_t nsyms = x.symtab->d_size / sizeof(Elf64_Sym);
    for (size_t i = 0; i < nsyms; ++i) {
        GElf_Sym s;
        if (!x.sym_at(i, s) || GELF_ST_TYPE(s.st_info) != STT_FUNC) continue;
        if (s.st_shndx >= x.nsec || !img.secs[s.st_shndx].exec) continue;
        const Section& sec = img.secs[s.st_shndx];
        const std::string name = x.sym_name(s);
        const uint64_t bytes = sec.insns.size() * 8;
        if (s.st_value % 8 != 0 || s.st_size % 8 != 0)
            img.defects.push_back("function '" + name + "': offset " + std::to_string(s.st_value) +
                                  " or size " + std::to_string(s.st_size) +
                                  " not on an 8-byte instruction boundary");
        else if (s.st_value > bytes || s.st_size > bytes - s.st_value)
            img.defects.push_back("function '" + name + "' (offset " + std::to_string(s.st_value) +
                                  ", " + std::to_string(s.st_size) + " B) extends past section '" +
                                  sec.name + "' (" + std::to_string(bytes) + " B of code)");
        img.funcs.push_back(Func{name, s.st_shndx, s.st_value / 8, s.st_size / 8});
    }
}

Rel classify_rel(const Image& img, const ElfIndex& x, const GElf_Sym& s, const Insn& at) {
    Rel rel;
    rel.sym = x.sym_name(s);
    const std::string owner =
        s.st_shndx != SHN_UNDEF && s.st_shndx < x.nsec ? img.secs[s.st_shndx].name : "";
    if (rel.sym.empty()) rel.sym = owner;
    if (at.code == (BPF_JMP | BPF_CALL)) {
        rel.kind = RelKind::Call;
        rel.target_sec = s.st_shndx;
        rel.target = static_cast<int64_t>(s.st_value / 8) + at.imm + 1;
    } else if (owner == ".maps" || owner == "maps") {
        rel.kind = RelKind::Map;
    } else {
        rel.kind = RelKind::Global;  // .data/.rodata/.bss/.kconfig/externs
        if (rel.sym.empty()) rel.sym = "extern";
    }
    return rel;
}

// Relocations of code: each must name a symbol that exists and an
// instruction that takes one (an ld_imm64 or a call); anything else leaves
// an instruction whose operand the checker does not know.
void read_relocations(const ElfIndex& x, Image& img) {
    for (auto [target, scn] : x.rel_secs) {
        if (target >= x.nsec || !img.secs[target].exec) continue;
        Section& sec = img.secs[target];
        const std::string what = "relocations of '" + sec.name + "'";
        Elf_Data* d = elf_getdata(scn, nullptr);
        GElf_Shdr sh;
        if (!d || !gelf_getshdr(scn, &sh) || sh.sh_entsize == 0 || d->d_size != sh.sh_size) {
            img.defects.push_back(what + ": section unreadable or truncated");
            if (!d) continue;
        }
        const size_t n = d->d_size / sizeof(Elf64_Rel);
        for (size_t i = 0; i < n; ++i) {
            GElf_Rel r;
            GElf_Sym s;
            const std::string entry = what + " #" + std::to_string(i);
            if (!gelf_getrel(d, static_cast<int>(i), &r)) {
                img.defects.push_back(entry + ": unreadable");
                continue;
            }
            if (!x.sym_at(GELF_R_SYM(r.r_info), s)) {
                img.defects.push_back(entry + ": symbol index " +
                                      std::to_string(GELF_R_SYM(r.r_info)) + " out of range");
                continue;
            }
            const size_t at = r.r_offset / 8;
            if (r.r_offset % 8 != 0 || at >= sec.insns.size()) {
                img.defects.push_back(entry + ": offset " + std::to_string(r.r_offset) +
                                      " is no instruction of the section (" +
                                      std::to_string(sec.insns.size()) + " instructions)");
                continue;
            }
            const Insn& in = sec.insns[at];
            if (in.code != kLdImm64 && in.code != (BPF_JMP | BPF_CALL)) {
                img.defects.push_back(entry + ": instruction " + std::to_string(at) + " (opcode " +
                                      std::to_string(in.code) + ") is neither ld_imm64 nor a call");
                continue;
            }
            sec.rels[at] = classify_rel(img, x, s, in);
        }
    }
}

}  // namespace

Result<Image> read_image(std::span<const uint8_t> bytes, const std::string& name) {
    if (elf_version(EV_CURRENT) == EV_NONE)
        return make_error(ErrorKind::Bpf, 0, name, "libelf init", elf_errmsg(-1));
    static constexpr const char* kHint = "pass a BPF object built with clang -target bpf";
    // libelf reads the image in place and may convert it there: give it a
    // private copy (aligned for it by operator new), alive as long as it is.
    std::vector<char> buf(bytes.begin(), bytes.end());
    ElfCloser h;
    h.e = elf_memory(buf.data(), buf.size());
    GElf_Ehdr eh;
    if (!h.e || elf_kind(h.e) != ELF_K_ELF || !gelf_getehdr(h.e, &eh))
        return make_error(ErrorKind::Data, 0, name, "read ELF header", "not an ELF file", kHint);
    if (eh.e_machine != EM_BPF)
        return make_error(ErrorKind::Data, 0, name, "read ELF header",
                          "ELF machine " + std::to_string(eh.e_machine) + " is not BPF", kHint);
    if (eh.e_ident[EI_CLASS] != ELFCLASS64 || eh.e_ident[EI_DATA] != ELFDATA2LSB)
        return make_error(ErrorKind::Data, 0, name, "read ELF header",
                          "not a 64-bit little-endian ELF (class " +
                              std::to_string(eh.e_ident[EI_CLASS]) + ", data " +
                              std::to_string(eh.e_ident[EI_DATA]) + ")",
                          "build with clang -target bpfel (the default -target bpf on x86)");
    ElfIndex x;
    x.e = h.e;
    size_t shstrndx = 0;
    if (elf_getshdrstrndx(h.e, &shstrndx) != 0 || elf_getshdrnum(h.e, &x.nsec) != 0)
        return make_error(ErrorKind::Data, 0, name, "read ELF sections", elf_errmsg(-1), kHint);

    Image img;
    read_sections(x, shstrndx, img);
    if (!x.btf_error.empty())
        return make_error(ErrorKind::Data, 0, name, "read .BTF", x.btf_error,
                          "the object is corrupt: rebuild it with clang -g -O2 -target bpf");
    if (!x.symtab)
        return make_error(ErrorKind::Data, 0, name, "read ELF symbols", "no symbol table",
                          "do not strip BPF objects");
    read_funcs(x, img);
    read_relocations(x, img);
    return img;
}

}  // namespace etcpipe::nfp::checker
