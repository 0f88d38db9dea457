// "Did you mean ...?": the candidate nearest to a mistyped word (a subcommand, a flag, a key),
// by edit distance. Pure.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace einhorn::core {

// Levenshtein distance (insert, delete, substitute: 1 each).
size_t EditDistance(std::string_view a, std::string_view b);

// The candidate nearest to `word` within `max_distance` edits, or one that `word` is a prefix
// of (at least 2 characters: `stat` -> status); the first such candidate wins a tie. Empty
// when none is near enough, so an unrelated word gets no suggestion.
std::string NearestWord(std::string_view word, const std::vector<std::string>& candidates,
                        size_t max_distance = 2);

}  // namespace einhorn::core
