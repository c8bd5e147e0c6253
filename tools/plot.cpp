// The chart's layout: validation, axis ranges and ticks, where each part of a panel goes, and
// drawing it on a Canvas (plot_canvas.hpp).
#include "plot.hpp"

#include <algorithm>
#include <cstdio>
#include <limits>

#include "losa/errors.hpp"

namespace losa::tools {
namespace {

const char* const kFunction = "write_line_chart_png";

constexpr int kScale = 2;  // font scale: 1 is too small to read comfortably
constexpr int kPad = 10;   // empty border inside each panel
constexpr int kTickLength = 5;
constexpr int kLineWidth = 2;
constexpr int kMarkerRadius = 4;
constexpr int kSwatchWidth = 28;  // a legend entry's line sample
constexpr int kMinPlotSide = 40;  // smaller plot areas cannot show anything useful
constexpr int kMaxPanelSide = 8192;

const Rgb kWhite{255, 255, 255};
const Rgb kInk{30, 30, 30};      // text
const Rgb kAxis{70, 70, 70};     // frame and tick marks
const Rgb kGrid{228, 228, 228};  // light enough that data always reads above it

// A tick at `value` (axis units: log2 of x on a log2 axis); an empty label is a minor tick.
struct Tick {
  double value;
  std::string label;
};

// One axis: the range [lo, hi] in axis units and the ticks in it.
struct Axis {
  bool log2 = false;
  bool powers = false;  // the ticks are at the powers of two (log2 units): thin_labels applies
  double lo = 0, hi = 1;
  std::vector<Tick> ticks;

  double to_axis(double v) const { return log2 ? std::log2(v) : v; }
  // 0 at lo, 1 at hi, for a value in axis units.
  double fraction(double a) const { return (a - lo) / (hi - lo); }
};

// Where each part of one panel goes.
struct Layout {
  PixelRect panel, plot;
  Axis x, y;
  int tick_label_top = 0, x_label_top = 0, legend_top = 0;
  struct Entry {
    int x, y;  // top-left of the swatch
  };
  std::vector<Entry> legend;
};

std::string format(const char* spec, double v) {
  char buffer[64];
  std::snprintf(buffer, sizeof buffer, spec, v);
  return buffer;
}

std::string where(std::size_t panel, std::size_t series) {
  return "panels[" + std::to_string(panel) + "].series[" + std::to_string(series) + "]";
}

void validate(const std::vector<PlotPanel>& panels, int panel_width, int panel_height) {
  if (panels.empty())
    throw ArgumentError(kFunction, "panels", "is empty: there is nothing to draw");
  if (panel_width < 160 || panel_width > kMaxPanelSide)
    throw ArgumentError(kFunction, "panel_width",
                        "must be in [160, 8192], got " + std::to_string(panel_width));
  if (panel_height < 120 || panel_height > kMaxPanelSide)
    throw ArgumentError(kFunction, "panel_height",
                        "must be in [120, 8192], got " + std::to_string(panel_height));
  if ((panels.size() + 2) / 3 > static_cast<std::size_t>(kMaxPanelSide / panel_height))
    throw ArgumentError(kFunction, "panels",
                        "are too many: " + std::to_string(panels.size()) +
                            " panels make an image taller than 8192 pixels");
  for (std::size_t p = 0; p < panels.size(); ++p) {
    const PlotPanel& panel = panels[p];
    const std::string name = "panels[" + std::to_string(p) + "]";
    if (std::isinf(panel.y_min) || std::isinf(panel.y_max))
      throw ArgumentError(kFunction, name + ".y_min/y_max",
                          "must be finite or NaN (from the data)");
    if (panel.y_min >= panel.y_max)  // false when either is NaN
      throw ArgumentError(
          kFunction, name + ".y_min",
          "must be < y_max, got " + format("%g", panel.y_min) + " >= " + format("%g", panel.y_max));
    for (std::size_t s = 0; s < panel.series.size(); ++s) {
      const PlotSeries& series = panel.series[s];
      if (series.x.size() != series.y.size())
        throw ArgumentError(kFunction, where(p, s),
                            "has " + std::to_string(series.x.size()) + " x values but " +
                                std::to_string(series.y.size()) + " y values");
      for (std::size_t i = 0; i < series.x.size(); ++i) {
        const std::string at = " at index " + std::to_string(i);
        if (!std::isfinite(series.x[i]))
          throw ArgumentError(kFunction, where(p, s) + ".x", "is not finite" + at);
        if (panel.log2_x && series.x[i] <= 0)
          throw ArgumentError(
              kFunction, where(p, s) + ".x",
              "is " + format("%g", series.x[i]) + at + ", which a log2 axis cannot place");
        if (std::isinf(series.y[i]))
          throw ArgumentError(kFunction, where(p, s) + ".y",
                              "is infinite" + at + " (NaN marks a gap)");
      }
    }
  }
}

// Ticks at a 1, 2 or 5 times a power of ten step, about five of them, labelled with as many
// decimals as the step needs (so 0.2 steps read 0.0, 0.2, ... and not 0.200000).
std::vector<Tick> linear_ticks(double lo, double hi) {
  const double raw = (hi - lo) / 5;
  const double magnitude = std::pow(10.0, std::floor(std::log10(raw)));
  const double norm = raw / magnitude;
  const double step = (norm < 1.5 ? 1 : norm < 3 ? 2 : norm < 7 ? 5 : 10) * magnitude;
  const int decimals = std::max(0, static_cast<int>(-std::floor(std::log10(step) + 1e-9)));
  const bool compact = decimals > 4 || std::max(std::abs(lo), std::abs(hi)) >= 1e7;
  std::vector<Tick> ticks;
  for (double k = std::ceil(lo / step - 1e-9); k * step <= hi + step * 1e-9; k += 1) {
    const double v = k == 0 ? 0.0 : k * step;  // never "-0"
    char buffer[64];
    if (compact)
      std::snprintf(buffer, sizeof buffer, "%g", v);
    else
      std::snprintf(buffer, sizeof buffer, "%.*f", decimals, v);
    ticks.push_back({v, buffer});
  }
  return ticks;
}

// 2^k as token counts are written: 512, 1K, 64K, 1M; below 1 as a decimal.
std::string power_of_two_label(int k) {
  if (k < 0) return format("%g", std::ldexp(1.0, k));
  if (k < 10) return std::to_string(1 << k);
  if (k < 20) return std::to_string(1 << (k - 10)) + "K";
  if (k < 30) return std::to_string(1 << (k - 20)) + "M";
  return format("%g", std::ldexp(1.0, k - 30)) + "G";
}

// Every power of two in [lo, hi] (log2 units), all labelled; thin_labels() drops labels that
// would collide once the axis has a length in pixels.
std::vector<Tick> power_of_two_ticks(double lo, double hi) {
  std::vector<Tick> ticks;
  for (int k = static_cast<int>(std::ceil(lo - 1e-9)); k <= static_cast<int>(std::floor(hi + 1e-9));
       ++k)
    ticks.push_back({static_cast<double>(k), power_of_two_label(k)});
  return ticks;
}

// A range within one octave may hold no power of two: then ordinary round numbers, placed on the
// log2 axis.
std::vector<Tick> log2_round_ticks(double lo, double hi) {
  std::vector<Tick> ticks;
  for (Tick& t : linear_ticks(std::exp2(lo), std::exp2(hi)))
    if (t.value > 0) ticks.push_back({std::log2(t.value), t.label});
  return ticks;
}

// Keeps every stride-th label of evenly spaced powers of two (those at multiples of the stride,
// so the kept ones are powers of 2^stride), the fewest dropped that leaves a gap between labels.
void thin_labels(Axis& axis, int length_px) {
  if (!axis.powers || axis.ticks.size() < 2) return;
  int widest = 0;
  for (const Tick& t : axis.ticks) widest = std::max(widest, text_width(t.label, kScale));
  const double px_per_octave = length_px / (axis.hi - axis.lo);
  const int stride = std::max(1, static_cast<int>(std::ceil((widest + 12) / px_per_octave)));
  for (Tick& t : axis.ticks)
    if (static_cast<long long>(std::llround(t.value)) % stride != 0) t.label.clear();
}

// Data range of every series' x (or finite y), in axis units; false when there is no point.
bool data_range(const PlotPanel& panel, bool use_x, double& lo, double& hi) {
  lo = std::numeric_limits<double>::infinity();
  hi = -lo;
  for (const PlotSeries& s : panel.series)
    for (std::size_t i = 0; i < s.x.size(); ++i) {
      if (std::isnan(s.y[i])) continue;  // a gap draws nothing, so it does not stretch the axes
      const double v = use_x ? (panel.log2_x ? std::log2(s.x[i]) : s.x[i]) : s.y[i];
      lo = std::min(lo, v);
      hi = std::max(hi, v);
    }
  return lo <= hi;
}

// x: the data with 4% on each side, so the end markers do not sit on the frame.
Axis x_axis(const PlotPanel& panel) {
  Axis axis;
  axis.log2 = panel.log2_x;
  double lo, hi;
  if (!data_range(panel, true, lo, hi)) {
    lo = 0;
    hi = 1;
  } else if (lo == hi) {
    lo -= axis.log2 ? 0.5 : std::max(1.0, std::abs(lo) * 0.1);
    hi = 2 * hi - lo;
  }
  const double margin = (hi - lo) * 0.04;
  axis.lo = lo - margin;
  axis.hi = hi + margin;
  if (axis.log2) axis.ticks = power_of_two_ticks(axis.lo, axis.hi);
  axis.powers = !axis.ticks.empty();
  if (axis.ticks.empty())
    axis.ticks = axis.log2 ? log2_round_ticks(axis.lo, axis.hi) : linear_ticks(axis.lo, axis.hi);
  return axis;
}

// y: y_min / y_max where given (exactly), else the data with 5% on that side.
Axis y_axis(const PlotPanel& panel) {
  Axis axis;
  double lo, hi;
  if (!data_range(panel, false, lo, hi)) {
    lo = 0;
    hi = 1;
  }
  const double margin = hi > lo ? (hi - lo) * 0.05 : std::max(0.5, std::abs(lo) * 0.1);
  axis.lo = std::isnan(panel.y_min) ? lo - margin : panel.y_min;
  axis.hi = std::isnan(panel.y_max) ? hi + margin : panel.y_max;
  if (axis.hi <= axis.lo) {  // one end given, and the data all beyond it
    if (std::isnan(panel.y_max))
      axis.hi = axis.lo + std::max(1.0, std::abs(axis.lo));
    else
      axis.lo = axis.hi - std::max(1.0, std::abs(axis.hi));
  }
  axis.ticks = linear_ticks(axis.lo, axis.hi);
  return axis;
}

Layout layout_panel(const PlotPanel& panel, std::size_t index, int panel_width, int panel_height) {
  Layout l;
  const int column = static_cast<int>(index % 3), row = static_cast<int>(index / 3);
  l.panel = {column * panel_width, row * panel_height, (column + 1) * panel_width,
             (row + 1) * panel_height};
  l.x = x_axis(panel);
  l.y = y_axis(panel);
  const int text_h = text_height(kScale);
  const int row_h = text_h + 8;  // a line of text with its spacing

  int y_label_width = 0, x_label_width = 0;
  for (const Tick& t : l.y.ticks)
    y_label_width = std::max(y_label_width, text_width(t.label, kScale));
  for (const Tick& t : l.x.ticks)
    x_label_width = std::max(x_label_width, text_width(t.label, kScale));
  // Left: the turned y label, the tick labels, the ticks. Right: room for half the last x label.
  l.plot.left =
      l.panel.left + kPad + (panel.y_label.empty() ? 0 : row_h) + y_label_width + 4 + kTickLength;
  l.plot.right = l.panel.right - std::max(kPad, x_label_width / 2 + 4);
  // Top: the title, and half a tick label's height so the top y label is not cut.
  l.plot.top = l.panel.top + kPad + (panel.title.empty() ? 0 : row_h + 4) + text_h / 2;

  // The legend flows in rows below everything else, each row centred on the panel.
  std::vector<int> entry_width;
  for (const PlotSeries& s : panel.series)
    entry_width.push_back(kSwatchWidth + 6 + text_width(s.label, kScale));
  const int row_limit = l.panel.width() - 2 * kPad, gap = 18;
  std::vector<std::pair<std::size_t, int>> rows;  // first entry, width
  for (std::size_t i = 0; i < entry_width.size(); ++i) {
    if (rows.empty() || rows.back().second + gap + entry_width[i] > row_limit)
      rows.push_back({i, entry_width[i]});
    else
      rows.back().second += gap + entry_width[i];
  }
  l.legend_top = l.panel.bottom - kPad - static_cast<int>(rows.size()) * row_h;
  for (std::size_t r = 0; r < rows.size(); ++r) {
    const std::size_t end = r + 1 < rows.size() ? rows[r + 1].first : entry_width.size();
    int x = l.panel.left + std::max(kPad, (l.panel.width() - rows[r].second) / 2);
    for (std::size_t i = rows[r].first; i < end; ++i) {
      l.legend.push_back({x, l.legend_top + static_cast<int>(r) * row_h});
      x += entry_width[i] + gap;
    }
  }

  l.x_label_top = l.legend_top - (panel.x_label.empty() ? 0 : row_h);
  l.tick_label_top = l.x_label_top - row_h;
  l.plot.bottom = l.tick_label_top - kTickLength - 4;
  if (l.plot.width() < kMinPlotSide)
    throw ArgumentError(kFunction, "panel_width",
                        "is too small for panel " + std::to_string(index) + "'s labels (" +
                            std::to_string(panel_width) + " pixels)");
  if (l.plot.height() < kMinPlotSide)
    throw ArgumentError(kFunction, "panel_height",
                        "is too small for panel " + std::to_string(index) +
                            "'s labels and legend (" + std::to_string(panel_height) + " pixels)");
  thin_labels(l.x, l.plot.width());
  return l;
}

// Image pixel of a value in axis units (unrounded): the ends of the range fall on the plot's
// edge pixels.
double axis_x(const Layout& l, double a) {
  return l.plot.left + l.x.fraction(a) * (l.plot.width() - 1);
}
double axis_y(const Layout& l, double a) {
  return l.plot.bottom - 1 - l.y.fraction(a) * (l.plot.height() - 1);
}
// ... and of a data point.
double pixel_x(const Layout& l, double v) { return axis_x(l, l.x.to_axis(v)); }
double pixel_y(const Layout& l, double v) { return axis_y(l, v); }
int rounded(double pixel) { return static_cast<int>(std::lround(pixel)); }

// Liang-Barsky: cuts the segment to the rectangle (a little outside the plot, which the canvas
// clips exactly), so a point far out of the y range cannot overflow an int or take a long walk.
bool clip_segment(double& x0, double& y0, double& x1, double& y1, const PixelRect& r) {
  const double margin = 8;
  const double dx = x1 - x0, dy = y1 - y0;
  const double p[4] = {-dx, dx, -dy, dy};
  const double q[4] = {x0 - (r.left - margin), (r.right + margin) - x0, y0 - (r.top - margin),
                       (r.bottom + margin) - y0};
  double t0 = 0, t1 = 1;
  for (int i = 0; i < 4; ++i) {
    if (p[i] == 0) {
      if (q[i] < 0) return false;
    } else {
      const double t = q[i] / p[i];
      if (p[i] < 0)
        t0 = std::max(t0, t);
      else
        t1 = std::min(t1, t);
    }
  }
  if (t0 > t1) return false;
  const double ax = x0 + t0 * dx, ay = y0 + t0 * dy;
  x1 = x0 + t1 * dx;
  y1 = y0 + t1 * dy;
  x0 = ax;
  y0 = ay;
  return true;
}

// Markers differ in shape as well as colour (circle, square, diamond, triangle), so lines stay
// apart in greyscale and for readers who cannot tell the palette's colours apart.
void draw_marker(Canvas& canvas, int cx, int cy, std::size_t series, Rgb colour) {
  const int r = kMarkerRadius;
  for (int dy = -r; dy <= r; ++dy)
    for (int dx = -r; dx <= r; ++dx) {
      bool inside = false;
      switch (series % 4) {
        case 0:
          inside = dx * dx + dy * dy <= r * r + r;
          break;
        case 1:
          inside = std::abs(dx) < r && std::abs(dy) < r;
          break;
        case 2:
          inside = std::abs(dx) + std::abs(dy) <= r;
          break;
        default:
          inside = 2 * std::abs(dx) <= dy + r;
          break;  // apex up
      }
      if (inside) canvas.set_pixel(cx + dx, cy + dy, colour);
    }
}

void draw_series(Canvas& canvas, const Layout& l, const PlotSeries& s, std::size_t index) {
  const Rgb colour = series_colour(index);
  for (std::size_t i = 0; i + 1 < s.x.size(); ++i) {
    if (std::isnan(s.y[i]) || std::isnan(s.y[i + 1])) continue;  // a gap breaks the line
    double x0 = pixel_x(l, s.x[i]), y0 = pixel_y(l, s.y[i]);
    double x1 = pixel_x(l, s.x[i + 1]), y1 = pixel_y(l, s.y[i + 1]);
    if (clip_segment(x0, y0, x1, y1, l.plot))
      canvas.line(rounded(x0), rounded(y0), rounded(x1), rounded(y1), colour, kLineWidth);
  }
  for (std::size_t i = 0; i < s.x.size(); ++i) {
    if (std::isnan(s.y[i])) continue;
    const double px = pixel_x(l, s.x[i]), py = pixel_y(l, s.y[i]);
    if (l.plot.contains(static_cast<int>(px),
                        static_cast<int>(py)))  // also keeps the casts in range
      draw_marker(canvas, rounded(px), rounded(py), index, colour);
  }
}

void draw_panel(Canvas& canvas, const PlotPanel& panel, const Layout& l) {
  const PixelRect& p = l.plot;

  // Grid at the labelled ticks, then the data over it, both inside the plot area only.
  canvas.clip = p;
  for (const Tick& t : l.x.ticks)
    if (!t.label.empty()) {
      const int x = rounded(axis_x(l, t.value));
      canvas.line(x, p.top, x, p.bottom - 1, kGrid);
    }
  for (const Tick& t : l.y.ticks) {
    const int y = rounded(axis_y(l, t.value));
    canvas.line(p.left, y, p.right - 1, y, kGrid);
  }
  for (std::size_t s = 0; s < panel.series.size(); ++s) draw_series(canvas, l, panel.series[s], s);

  // Frame just outside the plot area, ticks and their labels outside the frame.
  canvas.clip = l.panel;
  canvas.fill_rect(p.left - 1, p.top - 1, p.right + 1, p.top, kAxis);
  canvas.fill_rect(p.left - 1, p.bottom, p.right + 1, p.bottom + 1, kAxis);
  canvas.fill_rect(p.left - 1, p.top - 1, p.left, p.bottom + 1, kAxis);
  canvas.fill_rect(p.right, p.top - 1, p.right + 1, p.bottom + 1, kAxis);
  for (const Tick& t : l.x.ticks) {
    const int x = rounded(axis_x(l, t.value));
    const int length = t.label.empty() ? kTickLength / 2 + 1 : kTickLength;  // minor ticks shorter
    canvas.line(x, p.bottom + 1, x, p.bottom + length, kAxis);
    if (!t.label.empty())
      canvas.text(x - text_width(t.label, kScale) / 2, l.tick_label_top, t.label, kInk, kScale);
  }
  for (const Tick& t : l.y.ticks) {
    const int y = rounded(axis_y(l, t.value));
    canvas.line(p.left - 1 - kTickLength, y, p.left - 2, y, kAxis);
    // Glyphs sit in the upper 7 of their 9 units: centre those on the tick.
    canvas.text(p.left - 5 - kTickLength - text_width(t.label, kScale), y - 7 * kScale / 2, t.label,
                kInk, kScale);
  }

  // Title and x label centred on the plot (kept inside the panel); the y label turned, centred.
  auto centred = [&](const std::string& s) {
    return std::max(l.panel.left + kPad, (p.left + p.right - text_width(s, kScale)) / 2);
  };
  if (!panel.title.empty())
    canvas.text(centred(panel.title), l.panel.top + kPad, panel.title, kInk, kScale);
  if (!panel.x_label.empty())
    canvas.text(centred(panel.x_label), l.x_label_top, panel.x_label, kInk, kScale);
  if (!panel.y_label.empty()) {
    const int bottom =
        std::min(l.panel.bottom - kPad, (p.top + p.bottom + text_width(panel.y_label, kScale)) / 2);
    canvas.text_up(l.panel.left + kPad, bottom, panel.y_label, kInk, kScale);
  }

  // Legend: a line sample with the series' marker, then its label.
  for (std::size_t s = 0; s < panel.series.size(); ++s) {
    const Layout::Entry& e = l.legend[s];
    const Rgb colour = series_colour(s);
    const int mid = e.y + 7 * kScale / 2;
    canvas.line(e.x, mid, e.x + kSwatchWidth - 1, mid, colour, kLineWidth);
    draw_marker(canvas, e.x + kSwatchWidth / 2, mid, s, colour);
    canvas.text(e.x + kSwatchWidth + 6, e.y, panel.series[s].label, kInk, kScale);
  }
}

}  // namespace

Rgb series_colour(std::size_t index) {
  // matplotlib's tab10 without its grey, which would read as the grid or the axes.
  static const Rgb palette[] = {{31, 119, 180},  {255, 127, 14},  {44, 160, 44},
                                {214, 39, 40},   {148, 103, 189}, {140, 86, 75},
                                {227, 119, 194}, {188, 189, 34},  {23, 190, 207}};
  return palette[index % (sizeof palette / sizeof palette[0])];
}

PixelRect plot_area(const std::vector<PlotPanel>& panels, std::size_t index, int panel_width,
                    int panel_height) {
  validate(panels, panel_width, panel_height);
  if (index >= panels.size())
    throw ArgumentError("plot_area", "index",
                        "is " + std::to_string(index) + " but there are " +
                            std::to_string(panels.size()) + " panels");
  return layout_panel(panels[index], index, panel_width, panel_height).plot;
}

void write_line_chart_png(const std::vector<PlotPanel>& panels, const std::string& path,
                          int panel_width, int panel_height) {
  validate(panels, panel_width, panel_height);
  std::vector<Layout> layouts;  // all of them first: a panel too small fails before any drawing
  for (std::size_t i = 0; i < panels.size(); ++i)
    layouts.push_back(layout_panel(panels[i], i, panel_width, panel_height));
  const int columns = static_cast<int>(std::min<std::size_t>(panels.size(), 3));
  const int rows = static_cast<int>((panels.size() + 2) / 3);
  Canvas canvas(columns * panel_width, rows * panel_height, kWhite);
  for (std::size_t i = 0; i < panels.size(); ++i) draw_panel(canvas, panels[i], layouts[i]);
  canvas.write_png(path);
}

}  // namespace losa::tools
