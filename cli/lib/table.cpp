#include "lib/table.h"

#include <sstream>

namespace stratus::cli {

namespace {
constexpr size_t kGap = 3;

// Display width of UTF-8 text: counts code points, not bytes.
size_t DisplayWidth(const std::string& s) {
  size_t n = 0;
  for (unsigned char c : s) {
    if ((c & 0xC0) != 0x80) ++n;
  }
  return n;
}
}  // namespace

std::string FormatRow(const std::vector<std::string>& cells, std::vector<size_t>& widths) {
  if (widths.size() < cells.size()) widths.resize(cells.size(), 0);
  std::string line;
  for (size_t i = 0; i < cells.size(); ++i) {
    // Cells are single-line: embedded newlines would break the table.
    std::string cell = cells[i];
    for (auto& c : cell) {
      if (c == '\n' || c == '\r' || c == '\t') c = ' ';
    }
    size_t w = DisplayWidth(cell);
    if (w > widths[i]) widths[i] = w;
    line += cell;
    if (i + 1 < cells.size()) line.append(widths[i] - w + kGap, ' ');
  }
  while (!line.empty() && line.back() == ' ') line.pop_back();
  return line;
}

std::vector<size_t> Table::Widths() const {
  std::vector<size_t> w(headers_.size(), 0);
  for (size_t i = 0; i < headers_.size(); ++i) w[i] = DisplayWidth(headers_[i]);
  for (const auto& r : rows_) {
    if (w.size() < r.size()) w.resize(r.size(), 0);
    for (size_t i = 0; i < r.size(); ++i) {
      std::string cell = r[i];
      size_t cw = DisplayWidth(cell);
      if (cw > w[i]) w[i] = cw;
    }
  }
  return w;
}

void Table::Render(std::ostream& out) const {
  std::vector<size_t> w = Widths();
  out << FormatRow(headers_, w) << "\n";
  for (const auto& r : rows_) out << FormatRow(r, w) << "\n";
}

std::string Table::ToString() const {
  std::ostringstream ss;
  Render(ss);
  return ss.str();
}

}  // namespace stratus::cli
