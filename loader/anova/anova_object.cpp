#include "anova/anova_object.hpp"

#include <cerrno>
#include <string>
#include <utility>
#include <variant>

#include "anova.skel.h"
#include "anova_f64.skel.h"
#include "common/skeleton.hpp"

namespace etcpipe::anova {

const char* object_file(anova_encoding enc) {
    return enc == ANOVA_ENC_F64 ? "anova_f64.bpf.o" : "anova.bpf.o";
}

struct Object::Impl {
    std::variant<Skeleton<anova_bpf>, Skeleton<anova_f64_bpf>> skel;
    const char* file = nullptr;

    // The skeletons differ in type only: the same map and program members.
    template <class F>
    auto with(F&& f) const {
        return std::visit([&](const auto& s) { return f(s.get()); }, skel);
    }
};

Object::Object() = default;
Object::~Object() = default;
Object::Object(Object&&) noexcept = default;
Object& Object::operator=(Object&&) noexcept = default;

Result<Object> Object::open(anova_encoding enc) {
    Object o;
    o.impl_ = std::make_unique<Impl>();
    o.impl_->file = object_file(enc);
    if (enc == ANOVA_ENC_F64) {
        auto s = Skeleton<anova_f64_bpf>::open(o.impl_->file);
        if (!s) return s.error();
        o.impl_->skel = std::move(*s);
    } else if (enc == ANOVA_ENC_U32) {
        auto s = Skeleton<anova_bpf>::open(o.impl_->file);
        if (!s) return s.error();
        o.impl_->skel = std::move(*s);
    } else {
        return Error{ErrorKind::Usage, EINVAL, "anova", "open BPF object",
                     "unknown encoding " + std::to_string(static_cast<int>(enc)), {}};
    }
    return o;
}

Result<void> Object::load() {
    if (!impl_) return Error{ErrorKind::Usage, EINVAL, "anova", "load BPF object", "not open", {}};
    return std::visit([&](auto& s) { return s.load(impl_->file); }, impl_->skel);
}

bpf_object* Object::obj() const {
    return impl_ ? impl_->with([](auto* s) { return s->obj; }) : nullptr;
}

bpf_map* Object::config_map() const {
    return impl_ ? impl_->with([](auto* s) { return s->maps.anova_cfg; }) : nullptr;
}

bpf_program* Object::prog() const {
    return impl_ ? impl_->with([](auto* s) { return s->progs.xdp_anova; }) : nullptr;
}

const char* Object::file() const { return impl_ ? impl_->file : ""; }

}  // namespace etcpipe::anova
