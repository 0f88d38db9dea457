// core/text.h's suggestions: "did you mean" for mistyped commands and options.
#include "core/text.h"

#include <doctest/doctest.h>

namespace einhorn::core::text {
namespace {

TEST_CASE("nearest: edit distance") {
  CHECK(EditDistance("", "") == 0);
  CHECK(EditDistance("stats", "status") == 1);
  CHECK(EditDistance("numbr", "number") == 1);
  CHECK(EditDistance("kitten", "sitting") == 3);
  CHECK(EditDistance("", "abc") == 3);
}

TEST_CASE("nearest: the nearest candidate, a prefix, or nothing") {
  const std::vector<std::string> verbs = {"status", "state", "inc", "dec", "set", "upgrade"};
  CHECK(NearestWord("stats", verbs) == "status");
  CHECK(NearestWord("upgarde", verbs) == "upgrade");
  CHECK(NearestWord("status", verbs) == "status");
  CHECK(NearestWord("upg", verbs) == "upgrade");  // a prefix of one
  CHECK(NearestWord("frobnicate", verbs).empty());
  CHECK(NearestWord("", verbs).empty());
  CHECK(NearestWord("x", verbs).empty());
  CHECK(NearestWord("stats", {}).empty());
  // A huge word is cheap and gets nothing.
  CHECK(NearestWord(std::string(100000, 's'), verbs).empty());
}

}  // namespace
}  // namespace einhorn::core::text
