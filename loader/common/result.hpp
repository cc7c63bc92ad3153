// Errors as values: every fallible operation in the loader returns Result<T>.
// An Error carries an errno-style code, the subject (file, interface), the
// operation and a hint, so the CLI can print one actionable line and map the
// category to an exit code in one place (see exit_code()).
#pragma once

#include <cerrno>
#include <cstring>
#include <iterator>
#include <string>
#include <utility>
#include <variant>

namespace etcpipe {

enum class ErrorKind {
    Usage,  // bad command line or configuration
    Bpf,    // loading, verifying, attaching or querying BPF objects
    Io,     // files, captures, sockets
    Data,   // malformed input data (captures, series, ...)
};

// libbpf returns its own codes above errno's range (enum libbpf_errno,
// 4000..4013), which strerror() calls "Unknown error 4001": name them here
// (the same texts as libbpf_strerror, without linking libbpf).
[[nodiscard]] inline const char* error_text(int code) {
    static constexpr const char* kLibbpf[] = {
        "something wrong in libelf",   "BPF object format invalid",
        "incorrect or no 'version' section", "endian mismatch",
        "internal error in libbpf",    "relocation failed",
        "load program failure for unknown reason", "kernel verifier blocks program loading",
        "program too big",             "incorrect kernel version",
        "kernel doesn't support this program type", "wrong pid in netlink message",
        "invalid netlink sequence",    "netlink parsing error",
    };
    constexpr int kLibbpfFirst = 4000;
    if (code >= kLibbpfFirst && code < kLibbpfFirst + static_cast<int>(std::size(kLibbpf)))
        return kLibbpf[code - kLibbpfFirst];
    return std::strerror(code);
}

struct Error {
    ErrorKind kind = ErrorKind::Io;
    int code = 0;          // errno value (positive), 0 when not applicable
    std::string subject;   // interface or file name
    std::string operation; // what we were doing
    std::string detail;    // extra context (byte offset, field name, ...)
    std::string hint;      // what the user can do about it

    // "<subject>: <operation>: <detail|strerror> (errno N)[; hint: ...]"
    [[nodiscard]] std::string message() const {
        std::string m;
        if (!subject.empty()) m += subject + ": ";
        m += operation;
        if (!detail.empty()) m += ": " + detail;
        if (code != 0) {
            m += detail.empty() ? ": " : " (";
            m += error_text(code);
            m += " [errno " + std::to_string(code) + "]";
            if (!detail.empty()) m += ")";
        }
        if (!hint.empty()) m += "; hint: " + hint;
        return m;
    }
};

// Builds an Error from a negative libbpf-style return value or errno.
[[nodiscard]] inline Error make_error(ErrorKind kind, int err, std::string subject,
                                      std::string operation, std::string detail = {},
                                      std::string hint = {}) {
    return Error{kind, err < 0 ? -err : err, std::move(subject), std::move(operation),
                 std::move(detail), std::move(hint)};
}

template <class T>
class [[nodiscard]] Result {
  public:
    Result(T value) : v_(std::move(value)) {}          // NOLINT: implicit by design
    Result(Error error) : v_(std::move(error)) {}      // NOLINT: implicit by design

    [[nodiscard]] bool ok() const { return v_.index() == 0; }
    explicit operator bool() const { return ok(); }

    T& value() & { return std::get<0>(v_); }
    const T& value() const& { return std::get<0>(v_); }
    T&& value() && { return std::get<0>(std::move(v_)); }
    T* operator->() { return &value(); }
    const T* operator->() const { return &value(); }
    T& operator*() & { return value(); }
    const T& operator*() const& { return value(); }

    [[nodiscard]] const Error& error() const { return std::get<1>(v_); }

  private:
    std::variant<T, Error> v_;
};

template <>
class [[nodiscard]] Result<void> {
  public:
    Result() = default;
    Result(Error error) : err_(std::move(error)), ok_(false) {}  // NOLINT

    [[nodiscard]] bool ok() const { return ok_; }
    explicit operator bool() const { return ok_; }
    [[nodiscard]] const Error& error() const { return err_; }

  private:
    Error err_{};
    bool ok_ = true;
};

}  // namespace etcpipe
