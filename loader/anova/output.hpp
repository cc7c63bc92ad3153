// What `etcpipe anova split` writes: the splits of a series as text, and the
// series with its splits as an SVG plot.
#pragma once

#include <span>
#include <string>

#include "anova/anova.hpp"
#include "common/result.hpp"

namespace etcpipe::anova {

// One line per split: "window <i>  boundary <i+8>  value <series[i+8]>",
// then the summary "splits: S of W windows" (and ", I invalid" when any).
[[nodiscard]] std::string format_splits(std::span<const double> series, const SplitResult& r);

// The SVG document (≈1200×500): series polyline, axes with ticks and labels,
// title, one vertical line per split at x = i+8, legend. Text is escaped.
[[nodiscard]] std::string render_split_svg(std::span<const double> series, const SplitResult& r,
                                           const std::string& title);
// render_split_svg written to `path`.
[[nodiscard]] Result<void> write_split_svg(const std::string& path, std::span<const double> series,
                                           const SplitResult& r, const std::string& title);

// Text escaped for XML character data and attribute values.
[[nodiscard]] std::string xml_escape(const std::string& text);

}  // namespace etcpipe::anova
