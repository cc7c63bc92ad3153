// Series files for `anova split|send|bench` (read_series, declared in
// anova.hpp): apart from the program so the fuzz target builds it alone.
#include <algorithm>
#include <charconv>
#include <cmath>
#include <fstream>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "anova/anova.hpp"
#include "common/shown.hpp"

namespace etcpipe::anova {

// ---- series files -----------------------------------------------------------

namespace {

std::string_view trim(std::string_view s) {
    const char* ws = " \t\r\n\v\f";
    size_t b = s.find_first_not_of(ws);
    if (b == std::string_view::npos) return {};
    return s.substr(b, s.find_last_not_of(ws) - b + 1);
}

// A whole field as a finite double (from_chars: no locale). One '+' may
// lead; NaN, infinities and values beyond a double are refused with why.
struct Parsed {
    std::optional<double> value;
    const char* why = "not a number";
};
Parsed parse_field(std::string_view s) {
    s = trim(s);
    if (!s.empty() && s.front() == '+') {
        s.remove_prefix(1);
        if (!s.empty() && (s.front() == '+' || s.front() == '-')) return {};
    }
    double v = 0;
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (s.empty() || p != s.data() + s.size()) return {};
    if (ec == std::errc::result_out_of_range) return {std::nullopt, "out of range for a double"};
    if (ec != std::errc{}) return {};
    if (!std::isfinite(v)) return {std::nullopt, "not a finite number"};
    return {v};
}
std::optional<double> parse_number(std::string_view s) { return parse_field(s).value; }

// Lines longer than this are refused (a series line is a number or a CSV
// record), so a file without newlines (/dev/zero) fails at once.
constexpr size_t kMaxLineBytes = 1 << 16;
// At most this many values (800 MB of doubles).
constexpr size_t kMaxSeriesValues = 100'000'000;

// std::getline with a bound: false at the end; `too_long` when the line
// exceeded kMaxLineBytes (reading stops there).
bool read_line(std::istream& in, std::string& line, bool& too_long) {
    line.clear();
    too_long = false;
    std::streambuf* sb = in.rdbuf();
    for (;;) {
        const int c = sb->sbumpc();
        if (c == std::char_traits<char>::eof()) {
            in.setstate(std::ios::eofbit);
            return !line.empty();
        }
        if (c == '\n') return true;
        if (line.size() == kMaxLineBytes) {
            too_long = true;
            return true;
        }
        line.push_back(static_cast<char>(c));
    }
}

// One CSV record (RFC 4180 quoting: "a,b" and "" inside quotes), no
// multi-line fields. nullopt when a quote is left open.
std::optional<std::vector<std::string>> split_csv(std::string_view line) {
    std::vector<std::string> out(1);
    bool quoted = false;
    for (size_t i = 0; i < line.size(); ++i) {
        char c = line[i];
        if (quoted) {
            if (c == '"' && i + 1 < line.size() && line[i + 1] == '"') {
                out.back() += '"';
                ++i;
            } else if (c == '"') {
                quoted = false;
            } else {
                out.back() += c;
            }
        } else if (c == '"') {
            quoted = true;
        } else if (c == ',') {
            out.emplace_back();
        } else {
            out.back() += c;
        }
    }
    if (quoted) return std::nullopt;
    for (auto& f : out) f = std::string(trim(f));
    return out;
}

Error data_error(const std::string& path, size_t line, std::string detail, std::string hint = {}) {
    return Error{ErrorKind::Data, 0, path, "read series",
                 "line " + std::to_string(line) + ": " + std::move(detail), std::move(hint)};
}

bool skip_line(std::string_view t) { return t.empty() || t.front() == '#'; }

}  // namespace

// Blank lines are skipped, not read as missing values: the seed's reader
// (scanf("%lf")) skips all white space, and its series
// osh_000001SZ_daily.txt has 148 blank lines among its 3254 prices
// (3402 lines in all); the golden 748 splits in 3239 windows count the
// prices as one contiguous series.
Result<std::vector<double>> read_series(const std::string& path, const std::string& column) {
    std::ifstream in(path);
    if (!in) return make_error(ErrorKind::Io, errno, path, "open series");
    std::vector<double> out;
    std::string raw;
    size_t lineno = 0;
    bool too_long = false;
    auto next_line = [&]() -> bool {
        if (!read_line(in, raw, too_long)) return false;
        ++lineno;
        return true;
    };
    auto limits = [&]() -> std::optional<Error> {
        if (too_long)
            return data_error(path, lineno,
                              "longer than " + std::to_string(kMaxLineBytes) + " bytes: not a series",
                              "one number per line, or CSV with --column");
        if (out.size() == kMaxSeriesValues)
            return data_error(path, lineno,
                              "more than " + std::to_string(kMaxSeriesValues) + " values");
        return std::nullopt;
    };

    if (column.empty()) {
        while (next_line()) {
            if (auto e = limits()) return *e;
            std::string_view t = trim(raw);
            if (skip_line(t)) continue;
            auto v = parse_field(t);
            if (!v.value)
                return data_error(path, lineno, std::string(v.why) + ": " + shown(t),
                                  t.find(',') != std::string_view::npos
                                      ? "a CSV file needs --column NAME|N"
                                      : "");
            out.push_back(*v.value);
        }
    } else {
        std::optional<size_t> col;  // 0-based once known
        bool first = true;
        while (next_line()) {
            if (auto e = limits()) return *e;
            std::string_view t = trim(raw);
            if (skip_line(t)) continue;
            auto fields = split_csv(t);
            if (!fields) return data_error(path, lineno, "unterminated quoted field");
            if (first) {
                first = false;
                bool header = std::any_of(fields->begin(), fields->end(),
                                          [](const std::string& f) { return !parse_number(f); });
                if (header) {
                    auto it = std::find(fields->begin(), fields->end(), column);
                    if (it != fields->end()) col = static_cast<size_t>(it - fields->begin());
                }
                if (!col) {
                    size_t n = 0;
                    auto [p, ec] = std::from_chars(column.data(), column.data() + column.size(), n);
                    if (ec != std::errc{} || p != column.data() + column.size() || n == 0 ||
                        n > fields->size()) {
                        std::string names;
                        if (header)
                            for (const auto& f : *fields) names += (names.empty() ? "" : ", ") + f;
                        // The option is wrong, not the file: a usage error (exit 2).
                        Error e = data_error(path, lineno, "no column " + shown(column),
                                             header ? "columns: " + names + " (or 1.." +
                                                          std::to_string(fields->size()) + ")"
                                                    : "columns are 1.." +
                                                          std::to_string(fields->size()));
                        e.kind = ErrorKind::Usage;
                        return e;
                    }
                    col = n - 1;
                }
                if (header) continue;
            }
            if (*col >= fields->size())
                return data_error(path, lineno,
                                  "only " + std::to_string(fields->size()) + " fields, column " +
                                      std::to_string(*col + 1) + " wanted");
            auto v = parse_field((*fields)[*col]);
            if (!v.value)
                return data_error(path, lineno,
                                  "column " + std::to_string(*col + 1) + ": " + v.why + ": " +
                                      shown((*fields)[*col]));
            out.push_back(*v.value);
        }
    }
    if (in.bad()) return make_error(ErrorKind::Io, errno, path, "read series");
    return out;
}

}  // namespace etcpipe::anova
