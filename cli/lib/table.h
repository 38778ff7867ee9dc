// Column-aligned text tables as kubectl prints them: upper-case headers, columns separated by three spaces,
// the last column unpadded.
#pragma once

#include <ostream>
#include <string>
#include <vector>

namespace stratus::cli {

class Table {
 public:
  explicit Table(std::vector<std::string> headers) : headers_(std::move(headers)) {}
  void AddRow(std::vector<std::string> row) { rows_.push_back(std::move(row)); }
  size_t size() const { return rows_.size(); }
  // Writes the header and every row, aligned.
  void Render(std::ostream& out) const;
  std::string ToString() const;
  // Column widths over the header and the rows (used to keep later streamed rows aligned).
  std::vector<size_t> Widths() const;

 private:
  std::vector<std::string> headers_;
  std::vector<std::vector<std::string>> rows_;
};

// Formats one row padded to `widths` (growing widths where a cell is longer).
std::string FormatRow(const std::vector<std::string>& cells, std::vector<size_t>& widths);

}  // namespace stratus::cli
