#pragma once
// Line charts as PNG, for `losa eval` (accuracy against token budget: one panel per context
// length, one line per attention mode). Drawn on plot_canvas.hpp's raster; no plotting library.
#include <cmath>
#include <cstddef>
#include <string>
#include <vector>

#include "plot_canvas.hpp"

namespace losa::tools {

/// One line: points joined in the order given. x and y have the same size; a NaN y is a gap
/// (no marker, and the line breaks there).
struct PlotSeries {
  std::string label;
  std::vector<double> x, y;
};

struct PlotPanel {
  std::string title, x_label, y_label;
  bool log2_x = false;  ///< x on a log2 scale (every x must be > 0), ticks at the powers of two
  double y_min = NAN, y_max = NAN;  ///< the y range; NaN: from the data, with a margin
  std::vector<PlotSeries> series;
};

/// Writes panels side by side (wrap to rows of at most 3) as one PNG; each panel has axes, ticks
/// with numeric labels (on log2_x, ticks at the powers of two in range), a title, and a legend;
/// series get distinct colours (a fixed palette) and point markers. Throws losa::FileError naming
/// the path when it cannot be written; ArgumentError for mismatched x/y sizes or no panels.
void write_line_chart_png(const std::vector<PlotPanel>& panels, const std::string& path,
                          int panel_width = 480, int panel_height = 360);

/// The colour of series `index` of a panel (a fixed palette of 9, then again from the start).
Rgb series_colour(std::size_t index);

/// Where panel `index` of write_line_chart_png's image draws its data (the inside of its axes
/// box), in image pixels. Throws ArgumentError as write_line_chart_png does.
PixelRect plot_area(const std::vector<PlotPanel>& panels, std::size_t index, int panel_width = 480,
                    int panel_height = 360);

}  // namespace losa::tools
