#include "anova/output.hpp"

#include <algorithm>
#include <cmath>
#include <fstream>

#include "common/fmt.hpp"

namespace etcpipe::anova {

namespace {

// A "nice" tick step (1, 2 or 5 × 10^k) giving about `target` ticks over span.
double nice_step(double span, int target) {
    if (!(span > 0)) return 1;
    double raw = span / target;
    double mag = std::pow(10.0, std::floor(std::log10(raw)));
    double r = raw / mag;
    double nice = r < 1.5 ? 1 : r < 3.5 ? 2 : r < 7.5 ? 5 : 10;
    return nice * mag;
}

// Tick label: no "-0", no 0.30000000000000004.
std::string tick_label(double v, double step) {
    if (std::fabs(v) < step * 1e-9) v = 0;
    int decimals = step >= 1 ? 0 : static_cast<int>(std::ceil(-std::log10(step) - 1e-9));
    return fmt("%.*f", std::clamp(decimals, 0, 9), v);
}

// The plot's geometry: document size, margins, the data ranges, and the
// mapping from (sample index, value) to SVG coordinates.
struct Frame {
    static constexpr double W = 1200, H = 500;
    static constexpr double ml = 80, mr = 30, mt = 50, mb = 70;  // margins
    static constexpr double pw = W - ml - mr, ph = H - mt - mb;  // plot area
    double ymin = 0, ymax = 1, xmax = 1;

    // Data ranges (finite values only), padded a little.
    explicit Frame(std::span<const double> series) {
        double lo = INFINITY, hi = -INFINITY;
        for (double v : series)
            if (std::isfinite(v)) lo = std::min(lo, v), hi = std::max(hi, v);
        if (!(lo <= hi)) lo = 0, hi = 1;
        if (hi - lo < 1e-12) lo -= 0.5, hi += 0.5;
        const double pad = (hi - lo) * 0.05;
        ymin = lo - pad, ymax = hi + pad;
        xmax = series.size() > 1 ? static_cast<double>(series.size() - 1) : 1.0;
    }
    double X(double i) const { return ml + i / xmax * pw; }
    double Y(double v) const { return mt + (ymax - v) / (ymax - ymin) * ph; }
};

// Grid, ticks, tick labels, axis lines and axis labels.
std::string render_axes(const Frame& f) {
    const double ml = Frame::ml, mt = Frame::mt, pw = Frame::pw, ph = Frame::ph;
    std::string s = "<g class=\"axes\" stroke=\"#444\" stroke-width=\"1\">\n";
    const double xstep = nice_step(f.xmax, 12);
    for (double t = 0; t <= f.xmax + xstep * 1e-9; t += xstep) {
        s += fmt("<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#eee\"/>\n",
                 f.X(t), mt, f.X(t), mt + ph);
        s += fmt("<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\"/>\n", f.X(t), mt + ph,
                 f.X(t), mt + ph + 5);
    }
    const double ystep = nice_step(f.ymax - f.ymin, 8);
    for (double t = std::ceil(f.ymin / ystep) * ystep; t <= f.ymax; t += ystep) {
        s += fmt("<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#eee\"/>\n", ml,
                 f.Y(t), ml + pw, f.Y(t));
        s += fmt("<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\"/>\n", ml - 5, f.Y(t), ml,
                 f.Y(t));
    }
    // Axis lines.
    s += fmt("<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\"/>\n", ml, mt + ph, ml + pw,
             mt + ph);
    s += fmt("<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\"/>\n", ml, mt, ml, mt + ph);
    s += "</g>\n<g class=\"tick-labels\" fill=\"#222\">\n";
    for (double t = 0; t <= f.xmax + xstep * 1e-9; t += xstep)
        s += fmt("<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%s</text>\n", f.X(t),
                 mt + ph + 20, tick_label(t, xstep).c_str());
    for (double t = std::ceil(f.ymin / ystep) * ystep; t <= f.ymax; t += ystep)
        s += fmt("<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">%s</text>\n", ml - 8,
                 f.Y(t) + 4, tick_label(t, ystep).c_str());
    s += "</g>\n";
    s += fmt("<text class=\"axis-label\" x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">"
             "sample index</text>\n",
             ml + pw / 2, Frame::H - 20);
    s += fmt("<text class=\"axis-label\" x=\"20\" y=\"%.1f\" text-anchor=\"middle\" "
             "transform=\"rotate(-90 20 %.1f)\">value</text>\n",
             mt + ph / 2, mt + ph / 2);
    return s;
}

// Legend (top right, inside the plot).
std::string render_legend(const SplitResult& r) {
    const double lx = Frame::ml + Frame::pw - 230, ly = Frame::mt + 10;
    std::string s = "<g class=\"legend\">\n";
    s += fmt("<rect x=\"%.1f\" y=\"%.1f\" width=\"220\" height=\"46\" fill=\"white\" "
             "fill-opacity=\"0.85\" stroke=\"#999\" stroke-width=\"0.5\"/>\n",
             lx, ly);
    s += fmt("<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#1f77b4\" "
             "stroke-width=\"1.5\"/>\n",
             lx + 10, ly + 15, lx + 40, ly + 15);
    s += fmt("<text x=\"%.1f\" y=\"%.1f\">series</text>\n", lx + 48, ly + 19);
    s += fmt("<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#d62728\" "
             "stroke-width=\"1.5\"/>\n",
             lx + 10, ly + 33, lx + 40, ly + 33);
    s += fmt("<text x=\"%.1f\" y=\"%.1f\">split (%zu of %zu windows)</text>\n", lx + 48, ly + 37,
             r.splits.size(), r.windows);
    s += "</g>\n";
    return s;
}

}  // namespace

// ---- output of `split` -----------------------------------------------------

std::string format_splits(std::span<const double> series, const SplitResult& r) {
    std::string out;
    for (size_t i : r.splits) {
        size_t b = i + ANOVA_HALF;
        if (b < series.size())
            out += fmt("window %zu  boundary %zu  value %g\n", i, b, series[b]);
        else
            out += fmt("window %zu  boundary %zu\n", i, b);
    }
    out += fmt("splits: %zu of %zu windows", r.splits.size(), r.windows);
    if (r.invalid) out += fmt(", %zu invalid", r.invalid);
    out += "\n";
    return out;
}

std::string xml_escape(const std::string& text) {
    std::string out;
    out.reserve(text.size());
    for (char c : text) {
        switch (c) {
        case '&': out += "&amp;"; break;
        case '<': out += "&lt;"; break;
        case '>': out += "&gt;"; break;
        case '"': out += "&quot;"; break;
        case '\'': out += "&apos;"; break;
        default:
            // XML 1.0 forbids most control characters, even escaped.
            if (static_cast<unsigned char>(c) < 0x20 && c != '\t' && c != '\n' && c != '\r')
                out += ' ';
            else
                out += c;
        }
    }
    return out;
}

std::string render_split_svg(std::span<const double> series, const SplitResult& r,
                             const std::string& title) {
    const Frame f(series);
    const double W = Frame::W, H = Frame::H, mt = Frame::mt, ph = Frame::ph;
    std::string s;
    s += fmt("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
             "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" height=\"%.0f\" "
             "viewBox=\"0 0 %.0f %.0f\" font-family=\"sans-serif\" font-size=\"12\">\n",
             W, H, W, H);
    s += "<title>" + xml_escape(title) + "</title>\n";
    s += fmt("<rect x=\"0\" y=\"0\" width=\"%.0f\" height=\"%.0f\" fill=\"white\"/>\n", W, H);
    s += fmt("<text x=\"%.1f\" y=\"28\" text-anchor=\"middle\" font-size=\"16\" "
             "font-weight=\"bold\">%s</text>\n",
             W / 2, xml_escape(title).c_str());
    s += render_axes(f);

    // Splits under the series, so the series stays readable.
    // Dense splits overlap: lighter lines keep the series visible.
    const double opacity = r.splits.size() > 200 ? 0.25 : 0.45;
    s += fmt("<g class=\"splits\" stroke=\"#d62728\" stroke-width=\"0.8\" "
             "stroke-opacity=\"%.2f\">\n",
             opacity);
    for (size_t i : r.splits) {
        double x = f.X(static_cast<double>(i + ANOVA_HALF));
        s += fmt("<line class=\"split\" x1=\"%.2f\" y1=\"%.1f\" x2=\"%.2f\" y2=\"%.1f\"/>\n", x,
                 mt, x, mt + ph);
    }
    s += "</g>\n";

    // The series.
    s += "<polyline class=\"series\" fill=\"none\" stroke=\"#1f77b4\" stroke-width=\"1\" "
         "stroke-linejoin=\"round\" points=\"";
    for (size_t i = 0; i < series.size(); ++i) {
        if (!std::isfinite(series[i])) continue;
        s += fmt("%.2f,%.2f ", f.X(static_cast<double>(i)), f.Y(series[i]));
    }
    s += "\"/>\n";
    s += render_legend(r);
    s += "</svg>\n";
    return s;
}

Result<void> write_split_svg(const std::string& path, std::span<const double> series,
                             const SplitResult& r, const std::string& title) {
    std::string doc = render_split_svg(series, r, title);
    std::ofstream f(path, std::ios::binary | std::ios::trunc);
    if (!f) return make_error(ErrorKind::Io, errno, path, "create SVG");
    f.write(doc.data(), static_cast<std::streamsize>(doc.size()));
    f.close();
    if (!f) return make_error(ErrorKind::Io, errno, path, "write SVG");
    return {};
}

}  // namespace etcpipe::anova
