#include "core/nearest.h"

#include <algorithm>

namespace einhorn::core {

size_t EditDistance(std::string_view a, std::string_view b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diagonal = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      const size_t above = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] != b[j - 1])});
      diagonal = above;
    }
  }
  return row[b.size()];
}

std::string NearestWord(std::string_view word, const std::vector<std::string>& candidates,
                        size_t max_distance) {
  if (word.empty()) return {};
  std::string best;
  size_t best_distance = max_distance + 1;
  for (const std::string& c : candidates) {
    if (c == word) return c;
    // Capped: a 100 kB word costs no more than a short one (the distance is then large anyway).
    if (word.size() > c.size() + max_distance) continue;
    const size_t d = EditDistance(word, c);
    if (d < best_distance) best = c, best_distance = d;
  }
  if (!best.empty()) return best;
  if (word.size() >= 2) {
    for (const std::string& c : candidates) {
      if (c.starts_with(word)) return c;
    }
  }
  return {};
}

}  // namespace einhorn::core
