// NFP checker, 1. ELF reading: the code of a BPF object read straight from
// its ELF (executable sections, function symbols, relocations).
#include <fcntl.h>
#include <gelf.h>
#include <libelf.h>
#include <unistd.h>

#include <cerrno>

#include "nfp/checker_internal.hpp"

#ifndef EM_BPF
#define EM_BPF 247
#endif

namespace etcpipe::nfp::checker {
namespace {

struct ElfCloser {
    Elf* e = nullptr;
    int fd = -1;
    ~ElfCloser() {
        if (e) elf_end(e);
        if (fd >= 0) close(fd);
    }
};

// What the pass over the section headers finds beside the code.
struct ElfIndex {
    Elf* e = nullptr;
    size_t nsec = 0;
    Elf_Data* symtab = nullptr;
    size_t strtab = 0;                                  // section holding the symbol names
    std::vector<std::pair<size_t, Elf_Scn*>> rel_secs;  // (target section, rel scn)

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
        in.dst = p[1] & 0x0f;  // little-endian BPF objects only
        in.src = static_cast<uint8_t>(p[1] >> 4);
        in.off = static_cast<int16_t>(p[2] | (p[3] << 8));
        in.imm = static_cast<int32_t>(static_cast<uint32_t>(p[4]) |
                                      (static_cast<uint32_t>(p[5]) << 8) |
                                      (static_cast<uint32_t>(p[6]) << 16) |
                                      (static_cast<uint32_t>(p[7]) << 24));
    }
    return insns;
}

// Names every section, decodes the executable ones, finds the symbol table
// and the relocation sections.
void read_sections(ElfIndex& x, size_t shstrndx, Image& img) {
    img.secs.resize(x.nsec);
    for (Elf_Scn* scn = elf_nextscn(x.e, nullptr); scn; scn = elf_nextscn(x.e, scn)) {
        GElf_Shdr sh;
        if (!gelf_getshdr(scn, &sh)) continue;
        size_t idx = elf_ndxscn(scn);
        const char* nm = elf_strptr(x.e, shstrndx, sh.sh_name);
        img.secs[idx].name = nm ? nm : "";
        if (sh.sh_type == SHT_PROGBITS && (sh.sh_flags & SHF_EXECINSTR)) {
            img.secs[idx].exec = true;
            Elf_Data* d = elf_getdata(scn, nullptr);
            if (!d || !d->d_buf) continue;
            img.secs[idx].insns = decode_insns(d);
        } else if (sh.sh_type == SHT_SYMTAB) {
            x.symtab = elf_getdata(scn, nullptr);
            x.strtab = sh.sh_link;
        } else if (sh.sh_type == SHT_REL) {
            x.rel_secs.emplace_back(sh.sh_info, scn);
        }
    }
}

void read_funcs(const ElfIndex& x, Image& img) {
    const size_t nsyms = x.symtab->d_size / sizeof(Elf64_Sym);
    for (size_t i = 0; i < nsyms; ++i) {
        GElf_Sym s;
        if (!x.sym_at(i, s) || GELF_ST_TYPE(s.st_info) != STT_FUNC) continue;
        if (s.st_shndx >= x.nsec || !img.secs[s.st_shndx].exec) continue;
        img.funcs.push_back(Func{x.sym_name(s), s.st_shndx, s.st_value / 8, s.st_size / 8});
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

void read_relocations(const ElfIndex& x, Image& img) {
    for (auto [target, scn] : x.rel_secs) {
        if (target >= x.nsec || !img.secs[target].exec) continue;
        Section& sec = img.secs[target];
        Elf_Data* d = elf_getdata(scn, nullptr);
        GElf_Shdr sh;
        if (!d || !gelf_getshdr(scn, &sh) || sh.sh_entsize == 0) continue;
        const size_t n = sh.sh_size / sh.sh_entsize;
        for (size_t i = 0; i < n; ++i) {
            GElf_Rel r;
            GElf_Sym s;
            if (!gelf_getrel(d, static_cast<int>(i), &r) || !x.sym_at(GELF_R_SYM(r.r_info), s)) continue;
            const size_t at = r.r_offset / 8;
            if (at >= sec.insns.size()) continue;
            sec.rels[at] = classify_rel(img, x, s, sec.insns[at]);
        }
    }
}

}  // namespace

Result<Image> read_image(const std::string& path) {
    ElfCloser h;
    h.fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (h.fd < 0)
        return make_error(ErrorKind::Io, errno, path, "open BPF object", {},
                          "check the path (build it with make first)");
    if (elf_version(EV_CURRENT) == EV_NONE)
        return make_error(ErrorKind::Bpf, 0, path, "libelf init", elf_errmsg(-1));
    h.e = elf_begin(h.fd, ELF_C_READ, nullptr);
    GElf_Ehdr eh;
    if (!h.e || elf_kind(h.e) != ELF_K_ELF || !gelf_getehdr(h.e, &eh))
        return make_error(ErrorKind::Data, 0, path, "read ELF header", "not an ELF file",
                          "pass a BPF object built with clang -target bpf");
    if (eh.e_machine != EM_BPF)
        return make_error(ErrorKind::Data, 0, path, "read ELF header",
                          "ELF machine " + std::to_string(eh.e_machine) + " is not BPF",
                          "pass a BPF object built with clang -target bpf");
    ElfIndex x;
    x.e = h.e;
    size_t shstrndx = 0;
    if (elf_getshdrstrndx(h.e, &shstrndx) != 0 || elf_getshdrnum(h.e, &x.nsec) != 0)
        return make_error(ErrorKind::Data, 0, path, "read ELF sections", elf_errmsg(-1));

    Image img;
    read_sections(x, shstrndx, img);
    if (!x.symtab)
        return make_error(ErrorKind::Data, 0, path, "read ELF symbols", "no symbol table",
                          "do not strip BPF objects");
    read_funcs(x, img);
    read_relocations(x, img);
    return img;
}

}  // namespace etcpipe::nfp::checker
