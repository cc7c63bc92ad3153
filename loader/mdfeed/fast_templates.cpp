// FAST template XML -> FieldInfo trees -> instruction plans.
//
// Three passes: collect the <template> elements; build each template's
// FieldInfo tree (static <templateRef name=...> expanded in place, cycles
// rejected, dictionary scopes and keys resolved, initial values typed); then
// compile every tree into a Plan (fast_plan.cpp) with dictionary slots
// numbered across the whole set. Every static error names the file, the line
// and the element.
#include <tinyxml2.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <fstream>
#include <sstream>
#include <unordered_set>

#include "mdfeed/fast_internal.hpp"

namespace etcpipe::fast {

const char* to_string(FieldType t) {
    switch (t) {
        case FieldType::UInt32: return "uInt32";
        case FieldType::Int32: return "int32";
        case FieldType::UInt64: return "uInt64";
        case FieldType::Int64: return "int64";
        case FieldType::Decimal: return "decimal";
        case FieldType::Ascii: return "string";
        case FieldType::Unicode: return "string(unicode)";
        case FieldType::Bytes: return "byteVector";
        case FieldType::Sequence: return "sequence";
        case FieldType::Group: return "group";
        case FieldType::TemplateRef: return "templateRef";
    }
    return "?";
}

const char* to_string(Operator op) {
    switch (op) {
        case Operator::None: return "none";
        case Operator::Constant: return "constant";
        case Operator::Default: return "default";
        case Operator::Copy: return "copy";
        case Operator::Increment: return "increment";
        case Operator::Delta: return "delta";
        case Operator::Tail: return "tail";
    }
    return "?";
}

namespace {

using tinyxml2::XMLElement;

std::string_view local_name(const XMLElement* e) {
    std::string_view n = e->Name();
    const size_t colon = n.find(':');
    return colon == std::string_view::npos ? n : n.substr(colon + 1);
}

std::string attr(const XMLElement* e, const char* name) {
    const char* v = e->Attribute(name);
    return v ? std::string(v) : std::string();
}

bool iequals(std::string_view a, std::string_view b) {
    return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
               return std::tolower(static_cast<unsigned char>(x)) ==
                      std::tolower(static_cast<unsigned char>(y));
           });
}

bool is_integer(FieldType t) {
    return t == FieldType::UInt32 || t == FieldType::Int32 || t == FieldType::UInt64 ||
           t == FieldType::Int64;
}
bool is_stringish(FieldType t) {
    return t == FieldType::Ascii || t == FieldType::Unicode || t == FieldType::Bytes;
}

// S2: which operators apply to which types.
bool applicable(Operator op, FieldType t) {
    switch (op) {
        case Operator::Increment: return is_integer(t);
        case Operator::Tail: return is_stringish(t);
        default: return true;
    }
}

template <class T>
bool parse_number(std::string_view s, T& out) {
    if (!s.empty() && s.front() == '+') s.remove_prefix(1);
    const auto r = std::from_chars(s.data(), s.data() + s.size(), out);
    return r.ec == std::errc() && r.ptr == s.data() + s.size() && !s.empty();
}

// "[-+]digits[.digits][e[-+]digits]" -> normalised decimal (no trailing zeros).
bool parse_decimal(std::string_view s, Decimal& d) {
    bool neg = false;
    if (!s.empty() && (s.front() == '-' || s.front() == '+')) {
        neg = s.front() == '-';
        s.remove_prefix(1);
    }
    detail::i128 mant = 0;
    int64_t exp = 0;
    bool digits = false, dot = false;
    size_t i = 0;
    for (; i < s.size(); ++i) {
        const char c = s[i];
        if (c == '.' && !dot) {
            dot = true;
        } else if (c >= '0' && c <= '9') {
            digits = true;
            if (mant > (static_cast<detail::i128>(1) << 80)) return false;
            mant = mant * 10 + (c - '0');
            if (dot) --exp;
        } else {
            break;
        }
    }
    if (!digits) return false;
    if (i < s.size()) {
        if (s[i] != 'e' && s[i] != 'E') return false;
        int64_t e = 0;
        if (!parse_number(s.substr(i + 1), e) || e > 1000 || e < -1000) return false;
        exp += e;
    }
    if (mant == 0) exp = 0;
    while (mant != 0 && mant % 10 == 0) {
        mant /= 10;
        ++exp;
    }
    if (neg) mant = -mant;
    if (mant > INT64_MAX || mant < INT64_MIN || exp < -63 || exp > 63) return false;
    d.mantissa = static_cast<int64_t>(mant);
    d.exponent = static_cast<int32_t>(exp);
    return true;
}

bool parse_hex(std::string_view s, Bytes& b) {
    int hi = -1;
    for (const char c : s) {
        if (std::isspace(static_cast<unsigned char>(c))) continue;
        int v;
        if (c >= '0' && c <= '9') v = c - '0';
        else if (c >= 'a' && c <= 'f') v = c - 'a' + 10;
        else if (c >= 'A' && c <= 'F') v = c - 'A' + 10;
        else return false;
        if (hi < 0) {
            hi = v;
        } else {
            b.data.push_back(static_cast<uint8_t>(hi << 4 | v));
            hi = -1;
        }
    }
    return hi < 0;
}

// S3: the `value` attribute as a value of the field's type.
bool parse_initial(FieldType t, const std::string& text, Value& out) {
    switch (t) {
        case FieldType::UInt32:
        case FieldType::UInt64: {
            uint64_t v = 0;
            if (text.starts_with('-') || !parse_number(text, v)) return false;
            if (t == FieldType::UInt32 && v > UINT32_MAX) return false;
            out = v;
            return true;
        }
        case FieldType::Int32:
        case FieldType::Int64: {
            int64_t v = 0;
            if (!parse_number(text, v)) return false;
            if (t == FieldType::Int32 && (v < INT32_MIN || v > INT32_MAX)) return false;
            out = v;
            return true;
        }
        case FieldType::Decimal: {
            Decimal d;
            if (!parse_decimal(text, d)) return false;
            out = d;
            return true;
        }
        case FieldType::Ascii:
            if (std::any_of(text.begin(), text.end(), [](char c) { return (c & 0x80) != 0; }))
                return false;
            if (text.size() > 1 && text[0] == '\0') return false;
            out = text;
            return true;
        case FieldType::Unicode: out = text; return true;
        case FieldType::Bytes: {
            Bytes b;
            if (!parse_hex(text, b)) return false;
            out = std::move(b);
            return true;
        }
        default: return false;
    }
}

std::optional<Operator> operator_of(std::string_view n) {
    if (n == "constant") return Operator::Constant;
    if (n == "default") return Operator::Default;
    if (n == "copy") return Operator::Copy;
    if (n == "increment") return Operator::Increment;
    if (n == "delta") return Operator::Delta;
    if (n == "tail") return Operator::Tail;
    return std::nullopt;
}

std::optional<FieldType> scalar_type_of(std::string_view n) {
    if (n == "uInt32") return FieldType::UInt32;
    if (n == "int32") return FieldType::Int32;
    if (n == "uInt64") return FieldType::UInt64;
    if (n == "int64") return FieldType::Int64;
    if (n == "decimal") return FieldType::Decimal;
    if (n == "string") return FieldType::Ascii;
    if (n == "byteVector") return FieldType::Bytes;
    return std::nullopt;
}

}  // namespace

namespace detail {

// Lexical context of a field: whose dictionary and key defaults apply.
struct Ctx {
    std::string tmpl;        // template the field is written in
    std::string dictionary;  // inherited `dictionary` attribute
    std::string type_ref;    // nearest <typeRef name=...>
    std::string path;        // "Seq.Group" for implicit keys
};

struct Builder {
    struct Raw {
        const XMLElement* el = nullptr;
        std::string name;
        uint32_t id = 0;
        bool has_id = false;
        bool reset = false;
        int state = 0;  // 0 unbuilt, 1 building, 2 built
        bool referenced = false;
        std::vector<FieldInfo> fields;
    };

    std::string source;
    std::string root_dictionary;
    std::vector<Raw> raws;
    std::unordered_map<std::string, size_t> raw_by_name;
    std::optional<Error> err;

    bool fail(const XMLElement* e, const std::string& what) {
        if (!err) {
            std::string d = "line " + std::to_string(e ? e->GetLineNum() : 0);
            if (e) d += ": <" + std::string(e->Name()) + ">";
            d += ": " + what;
            err = make_error(ErrorKind::Data, 0, source, "load FAST templates", d,
                             "fix the template file");
        }
        return false;
    }

    // ---- pass 1: templates ------------------------------------------------

    bool collect(const XMLElement* root) {
        if (local_name(root) == "template") return collect_one(root);
        if (local_name(root) != "templates") return fail(root, "root element must be <templates>");
        root_dictionary = attr(root, "dictionary");
        for (const XMLElement* e = root->FirstChildElement(); e; e = e->NextSiblingElement()) {
            if (local_name(e) != "template") return fail(e, "unexpected element in <templates>");
            if (!collect_one(e)) return false;
        }
        return true;
    }

    bool parse_bool_attr(const XMLElement* e, const char* name, bool& out) {
        const std::string v = attr(e, name);
        if (v.empty()) return true;
        if (iequals(v, "yes") || iequals(v, "y") || iequals(v, "true") || v == "1") {
            out = true;
        } else if (iequals(v, "no") || iequals(v, "n") || iequals(v, "false") || v == "0") {
            out = false;
        } else {
            return fail(e, std::string("bad ") + name + "=\"" + v + "\" (want Y or N)");
        }
        return true;
    }

    bool collect_one(const XMLElement* e) {
        Raw r;
        r.el = e;
        r.name = attr(e, "name");
        if (r.name.empty()) return fail(e, "template without name");
        const char* id = e->Attribute("id");
        if (id) {
            if (!parse_number(std::string_view(id), r.id) || r.id == 0)
                return fail(e, "bad template id \"" + std::string(id) + "\"");
            r.has_id = true;
        }
        if (!parse_bool_attr(e, "reset", r.reset)) return false;
        if (raw_by_name.count(r.name)) return fail(e, "duplicate template name \"" + r.name + "\"");
        for (const Raw& o : raws)
            if (r.has_id && o.has_id && o.id == r.id)
                return fail(e, "duplicate template id " + std::to_string(r.id) + " (also \"" +
                                   o.name + "\" at line " + std::to_string(o.el->GetLineNum()) +
                                   ")");
        raw_by_name[r.name] = raws.size();
        raws.push_back(std::move(r));
        return true;
    }

    // ---- pass 2: fields ---------------------------------------------------

    bool build(size_t k) {
        Raw& r = raws[k];
        if (r.state == 2) return true;
        if (r.state == 1) return fail(r.el, "templateRef cycle through \"" + r.name + "\"");
        r.state = 1;
        Ctx ctx{r.name, attr(r.el, "dictionary"), "any", ""};
        if (ctx.dictionary.empty()) ctx.dictionary = root_dictionary;
        std::vector<FieldInfo> fields;
        if (!segment(r.el, ctx, fields)) return false;
        raws[k].fields = std::move(fields);
        raws[k].state = 2;
        return true;
    }

    // Fields of a template, group or sequence element.
    bool segment(const XMLElement* parent, Ctx ctx, std::vector<FieldInfo>& out) {
        int dynamic = 0;
        for (const XMLElement* e = parent->FirstChildElement(); e; e = e->NextSiblingElement()) {
            const std::string_view n = local_name(e);
            if (n == "typeRef") {
                ctx.type_ref = attr(e, "name");
                continue;
            }
            if (n == "length" && local_name(parent) == "sequence") continue;
            if (n == "templateRef" && e->Attribute("name")) {
                if (!static_ref(e, out)) return false;
                continue;
            }
            FieldInfo f;
            if (!field(e, ctx, f)) return false;
            if (f.type == FieldType::TemplateRef && ++dynamic > 1) f.name += std::to_string(dynamic);
            out.push_back(std::move(f));
        }
        return unique_names(parent, out);
    }

    bool unique_names(const XMLElement* parent, const std::vector<FieldInfo>& fields) {
        std::unordered_set<std::string> seen;
        for (const FieldInfo& f : fields)
            if (!seen.insert(f.name).second)
                return fail(parent, "duplicate field name \"" + f.name + "\" (line " +
                                        std::to_string(f.line) + ")");
        return true;
    }

    bool static_ref(const XMLElement* e, std::vector<FieldInfo>& out) {
        const std::string name = attr(e, "name");
        auto it = raw_by_name.find(name);
        if (it == raw_by_name.end()) return fail(e, "templateRef to unknown template \"" + name + "\"");
        raws[it->second].referenced = true;
        if (!build(it->second)) return false;
        const std::vector<FieldInfo>& fs = raws[it->second].fields;
        out.insert(out.end(), fs.begin(), fs.end());
        return true;
    }

    bool field(const XMLElement* e, const Ctx& ctx, FieldInfo& f) {
        const std::string_view n = local_name(e);
        f.line = e->GetLineNum();
        if (n == "templateRef") {
            f.type = FieldType::TemplateRef;
            f.name = "templateRef";
            return no_children(e);
        }
        const bool composite_field = n == "group" || n == "sequence";
        const auto t = scalar_type_of(n);
        if (!t && !composite_field) return fail(e, "unknown field type <" + std::string(n) + ">");
        f.name = attr(e, "name");
        if (f.name.empty()) return fail(e, "field without name");
        if (!common_attrs(e, f)) return false;
        if (composite_field) return composite(e, ctx, f, n == "sequence");
        f.type = *t;
        if (f.type == FieldType::Ascii && !charset(e, f)) return false;
        return scalar_children(e, ctx, f);
    }

    bool common_attrs(const XMLElement* e, FieldInfo& f) {
        if (const char* id = e->Attribute("id"); id && !parse_number(std::string_view(id), f.id))
            return fail(e, "bad id \"" + std::string(id) + "\" on \"" + f.name + "\"");
        const std::string p = attr(e, "presence");
        if (p == "optional") f.optional = true;
        else if (!p.empty() && p != "mandatory") return fail(e, "bad presence=\"" + p + "\"");
        return true;
    }

    bool charset(const XMLElement* e, FieldInfo& f) {
        const std::string cs = attr(e, "charset");
        if (cs == "unicode") f.type = FieldType::Unicode;
        else if (!cs.empty() && cs != "ascii") return fail(e, "bad charset=\"" + cs + "\"");
        return true;
    }

    bool no_children(const XMLElement* e) {
        if (const XMLElement* c = e->FirstChildElement())
            return fail(c, "unexpected element inside <" + std::string(local_name(e)) + ">");
        return true;
    }

    bool scalar_children(const XMLElement* e, const Ctx& ctx, FieldInfo& f) {
        int ops = 0;
        for (const XMLElement* c = e->FirstChildElement(); c; c = c->NextSiblingElement()) {
            const std::string_view n = local_name(c);
            if (f.type == FieldType::Decimal && (n == "exponent" || n == "mantissa")) {
                if (!decimal_part(c, ctx, f, n == "exponent")) return false;
            } else if (n == "length" && (is_stringish(f.type))) {
                continue;  // the length of a unicode string / byte vector: name only
            } else if (operator_of(n)) {
                if (++ops > 1) return fail(c, "more than one operator on \"" + f.name + "\"");
                if (!op_spec(c, ctx, f.type, f.optional, f.name, f.name, f.op)) return false;
            } else {
                return fail(c, "unknown operator or element <" + std::string(n) + "> in \"" +
                                   f.name + "\"");
            }
        }
        if (f.split_decimal && ops) return fail(e, "decimal with both an operator and <exponent>/<mantissa>");
        return true;
    }

    bool decimal_part(const XMLElement* c, const Ctx& ctx, FieldInfo& f, bool exponent) {
        f.split_decimal = true;
        const FieldType t = exponent ? FieldType::Int32 : FieldType::Int64;
        const std::string key = f.name + (exponent ? "/exponent" : "/mantissa");
        OperatorSpec& spec = exponent ? f.exponent : f.mantissa;
        int ops = 0;
        for (const XMLElement* o = c->FirstChildElement(); o; o = o->NextSiblingElement()) {
            if (!operator_of(local_name(o)))
                return fail(o, "unknown operator <" + std::string(local_name(o)) + "> in \"" + f.name + "\"");
            if (++ops > 1) return fail(o, "more than one operator");
            if (!op_spec(o, ctx, t, exponent && f.optional, f.name, key, spec)) return false;
        }
        return true;
    }

    std::string scope(const std::string& dict, const Ctx& ctx) {
        if (dict.empty() || dict == "global") return "global";
        if (dict == "template") return "template:" + ctx.tmpl;
        if (dict == "type") return "type:" + ctx.type_ref;
        return "user:" + dict;
    }

    bool op_spec(const XMLElement* o, const Ctx& ctx, FieldType t, bool optional,
                 const std::string& field_name, const std::string& default_key, OperatorSpec& s) {
        s.op = *operator_of(local_name(o));
        if (!applicable(s.op, t))
            return fail(o, std::string(to_string(s.op)) + " is not applicable to " + to_string(t) +
                               " \"" + field_name + "\"");
        if (!no_children(o)) return false;
        std::string dict = attr(o, "dictionary");
        if (dict.empty()) dict = ctx.dictionary;
        s.dictionary = scope(dict, ctx);
        s.key = o->Attribute("key") ? attr(o, "key") : default_key;
        if (const char* v = o->Attribute("value")) {
            s.has_initial = true;
            if (!parse_initial(t, v, s.initial))
                return fail(o, "bad initial value \"" + std::string(v) + "\" for " + to_string(t) +
                                   " \"" + field_name + "\"");
        }
        if (s.op == Operator::Constant && !s.has_initial)
            return fail(o, "constant without value on \"" + field_name + "\"");
        if (s.op == Operator::Default && !optional && !s.has_initial)
            return fail(o, "mandatory default without value on \"" + field_name + "\"");
        return true;
    }

    bool composite(const XMLElement* e, const Ctx& outer, FieldInfo& f, bool sequence) {
        f.type = sequence ? FieldType::Sequence : FieldType::Group;
        Ctx ctx = outer;
        if (const std::string d = attr(e, "dictionary"); !d.empty()) ctx.dictionary = d;
        ctx.path += (ctx.path.empty() ? "" : ".") + f.name;
        if (sequence && !length(e, ctx, f)) return false;
        for (const XMLElement* c = e->FirstChildElement(); c; c = c->NextSiblingElement()) {
            const std::string_view n = local_name(c);
            if (operator_of(n) || n == "exponent" || n == "mantissa" ||
                (n == "length" && !sequence))
                return fail(c, "unexpected <" + std::string(n) + "> in " + to_string(f.type) +
                                   " \"" + f.name + "\"");
        }
        return segment(e, ctx, f.children);
    }

    bool length(const XMLElement* e, const Ctx& ctx, FieldInfo& f) {
        f.length_name = f.name + ".length";
        std::string key = "@" + ctx.tmpl + "/" + ctx.path + ".length";
        const XMLElement* len = nullptr;
        for (const XMLElement* c = e->FirstChildElement(); c; c = c->NextSiblingElement())
            if (local_name(c) == "length") {
                if (len) return fail(c, "second <length> in \"" + f.name + "\"");
                len = c;
            }
        if (!len) return true;
        if (const std::string n = attr(len, "name"); !n.empty()) f.length_name = key = n;
        if (const char* id = len->Attribute("id"); id && !parse_number(std::string_view(id), f.length_id))
            return fail(len, "bad id \"" + std::string(id) + "\"");
        int ops = 0;
        for (const XMLElement* o = len->FirstChildElement(); o; o = o->NextSiblingElement()) {
            if (!operator_of(local_name(o)))
                return fail(o, "unknown operator <" + std::string(local_name(o)) + "> in <length>");
            if (++ops > 1) return fail(o, "more than one operator");
            if (!op_spec(o, ctx, FieldType::UInt32, f.optional, f.length_name, key, f.length))
                return false;
        }
        return true;
    }

    bool check_ids() {
        for (const Raw& r : raws)
            if (!r.has_id && !r.referenced)
                return fail(r.el, "template \"" + r.name + "\" has no id and no templateRef uses it");
        return true;
    }

    // Pass 3; the fields move into the templates.
    std::shared_ptr<SetImpl> compile();
};

std::shared_ptr<SetImpl> Builder::compile() {
    auto set = std::make_shared<SetImpl>();
    set->source = source;
    std::unordered_map<std::string, int32_t> slots;
    for (Raw& r : raws) {
        auto t = std::make_unique<Template>();
        t->id_ = r.id;
        t->name_ = r.name;
        t->reset_ = r.reset;
        t->fields_ = std::move(r.fields);
        compile_plan(t->fields_, slots, set->slot_names, *t->plan_);
        set->max_depth = std::max(set->max_depth, t->plan_->depth + 1);
        set->by_name[r.name] = t.get();
        if (r.has_id) {
            set->by_id[r.id] = t.get();
            set->all.push_back(t.get());
        }
        set->owned.push_back(std::move(t));
    }
    return set;
}

}  // namespace detail

// ---- Template / TemplateSet -------------------------------------------------

Template::Template() : plan_(std::make_unique<detail::Plan>()) {}
Template::~Template() = default;

int Template::field_index(std::string_view name) const {
    for (size_t i = 0; i < fields_.size(); ++i)
        if (fields_[i].name == name) return static_cast<int>(i);
    return -1;
}

namespace {

Value default_value(const FieldInfo& f) {
    if (f.optional) return {};
    if (f.op.has_initial) return f.op.initial;
    switch (f.type) {
        case FieldType::UInt32:
        case FieldType::UInt64: return uint64_t{0};
        case FieldType::Int32:
        case FieldType::Int64: return int64_t{0};
        case FieldType::Decimal: {
            Decimal d;
            if (f.split_decimal && f.exponent.has_initial)
                d.exponent = static_cast<int32_t>(std::get<int64_t>(f.exponent.initial));
            if (f.split_decimal && f.mantissa.has_initial)
                d.mantissa = std::get<int64_t>(f.mantissa.initial);
            return d;
        }
        case FieldType::Ascii:
        case FieldType::Unicode: return std::string();
        case FieldType::Bytes: return Bytes{};
        case FieldType::Sequence: return Sequence{};
        case FieldType::Group: return Group(make_record(f.children));
        case FieldType::TemplateRef: return {};
    }
    return {};
}

}  // namespace

Record make_record(const std::vector<FieldInfo>& fields) {
    Record r;
    r.fields.reserve(fields.size());
    for (const FieldInfo& f : fields) r.fields.push_back(default_value(f));
    return r;
}

Record Template::make_record() const {
    Record r = fast::make_record(fields_);
    r.template_id = id_;
    return r;
}

const Template* TemplateSet::find(uint32_t id) const { return impl_->find(id); }

const Template* TemplateSet::find(std::string_view name) const {
    auto it = impl_->by_name.find(std::string(name));
    return it == impl_->by_name.end() ? nullptr : it->second;
}

size_t TemplateSet::size() const { return impl_->all.size(); }

std::span<const Template* const> TemplateSet::templates() const { return impl_->all; }

Result<TemplateSet> TemplateSet::parse(std::string_view xml, const std::string& source_name) {
    tinyxml2::XMLDocument doc;
    if (doc.Parse(xml.data(), xml.size()) != tinyxml2::XML_SUCCESS || !doc.RootElement()) {
        return make_error(ErrorKind::Data, 0, source_name, "load FAST templates",
                          "line " + std::to_string(doc.ErrorLineNum()) + ": XML: " +
                              (doc.Error() ? doc.ErrorStr() : "no root element"),
                          "fix the template file");
    }
    detail::Builder b;
    b.source = source_name;
    bool ok = b.collect(doc.RootElement());
    for (size_t k = 0; ok && k < b.raws.size(); ++k) ok = b.build(k);
    if (ok) ok = b.check_ids();
    if (!ok) return *b.err;
    TemplateSet set;
    set.impl_ = b.compile();
    return set;
}

Result<TemplateSet> TemplateSet::load(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) return make_error(ErrorKind::Io, errno, path, "open FAST templates");
    std::ostringstream ss;
    ss << in.rdbuf();
    return parse(ss.str(), path);
}

}  // namespace etcpipe::fast
