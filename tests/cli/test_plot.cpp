// tools/plot: the PNG line charts of `losa eval`. Charts are written to a file and read back with
// stb_image (a decoder independent of the writer): image size, each series' colour where its
// data lies (and not where it does not), white background, the legend, and the errors.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include "losa/errors.hpp"
#include "plot.hpp"

#define STB_IMAGE_IMPLEMENTATION
#define STB_IMAGE_STATIC
#include <stb_image.h>

namespace losa::tools {
namespace {

struct Image {
  int width = 0, height = 0;
  std::vector<uint8_t> rgb;
  Rgb at(int x, int y) const {
    const uint8_t* p = &rgb[(static_cast<size_t>(y) * width + x) * 3];
    return {p[0], p[1], p[2]};
  }
};

Image read_png(const std::string& path) {
  Image image;
  int channels = 0;
  unsigned char* data = stbi_load(path.c_str(), &image.width, &image.height, &channels, 3);
  if (data == nullptr)
    throw std::runtime_error("stb_image cannot read " + path + ": " + stbi_failure_reason());
  image.rgb.assign(data, data + static_cast<size_t>(image.width) * image.height * 3);
  stbi_image_free(data);
  return image;
}

std::string temp_path(const std::string& name) {
  return ::testing::TempDir() + "losa_plot_" + name + ".png";
}

// Where a colour's pixels are in a rectangle: how many, and their bounding box.
struct Extent {
  int count = 0, left = 1 << 30, top = 1 << 30, right = -1, bottom = -1;
};
Extent extent(const Image& image, const PixelRect& r, Rgb colour) {
  Extent e;
  for (int y = r.top; y < r.bottom; ++y)
    for (int x = r.left; x < r.right; ++x)
      if (image.at(x, y) == colour) {
        ++e.count;
        e.left = std::min(e.left, x);
        e.right = std::max(e.right, x);
        e.top = std::min(e.top, y);
        e.bottom = std::max(e.bottom, y);
      }
  return e;
}

// Accuracy against budget, as `losa eval` draws it: y in [0, 1], every value below 0.45, so the
// upper part of each plot holds no data.
std::vector<PlotPanel> eval_like_panels() {
  const std::vector<double> budgets = {64, 128, 256, 512, 1024, 2048};
  std::vector<PlotPanel> panels;
  for (int p = 0; p < 2; ++p) {
    PlotPanel panel;
    panel.title = p == 0 ? "context 8K" : "context 32K";
    panel.x_label = "token budget";
    panel.y_label = "accuracy";
    panel.log2_x = p == 0;  // one log2 axis, one linear
    panel.y_min = 0;
    panel.y_max = 1;
    panel.series.push_back({"dense", budgets, {0.40, 0.40, 0.40, 0.40, 0.40, 0.40}});
    panel.series.push_back({"quest", budgets, {0.05, 0.10, 0.20, NAN, 0.30, 0.35}});  // one gap
    panel.series.push_back({"losa", budgets, {0.15, 0.25, 0.30, 0.35, 0.38, 0.39}});
    panels.push_back(panel);
  }
  return panels;
}

TEST(Plot, TwoPanelsThreeSeries) {
  const std::vector<PlotPanel> panels = eval_like_panels();
  const std::string path = temp_path("two_panels");
  write_line_chart_png(panels, path);
  const Image image = read_png(path);
  ASSERT_EQ(image.width, 2 * 480);  // side by side
  ASSERT_EQ(image.height, 360);

  for (std::size_t p = 0; p < panels.size(); ++p) {
    SCOPED_TRACE("panel " + std::to_string(p));
    const PixelRect plot = plot_area(panels, p);
    const PixelRect panel{static_cast<int>(p) * 480, 0, static_cast<int>(p + 1) * 480, 360};
    ASSERT_GT(plot.width(), 200);
    ASSERT_GT(plot.height(), 150);
    ASSERT_GE(plot.left, panel.left);
    ASSERT_LE(plot.right, panel.right);
    // Data ends at y <= 0.45 of [0, 1]: rows above 0.45 + a marker's reach hold no series colour.
    const int data_top = plot.bottom - static_cast<int>(0.45 * plot.height()) - 6;
    for (std::size_t s = 0; s < 3; ++s) {
      SCOPED_TRACE("series " + std::to_string(s));
      const Rgb colour = series_colour(s);
      const Extent in_plot = extent(image, plot, colour);
      // Lines (2 pixels wide) and markers from the first budget to the last.
      EXPECT_GT(in_plot.count, plot.width());
      EXPECT_LT(in_plot.left, plot.left + plot.width() / 10);
      EXPECT_GT(in_plot.right, plot.right - plot.width() / 10);
      EXPECT_GE(in_plot.top, data_top);
      // The legend below the plot shows the colour too.
      const Extent legend =
          extent(image, {panel.left, plot.bottom + 1, panel.right, panel.bottom}, colour);
      EXPECT_GT(legend.count, 20);
    }
    // dense is flat at 0.4: its pixels are a band a marker high, at 0.4 of the plot's height.
    const Extent dense = extent(image, plot, series_colour(0));
    const double row_04 = plot.bottom - 1 - 0.4 * (plot.height() - 1);
    EXPECT_NEAR(dense.top, row_04, 5);
    EXPECT_NEAR(dense.bottom, row_04, 5);
    // The empty upper part of the plot is white but for grey grid lines: no colour, mostly white.
    int white = 0, total = 0;
    for (int y = plot.top; y < data_top; ++y)
      for (int x = plot.left; x < plot.right; ++x) {
        const Rgb c = image.at(x, y);
        ASSERT_TRUE(c.r == c.g && c.g == c.b) << "coloured pixel at " << x << "," << y;
        white += c == Rgb{255, 255, 255};
        ++total;
      }
    EXPECT_GT(white, total * 9 / 10);
    // The panel's corners are background.
    for (int y : {0, 1, 2, 357, 358, 359})
      for (int x : {panel.left, panel.left + 2, panel.right - 3, panel.right - 1})
        EXPECT_TRUE(image.at(x, y) == (Rgb{255, 255, 255})) << x << "," << y;
    // Title, tick labels and axis labels: dark pixels above the plot and left of it.
    EXPECT_GT(
        extent(image, {panel.left, panel.top, panel.right, plot.top - 1}, Rgb{30, 30, 30}).count,
        50);
    EXPECT_GT(
        extent(image, {panel.left, plot.top, plot.left - 1, plot.bottom}, Rgb{30, 30, 30}).count,
        100);
  }
  std::remove(path.c_str());
}

TEST(Plot, QuestGapLeavesNoLine) {
  // quest has no value at budget 512: between 256 and 1024 only a NaN, so the column halfway
  // between those budgets (on the log2 axis: 512's) has no quest pixel.
  const std::vector<PlotPanel> panels = eval_like_panels();
  const std::string path = temp_path("gap");
  write_line_chart_png(panels, path);
  const Image image = read_png(path);
  const PixelRect plot = plot_area(panels, 0);
  const Rgb quest = series_colour(1);
  // The x range is log2 [6, 11] padded by 4% on each side.
  const double lo = 6 - 0.2, hi = 11 + 0.2;
  auto column = [&](double log2_x) {
    return static_cast<int>(
        std::lround(plot.left + (log2_x - lo) / (hi - lo) * (plot.width() - 1)));
  };
  EXPECT_EQ(extent(image, {column(9) - 3, plot.top, column(9) + 4, plot.bottom}, quest).count, 0);
  EXPECT_GT(extent(image, {column(7.5) - 1, plot.top, column(7.5) + 2, plot.bottom}, quest).count,
            0);
  std::remove(path.c_str());
}

TEST(Plot, AutomaticYRangeSpansTheData) {
  PlotPanel panel;
  panel.title = "auto";
  panel.series.push_back({"a", {1, 2, 3, 4}, {10, 20, 15, 12}});
  const std::string path = temp_path("auto");
  write_line_chart_png({panel}, path, 400, 300);
  const Image image = read_png(path);
  ASSERT_EQ(image.width, 400);
  ASSERT_EQ(image.height, 300);
  const PixelRect plot = plot_area({panel}, 0, 400, 300);
  const Extent e = extent(image, plot, series_colour(0));
  // [10, 20] with a 5% margin: the data fill about 90% of the height, centred.
  EXPECT_NEAR(e.top - plot.top, 0.05 * plot.height(), 6);
  EXPECT_NEAR(plot.bottom - 1 - e.bottom, 0.05 * plot.height(), 6);
  std::remove(path.c_str());
}

TEST(Plot, WrapsToRowsOfThree) {
  std::vector<PlotPanel> panels(4);
  for (PlotPanel& p : panels) p.series.push_back({"s", {1, 2}, {1, 2}});
  const std::string path = temp_path("wrap");
  write_line_chart_png(panels, path, 400, 300);
  const Image image = read_png(path);
  EXPECT_EQ(image.width, 3 * 400);
  EXPECT_EQ(image.height, 2 * 300);
  const PixelRect fourth = plot_area(panels, 3, 400, 300);
  EXPECT_LT(fourth.right, 400);
  EXPECT_GT(fourth.top, 300);
  EXPECT_GT(extent(image, fourth, series_colour(0)).count, 0);
  // The two empty slots of the second row are background.
  EXPECT_EQ(extent(image, {400, 300, 1200, 600}, Rgb{255, 255, 255}).count, 800 * 300);
  std::remove(path.c_str());
}

TEST(Plot, UnwritablePathIsAFileError) {
  const std::string path = "/nonexistent-dir/chart.png";
  try {
    write_line_chart_png(eval_like_panels(), path);
    FAIL() << "no error";
  } catch (const FileError& e) {
    EXPECT_EQ(e.path(), path);
    EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
  }
  std::ifstream full("/dev/full");
  if (full) {  // opens fine, every write fails
    EXPECT_THROW(write_line_chart_png(eval_like_panels(), "/dev/full"), FileError);
  }
}

TEST(Plot, ArgumentErrors) {
  std::vector<PlotPanel> panels = eval_like_panels();
  panels[1].series[2].y.pop_back();
  std::remove(temp_path("bad").c_str());  // left by an earlier, failing run
  try {
    write_line_chart_png(panels, temp_path("bad"));
    FAIL() << "no error";
  } catch (const ArgumentError& e) {
    EXPECT_EQ(e.argument(), "panels[1].series[2]");
    EXPECT_NE(std::string(e.what()).find("6 x values but 5 y values"), std::string::npos)
        << e.what();
  }
  EXPECT_FALSE(std::ifstream(temp_path("bad")).good());  // nothing written

  EXPECT_THROW(write_line_chart_png({}, temp_path("bad")), ArgumentError);

  panels = eval_like_panels();
  panels[0].series[0].x[0] = 0;  // log2 axis
  EXPECT_THROW(write_line_chart_png(panels, temp_path("bad")), ArgumentError);
  panels = eval_like_panels();
  panels[1].y_min = 2;  // above y_max
  EXPECT_THROW(write_line_chart_png(panels, temp_path("bad")), ArgumentError);
  panels = eval_like_panels();
  panels[1].series[0].y[1] = INFINITY;
  EXPECT_THROW(write_line_chart_png(panels, temp_path("bad")), ArgumentError);
  EXPECT_THROW(write_line_chart_png(eval_like_panels(), temp_path("bad"), 100, 360), ArgumentError);
}

}  // namespace
}  // namespace losa::tools
