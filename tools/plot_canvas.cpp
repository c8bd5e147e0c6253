#include "plot_canvas.hpp"

#include <algorithm>
#include <cstdlib>
#include <fstream>

#include "losa/errors.hpp"

// The stb headers are included as system headers (tools/CMakeLists.txt), so their own warnings
// stay out of the build. stb_easy_font is all static functions: no implementation define.
#define STB_IMAGE_WRITE_IMPLEMENTATION
#define STB_IMAGE_WRITE_STATIC  // keep its symbols private to this file
#include <stb_easy_font.h>
#include <stb_image_write.h>

namespace losa::tools {
namespace {

// stb_easy_font's glyphs span 9 font units from the top of a line, the descenders of g, p, q,
// y included (its lines advance by 12).
constexpr int kGlyphUnits = 9;

// stb_easy_font indexes its tables by character - 32 and takes a mutable buffer.
std::string printable(const std::string& s) {
  std::string out = s;
  for (char& c : out)
    if (c < 32 || c > 126) c = '?';
  return out;
}

// Calls visit(x0, y0, x1, y1) for each quad of the text in font units, relative to its top-left
// corner: stb_easy_font builds every glyph from axis-aligned quads, so filling them is drawing.
template <typename Visit>
void for_each_quad(const std::string& s, Visit visit) {
  std::string text = printable(s);
  // The header's own estimate is ~270 bytes a character; 64 bytes a quad.
  std::vector<char> buffer(text.size() * 400 + 64);
  unsigned char white[4] = {255, 255, 255, 255};
  int quads =
      stb_easy_font_print(0, 0, text.data(), white, buffer.data(), static_cast<int>(buffer.size()));
  struct Vertex {
    float x, y, z;
    unsigned char colour[4];
  };
  static_assert(sizeof(Vertex) == 16, "stb_easy_font writes 16-byte vertices");
  const auto* vertices = reinterpret_cast<const Vertex*>(buffer.data());
  for (int q = 0; q < quads; ++q) {
    const Vertex& a = vertices[4 * q];      // top-left
    const Vertex& c = vertices[4 * q + 2];  // bottom-right
    visit(static_cast<int>(a.x), static_cast<int>(a.y), static_cast<int>(c.x),
          static_cast<int>(c.y));
  }
}

}  // namespace

int text_width(const std::string& s, int scale) {
  std::string text = printable(s);
  return stb_easy_font_width(text.data()) * scale;
}

int text_height(int scale) { return kGlyphUnits * scale; }

Canvas::Canvas(int width_, int height_, Rgb background)
    : width(width_),
      height(height_),
      rgb(static_cast<size_t>(width_) * height_ * 3),
      clip{0, 0, width_, height_} {
  for (size_t i = 0; i < rgb.size(); i += 3) {
    rgb[i] = background.r;
    rgb[i + 1] = background.g;
    rgb[i + 2] = background.b;
  }
}

void Canvas::set_pixel(int x, int y, Rgb colour) {
  if (!clip.contains(x, y) || x < 0 || y < 0 || x >= width || y >= height) return;
  uint8_t* p = &rgb[(static_cast<size_t>(y) * width + x) * 3];
  p[0] = colour.r;
  p[1] = colour.g;
  p[2] = colour.b;
}

void Canvas::fill_rect(int x0, int y0, int x1, int y1, Rgb colour) {
  x0 = std::max(x0, clip.left);
  y0 = std::max(y0, clip.top);
  x1 = std::min(x1, clip.right);
  y1 = std::min(y1, clip.bottom);
  for (int y = y0; y < y1; ++y)
    for (int x = x0; x < x1; ++x) set_pixel(x, y, colour);
}

void Canvas::line(int x0, int y0, int x1, int y1, Rgb colour, int thickness) {
  const int lo = -(thickness - 1) / 2, hi = thickness / 2;  // the brush: [lo, hi] around the line
  const int dx = std::abs(x1 - x0), dy = -std::abs(y1 - y0);
  const int sx = x0 < x1 ? 1 : -1, sy = y0 < y1 ? 1 : -1;
  int err = dx + dy;
  for (;;) {
    fill_rect(x0 + lo, y0 + lo, x0 + hi + 1, y0 + hi + 1, colour);
    if (x0 == x1 && y0 == y1) break;
    const int e2 = 2 * err;
    if (e2 >= dy) {
      err += dy;
      x0 += sx;
    }
    if (e2 <= dx) {
      err += dx;
      y0 += sy;
    }
  }
}

void Canvas::text(int x, int y, const std::string& s, Rgb colour, int scale) {
  for_each_quad(s, [&](int qx0, int qy0, int qx1, int qy1) {
    fill_rect(x + qx0 * scale, y + qy0 * scale, x + qx1 * scale, y + qy1 * scale, colour);
  });
}

void Canvas::text_up(int x, int y, const std::string& s, Rgb colour, int scale) {
  // Turning counter-clockwise maps the font's (u, v) to (x + v, y - u): quads stay axis-aligned.
  for_each_quad(s, [&](int qx0, int qy0, int qx1, int qy1) {
    fill_rect(x + qy0 * scale, y - qx1 * scale, x + qy1 * scale, y - qx0 * scale, colour);
  });
}

void Canvas::write_png(const std::string& path) const {
  // Encode to memory and write with checked streams: stb's own file writer ignores failed writes.
  std::vector<unsigned char> png;
  auto append = [](void* context, void* data, int size) {
    auto* out = static_cast<std::vector<unsigned char>*>(context);
    const auto* bytes = static_cast<const unsigned char*>(data);
    out->insert(out->end(), bytes, bytes + size);
  };
  if (!stbi_write_png_to_func(append, &png, width, height, 3, rgb.data(), width * 3))
    throw FileError(path, "PNG encoding failed");
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  if (!out) throw FileError(path, "cannot be opened for writing");
  out.write(reinterpret_cast<const char*>(png.data()), static_cast<std::streamsize>(png.size()));
  out.flush();
  if (!out) throw FileError(path, "the write failed");
}

}  // namespace losa::tools
