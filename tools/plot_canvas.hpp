#pragma once
// A small RGB raster for the chart writer (plot.cpp): pixels, lines, rectangles and bitmap text
// (stb_easy_font), saved as PNG (stb_image_write). Everything is clipped to `clip`, so layout
// code can draw without bounds checks.
#include <cstdint>
#include <string>
#include <vector>

namespace losa::tools {

struct Rgb {
  uint8_t r = 0, g = 0, b = 0;
  bool operator==(const Rgb& o) const { return r == o.r && g == o.g && b == o.b; }
};

/// A pixel rectangle, half-open: [left, right) x [top, bottom).
struct PixelRect {
  int left = 0, top = 0, right = 0, bottom = 0;
  int width() const { return right - left; }
  int height() const { return bottom - top; }
  bool contains(int x, int y) const { return x >= left && x < right && y >= top && y < bottom; }
};

struct Canvas {
  int width, height;
  std::vector<uint8_t> rgb;  ///< rows top to bottom, 3 bytes a pixel
  PixelRect clip;            ///< drawing outside it is dropped; the whole canvas at first

  Canvas(int width, int height, Rgb background);

  void set_pixel(int x, int y, Rgb colour);
  /// Fills [x0, x1) x [y0, y1).
  void fill_rect(int x0, int y0, int x1, int y1, Rgb colour);
  /// Bresenham from (x0, y0) to (x1, y1), both ends included; thickness > 1 stamps a square
  /// brush centred on the line, so thick lines keep their exact colour (no antialiasing).
  void line(int x0, int y0, int x1, int y1, Rgb colour, int thickness = 1);
  /// Text with its top-left corner at (x, y), each font unit `scale` pixels. Characters outside
  /// printable ASCII are drawn as '?' (the font has no others).
  void text(int x, int y, const std::string& s, Rgb colour, int scale = 2);
  /// The same text turned 90 degrees counter-clockwise (reading upwards), its top-left corner
  /// (before turning) at (x, y): it then spans x .. x + text_height and y - text_width .. y.
  void text_up(int x, int y, const std::string& s, Rgb colour, int scale = 2);

  /// Encodes the canvas as PNG and writes it; throws losa::FileError naming the path.
  void write_png(const std::string& path) const;
};

/// Width in pixels of one line of text at `scale`.
int text_width(const std::string& s, int scale = 2);
/// Height in pixels of one line of text at `scale`: the font's glyphs, descenders included.
int text_height(int scale = 2);

}  // namespace losa::tools
