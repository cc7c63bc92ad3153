// FieldInfo tree -> instruction plan: one Instr per field (two for a split
// decimal), nested group/element bodies placed before the segment that uses
// them, presence-map use and the per-element minimum size worked out, and
// dictionary entries numbered through a map shared by the whole set.
#include <algorithm>

#include "mdfeed/fast_internal.hpp"

namespace etcpipe::fast::detail {

namespace {

bool is_integer(FieldType t) {
    return t == FieldType::UInt32 || t == FieldType::Int32 || t == FieldType::UInt64 ||
           t == FieldType::Int64;
}

struct PlanBuilder {
    Plan& plan;
    std::unordered_map<std::string, int32_t>& slots;
    std::vector<std::string>& slot_names;

    struct Seg {
        uint32_t begin = 0, end = 0;
        bool pmap = false;
        uint32_t min_bytes = 0;  // without the presence map
        uint32_t depth = 1;
    };

    int32_t slot_of(const OperatorSpec& s) {
        if (s.op != Operator::Copy && s.op != Operator::Increment && s.op != Operator::Delta &&
            s.op != Operator::Tail)
            return -1;
        const std::string name = s.dictionary + '\x1f' + s.key;
        auto [it, fresh] = slots.emplace(name, static_cast<int32_t>(slot_names.size()));
        if (fresh) slot_names.push_back(name);
        return it->second;
    }

    static void set_initial(Instr& in, const OperatorSpec& s) {
        in.has_init = s.has_initial;
        if (!s.has_initial) return;
        if (const auto* u = std::get_if<uint64_t>(&s.initial)) in.init_i = static_cast<int64_t>(*u);
        if (const auto* i = std::get_if<int64_t>(&s.initial)) in.init_i = *i;
        if (const auto* d = std::get_if<Decimal>(&s.initial)) {
            in.init_exp = d->exponent;
            in.init_i = d->mantissa;
        }
        if (const auto* str = std::get_if<std::string>(&s.initial)) in.init_s = *str;
        if (const auto* b = std::get_if<Bytes>(&s.initial)) in.init_s.assign(b->data.begin(), b->data.end());
    }

    Instr scalar(Kind k, const OperatorSpec& s, bool optional) {
        Instr in;
        in.kind = k;
        in.op = s.op;
        in.optional = optional;
        in.nullable = optional && s.op != Operator::Constant;
        in.slot = slot_of(s);
        set_initial(in, s);
        return in;
    }

    static Num num_of(FieldType t) {
        switch (t) {
            case FieldType::UInt32: return Num::U32;
            case FieldType::Int32: return Num::I32;
            case FieldType::UInt64: return Num::U64;
            default: return Num::I64;
        }
    }

    static uint8_t code_of(const Instr& in) {
        switch (in.kind) {
            case Kind::Int: return code_int(in.num, in.op);
            case Kind::DecExp: return code_exp(in.op);
            case Kind::DecMant: return code_mant(in.op);
            case Kind::Dec: return code_dec(in.op);
            case Kind::Str: return code_str(in.str, in.op);
            case Kind::Group: return kCodeGroup;
            case Kind::Seq: return kCodeSeq;
            case Kind::DynRef: return kCodeDynRef;
        }
        return 0;
    }

    static bool always_reads(const Instr& in) {
        return (in.op == Operator::None || in.op == Operator::Delta) &&
               (in.kind == Kind::Int || in.kind == Kind::Dec || in.kind == Kind::Str ||
                in.kind == Kind::DecExp);
    }

    void add(Seg& seg, std::vector<Instr>& local, Instr in) {
        if ((in.kind != Kind::Group && in.kind != Kind::Seq && in.kind != Kind::DynRef &&
             uses_pmap(in.op, in.optional)) ||
            (in.kind == Kind::Group && in.optional))
            seg.pmap = true;
        if (always_reads(in)) ++seg.min_bytes;
        local.push_back(std::move(in));
    }

    void scalar_field(Seg& seg, std::vector<Instr>& local, const FieldInfo& f, Instr base) {
        if (f.type == FieldType::Decimal && f.split_decimal) {
            Instr e = scalar(Kind::DecExp, f.exponent, f.optional);
            Instr m = scalar(Kind::DecMant, f.mantissa, false);
            e.num = Num::I32;
            m.num = Num::I64;
            e.slot_type = kSlotI32;
            m.slot_type = kSlotI64;
            for (Instr* p : {&e, &m}) {
                p->cell = base.cell;
                p->name = base.name;
                p->field = base.field;
            }
            add(seg, local, std::move(e));
            add(seg, local, std::move(m));
            return;
        }
        Instr in = scalar(Kind::Int, f.op, f.optional);
        in.cell = base.cell;
        in.name = base.name;
        in.field = base.field;
        if (is_integer(f.type)) {
            in.num = num_of(f.type);
            in.slot_type = slot_type_of(in.num);
        } else if (f.type == FieldType::Decimal) {
            in.kind = Kind::Dec;
            in.slot_type = kSlotDec;
        } else {
            in.kind = Kind::Str;
            in.str = f.type == FieldType::Ascii     ? StrKind::Ascii
                     : f.type == FieldType::Unicode ? StrKind::Unicode
                                                    : StrKind::Bytes;
            in.slot_type = f.type == FieldType::Ascii     ? kSlotAscii
                           : f.type == FieldType::Unicode ? kSlotUnicode
                                                          : kSlotBytes;
        }
        add(seg, local, std::move(in));
    }

    void composite_field(Seg& seg, std::vector<Instr>& local, const FieldInfo& f, Instr in) {
        const Seg body = segment(f.children);
        seg.depth = std::max(seg.depth, body.depth + 1);
        in.optional = f.optional;
        in.body_begin = body.begin;
        in.body_end = body.end;
        in.body_pmap = body.pmap;
        in.body_cells = static_cast<uint32_t>(f.children.size());
        in.min_bytes = body.min_bytes + (body.pmap ? 1 : 0);
        if (f.type == FieldType::Group) {
            in.kind = Kind::Group;
            add(seg, local, std::move(in));
            return;
        }
        in.kind = Kind::Seq;
        Instr len = scalar(Kind::Int, f.length, f.optional);
        len.num = Num::U32;
        len.slot_type = kSlotU32;
        len.name = &f.length_name;
        len.field = &f;
        in.len_instr = static_cast<uint32_t>(plan.instrs.size());
        len.code = code_of(len);
        if (uses_pmap(len.op, len.optional)) seg.pmap = true;
        if (always_reads(len)) ++seg.min_bytes;
        plan.instrs.push_back(std::move(len));
        local.push_back(std::move(in));
    }

    Seg segment(const std::vector<FieldInfo>& fields) {
        Seg seg;
        std::vector<Instr> local;
        for (size_t i = 0; i < fields.size(); ++i) {
            const FieldInfo& f = fields[i];
            Instr base;
            base.cell = static_cast<uint32_t>(i);
            base.name = &f.name;
            base.field = &f;
            if (f.type == FieldType::Group || f.type == FieldType::Sequence) {
                composite_field(seg, local, f, std::move(base));
            } else if (f.type == FieldType::TemplateRef) {
                base.kind = Kind::DynRef;
                seg.min_bytes += 1;  // its presence map; the template id may be implied
                local.push_back(std::move(base));
            } else {
                scalar_field(seg, local, f, std::move(base));
            }
        }
        seg.begin = static_cast<uint32_t>(plan.instrs.size());
        for (Instr& in : local) {
            in.code = code_of(in);
            plan.instrs.push_back(std::move(in));
        }
        seg.end = static_cast<uint32_t>(plan.instrs.size());
        return seg;
    }
};

}  // namespace

void compile_plan(const std::vector<FieldInfo>& fields,
                  std::unordered_map<std::string, int32_t>& slots,
                  std::vector<std::string>& slot_names, Plan& plan) {
    PlanBuilder pb{plan, slots, slot_names};
    const PlanBuilder::Seg seg = pb.segment(fields);
    plan.body_begin = seg.begin;
    plan.body_end = seg.end;
    plan.cells = static_cast<uint32_t>(fields.size());
    plan.depth = seg.depth;
}

}  // namespace etcpipe::fast::detail
