#include "lib/diff.h"

#include <algorithm>
#include <cstdint>

namespace stratus::cli {

std::vector<std::string> SplitLines(const std::string& text) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start < text.size()) {
    size_t nl = text.find('\n', start);
    if (nl == std::string::npos) {
      out.push_back(text.substr(start));
      break;
    }
    out.push_back(text.substr(start, nl - start));
    start = nl + 1;
  }
  return out;
}

namespace {

enum class Op { kKeep, kDel, kAdd };
struct Edit {
  Op op;
  size_t a;  // index in a (kKeep, kDel)
  size_t b;  // index in b (kKeep, kAdd)
};

// Edit script by longest common subsequence over the lines between the common prefix and suffix.
std::vector<Edit> EditScript(const std::vector<std::string>& a, const std::vector<std::string>& b) {
  size_t pre = 0;
  while (pre < a.size() && pre < b.size() && a[pre] == b[pre]) ++pre;
  size_t suf = 0;
  while (suf < a.size() - pre && suf < b.size() - pre && a[a.size() - 1 - suf] == b[b.size() - 1 - suf]) ++suf;
  size_t n = a.size() - pre - suf, m = b.size() - pre - suf;

  std::vector<Edit> edits;
  for (size_t i = 0; i < pre; ++i) edits.push_back({Op::kKeep, i, i});
  if (n * m > 16'000'000) {
    // Too large for the quadratic table: show the middle as replaced wholesale.
    for (size_t i = 0; i < n; ++i) edits.push_back({Op::kDel, pre + i, 0});
    for (size_t j = 0; j < m; ++j) edits.push_back({Op::kAdd, 0, pre + j});
  } else {
    // lcs[i][j] = LCS length of a[pre+i..] and b[pre+j..].
    std::vector<uint32_t> lcs((n + 1) * (m + 1), 0);
    auto at = [&](size_t i, size_t j) -> uint32_t& { return lcs[i * (m + 1) + j]; };
    for (size_t i = n; i-- > 0;) {
      for (size_t j = m; j-- > 0;) {
        at(i, j) = a[pre + i] == b[pre + j] ? at(i + 1, j + 1) + 1 : std::max(at(i + 1, j), at(i, j + 1));
      }
    }
    size_t i = 0, j = 0;
    while (i < n || j < m) {
      if (i < n && j < m && a[pre + i] == b[pre + j]) {
        edits.push_back({Op::kKeep, pre + i, pre + j});
        ++i;
        ++j;
      } else if (j < m && (i == n || at(i, j + 1) > at(i + 1, j))) {
        edits.push_back({Op::kAdd, 0, pre + j});
        ++j;
      } else {
        edits.push_back({Op::kDel, pre + i, 0});
        ++i;
      }
    }
  }
  for (size_t k = 0; k < suf; ++k) edits.push_back({Op::kKeep, a.size() - suf + k, b.size() - suf + k});
  return edits;
}

std::string Range(size_t start, size_t count) {
  // diff -u: 1-based start; an empty range names the line before it.
  if (count == 0) return std::to_string(start) + ",0";
  if (count == 1) return std::to_string(start + 1);
  return std::to_string(start + 1) + "," + std::to_string(count);
}

}  // namespace

std::string UnifiedDiff(const std::string& a_text, const std::string& b_text, const std::string& a_label,
                        const std::string& b_label, int context) {
  if (a_text == b_text) return "";
  std::vector<std::string> a = SplitLines(a_text), b = SplitLines(b_text);
  std::vector<Edit> edits = EditScript(a, b);
  size_t ctx = context < 0 ? 0 : static_cast<size_t>(context);

  std::string out = "--- " + a_label + "\n+++ " + b_label + "\n";
  size_t k = 0;
  while (k < edits.size()) {
    // Find the next change.
    while (k < edits.size() && edits[k].op == Op::kKeep) ++k;
    if (k == edits.size()) break;
    size_t start = k >= ctx ? k - ctx : 0;
    // Extend the hunk while changes are within 2*ctx lines of each other.
    size_t end = k;
    size_t last_change = k;
    while (end < edits.size()) {
      if (edits[end].op != Op::kKeep) {
        last_change = end;
      } else if (end - last_change > 2 * ctx) {
        break;
      }
      ++end;
    }
    end = std::min(edits.size(), last_change + ctx + 1);

    // Hunk header: positions of its first line in a and b.
    size_t a_start = 0, b_start = 0, a_count = 0, b_count = 0;
    bool a_set = false, b_set = false;
    std::string body;
    for (size_t e = start; e < end; ++e) {
      const Edit& ed = edits[e];
      if (ed.op != Op::kAdd) {
        if (!a_set) a_start = ed.a, a_set = true;
        ++a_count;
      }
      if (ed.op != Op::kDel) {
        if (!b_set) b_start = ed.b, b_set = true;
        ++b_count;
      }
      char mark = ed.op == Op::kKeep ? ' ' : (ed.op == Op::kDel ? '-' : '+');
      body += mark;
      body += ed.op == Op::kAdd ? b[ed.b] : a[ed.a];
      body += '\n';
    }
    if (!a_set) {
      // Pure insertion: the a-range starts after the lines that precede the hunk in a.
      size_t before = 0;
      for (size_t e = 0; e < start; ++e) before += edits[e].op != Op::kAdd;
      a_start = before;
    }
    if (!b_set) {
      size_t before = 0;
      for (size_t e = 0; e < start; ++e) before += edits[e].op != Op::kDel;
      b_start = before;
    }
    out += "@@ -" + Range(a_start, a_count) + " +" + Range(b_start, b_count) + " @@\n" + body;
    k = end;
  }
  return out;
}

}  // namespace stratus::cli
