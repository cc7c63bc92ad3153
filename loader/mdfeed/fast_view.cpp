// Read access to a decoded message: SegmentView/MessageView accessors over
// the decoder's cells and arena, and to_record() for an owned copy.
#include "mdfeed/fast_internal.hpp"

namespace etcpipe::fast {

// ---- views ---------------------------------------------------------------------

const detail::Cell* SegmentView::cell(int i) const {
    if (!store_ || i < 0 || static_cast<size_t>(i) >= fields_->size()) return nullptr;
    return &store_->cells[base_ + static_cast<uint32_t>(i)];
}

bool SegmentView::present(int i) const {
    const detail::Cell* c = cell(i);
    return c && c->present;
}

std::optional<uint64_t> SegmentView::uint_at(int i) const {
    const detail::Cell* c = cell(i);
    if (!c || !c->present) return std::nullopt;
    const FieldType t = (*fields_)[static_cast<size_t>(i)].type;
    if (t != FieldType::UInt32 && t != FieldType::UInt64) return std::nullopt;
    return static_cast<uint64_t>(c->v);
}

std::optional<int64_t> SegmentView::int_at(int i) const {
    const detail::Cell* c = cell(i);
    if (!c || !c->present) return std::nullopt;
    const FieldType t = (*fields_)[static_cast<size_t>(i)].type;
    if (t == FieldType::Int32 || t == FieldType::Int64 || t == FieldType::UInt32) return c->v;
    if (t == FieldType::UInt64 && c->v >= 0) return c->v;
    return std::nullopt;
}

std::optional<Decimal> SegmentView::decimal_at(int i) const {
    const detail::Cell* c = cell(i);
    if (!c || !c->present || (*fields_)[static_cast<size_t>(i)].type != FieldType::Decimal)
        return std::nullopt;
    return Decimal{c->exp, c->v};
}

std::optional<std::string_view> SegmentView::string_at(int i) const {
    const detail::Cell* c = cell(i);
    if (!c || !c->present) return std::nullopt;
    const FieldType t = (*fields_)[static_cast<size_t>(i)].type;
    if (t != FieldType::Ascii && t != FieldType::Unicode) return std::nullopt;
    return std::string_view(store_->arena.data() + c->v, c->n);
}

std::optional<std::span<const uint8_t>> SegmentView::bytes_at(int i) const {
    const detail::Cell* c = cell(i);
    if (!c || !c->present || (*fields_)[static_cast<size_t>(i)].type != FieldType::Bytes)
        return std::nullopt;
    const auto* p = reinterpret_cast<const uint8_t*>(store_->arena.data()) + c->v;
    return std::span<const uint8_t>(p, c->n);
}

size_t SegmentView::sequence_size(int i) const {
    const detail::Cell* c = cell(i);
    if (!c || !c->present || (*fields_)[static_cast<size_t>(i)].type != FieldType::Sequence)
        return 0;
    return c->n;
}

std::optional<SegmentView> SegmentView::element(int i, size_t k) const {
    if (k >= sequence_size(i)) return std::nullopt;
    const FieldInfo& f = (*fields_)[static_cast<size_t>(i)];
    SegmentView v;
    v.store_ = store_;
    v.fields_ = &f.children;
    v.base_ = static_cast<uint32_t>(cell(i)->v + static_cast<int64_t>(k * f.children.size()));
    return v;
}

std::optional<SegmentView> SegmentView::group(int i) const {
    const detail::Cell* c = cell(i);
    if (!c || !c->present || (*fields_)[static_cast<size_t>(i)].type != FieldType::Group)
        return std::nullopt;
    SegmentView v;
    v.store_ = store_;
    v.fields_ = &(*fields_)[static_cast<size_t>(i)].children;
    v.base_ = static_cast<uint32_t>(c->v);
    return v;
}

std::optional<MessageView> SegmentView::dynamic(int i) const {
    const detail::Cell* c = cell(i);
    if (!c || !c->present || (*fields_)[static_cast<size_t>(i)].type != FieldType::TemplateRef)
        return std::nullopt;
    const Template* t = store_->set->find(c->n);
    if (!t) return std::nullopt;
    MessageView v;
    v.store_ = store_;
    v.fields_ = &t->fields();
    v.base_ = static_cast<uint32_t>(c->v);
    v.tmpl_ = t;
    return v;
}

// ---- to_record -------------------------------------------------------------------

namespace {

Record segment_record(const SegmentView& s);

Value field_value(const SegmentView& s, int i) {
    if (!s.present(i)) return {};
    const FieldInfo& f = s.fields()[static_cast<size_t>(i)];
    switch (f.type) {
        case FieldType::UInt32:
        case FieldType::UInt64: return *s.uint_at(i);
        case FieldType::Int32:
        case FieldType::Int64: return *s.int_at(i);
        case FieldType::Decimal: return *s.decimal_at(i);
        case FieldType::Ascii:
        case FieldType::Unicode: return std::string(*s.string_at(i));
        case FieldType::Bytes: {
            const auto b = *s.bytes_at(i);
            return Bytes{std::vector<uint8_t>(b.begin(), b.end())};
        }
        case FieldType::Sequence: {
            Sequence q;
            for (size_t k = 0; k < s.sequence_size(i); ++k)
                q.elements.push_back(segment_record(*s.element(i, k)));
            return q;
        }
        case FieldType::Group: return Group(segment_record(*s.group(i)));
        case FieldType::TemplateRef: {
            const MessageView m = *s.dynamic(i);
            Record r = segment_record(m);
            r.template_id = m.template_id();
            return Group(std::move(r));
        }
    }
    return {};
}

Record segment_record(const SegmentView& s) {
    Record r;
    r.fields.reserve(s.size());
    for (size_t i = 0; i < s.size(); ++i) r.fields.push_back(field_value(s, static_cast<int>(i)));
    return r;
}

}  // namespace

Record to_record(const MessageView& m) {
    Record r = segment_record(m);
    r.template_id = m.template_id();
    return r;
}

}  // namespace etcpipe::fast
