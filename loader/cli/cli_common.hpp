// Shared by the CLI's command files: exit codes and the one way an error is
// printed.
#pragma once

#include <CLI/CLI.hpp>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <string>
#include <thread>
#include <type_traits>
#include <vector>

#include "common/capabilities.hpp"
#include "common/log.hpp"
#include "common/output_check.hpp"
#include "common/shown.hpp"
#include "gpu/features.hpp"
#include "common/result.hpp"

namespace etcpipe::cli {

// Exit codes, documented in README.md and --help.
enum Exit : int { kOk = 0, kGeneral = 1, kUsage = 2, kBpf = 3, kIo = 4, kData = 5 };

[[nodiscard]] inline int exit_code(const Error& e) {
    switch (e.kind) {
        case ErrorKind::Usage: return kUsage;
        case ErrorKind::Bpf: return kBpf;
        case ErrorKind::Io: return kIo;
        case ErrorKind::Data: return kData;
    }
    return kGeneral;
}

inline int fail(const Error& e) {
    ETC_ERR("%s", e.message().c_str());
    return exit_code(e);
}

// ---- numeric options -----------------------------------------------------
// CLI11 2.1 reads "-1" into an unsigned as 2^64-1, "nan"/"inf"/"1e308" into a
// double, and "+-5" as -5. Every option of the CLI is declared through
// add_option() below, which checks the text by the variable's type first:
// unsigned: decimal (or 0x hex) digits that fit; signed: an optional '-' and
// digits that fit; floating: a finite number ≥ 0 (all ours are durations,
// rates or sizes). Documented maxima are added per option with at_most().
namespace detail {

template <class T>
struct element {
    using type = T;
};
template <class T, class A>
struct element<std::vector<T, A>> {
    using type = T;
};

using etcpipe::shown;

template <class T>
std::string check_number(const std::string& s) {
    if constexpr (std::is_floating_point_v<T>) {
        if (s.empty()) return "empty value: expected a number";
        errno = 0;
        char* end = nullptr;
        const double v = std::strtod(s.c_str(), &end);
        if (end == s.c_str() || *end != '\0' || std::isnan(v) ||
            s.find_first_of("xXpP") != std::string::npos)
            return shown(s) + " is not a number";
        if (std::isinf(v) || errno == ERANGE)
            return shown(s) + " is out of range" +
                   (std::isinf(v) && errno != ERANGE ? "" : " (too large for a double)");
        if (v < 0) return shown(s) + " is negative: expected a value ≥ 0";
        return {};
    } else {
        using Wide = std::conditional_t<std::is_signed_v<T>, long long, unsigned long long>;
        const std::string limits = std::to_string(std::numeric_limits<T>::min()) + ".." +
                                   std::to_string(std::numeric_limits<T>::max());
        if constexpr (!std::is_signed_v<T>)
            if (!s.empty() && s[0] == '-')
                return shown(s) + " is negative: expected a whole number in " + limits;
        // from_chars takes no sign but '-' and no base prefix: strip "0x"
        // ourselves and keep the sign separate, so "+-5" and "-+5" fail.
        const bool neg = !s.empty() && s[0] == '-';
        std::string_view digits = std::string_view(s).substr(neg ? 1 : 0);
        int base = 10;
        if (digits.size() > 2 && digits[0] == '0' && (digits[1] == 'x' || digits[1] == 'X')) {
            base = 16;
            digits.remove_prefix(2);
        }
        if (digits.empty() || !std::isxdigit(static_cast<unsigned char>(digits[0])))
            return shown(s) + " is not a whole number";
        // Put the sign back in front of the bare digits (from_chars reads
        // it for signed types, so the most negative value still parses).
        const std::string text = (neg ? "-" : "") + std::string(digits);
        Wide v{};
        auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v, base);
        if (end != text.data() + text.size())
            return shown(s) + " is not a whole number";
        if (ec == std::errc::result_out_of_range || v < static_cast<Wide>(std::numeric_limits<T>::min()) ||
            v > static_cast<Wide>(std::numeric_limits<T>::max()))
            return shown(s) + " is out of range " + limits;
        return {};
    }
}

}  // namespace detail

template <class T>
CLI::Option* add_option(CLI::App* cmd, const std::string& name, T& var, const std::string& help = {}) {
    CLI::Option* opt = cmd->add_option(name, var, help);
    using E = typename detail::element<T>::type;
    if constexpr (std::is_arithmetic_v<E> && !std::is_same_v<E, bool>)
        opt->check(CLI::Validator(detail::check_number<E>, "", "number"));
    return opt;
}

// A documented maximum (exit 2 above it).
template <class T>
CLI::Validator at_most(T max) {
    std::string text;
    if constexpr (std::is_integral_v<T>) {
        text = std::to_string(max);
    } else {
        char b[32];
        std::snprintf(b, sizeof(b), "%g", static_cast<double>(max));
        text = b;
    }
    return CLI::Validator(
        [max, text](const std::string& s) -> std::string {
            const long double v = std::strtold(s.c_str(), nullptr);
            if (v > static_cast<long double>(max))
                return detail::shown(s) + " is above the maximum of " + text;
            return {};
        },
        "≤ " + text, "at_most");
}

// Durations (-d, --seconds, --max-seconds): at most a year.
inline constexpr double kMaxSeconds = 365.0 * 24 * 3600;
// anova bench --windows: the latency samples are kept in memory (16 B each).
inline constexpr uint64_t kMaxBenchWindows = 100'000'000;

// --threads: 0 (all cores) up to 4× the cores present; more only costs memory.
inline unsigned max_threads() {
    const unsigned n = std::thread::hardware_concurrency();
    return 4 * (n ? n : 1);
}

// --device gpu|cpu|auto, parsed into `device` as it is read.
inline CLI::Option* add_device_option(CLI::App* cmd, Device& device, const std::string& help) {
    return cmd
        ->add_option_function<std::string>(
            "--device", [&device](const std::string& s) { device = parse_device(s).value(); }, help)
        ->check(CLI::IsMember({"gpu", "cpu", "auto"}))
        ->default_str(device_name(device));
}

}  // namespace etcpipe::cli
