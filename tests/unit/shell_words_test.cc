// ShellSplit against Ruby's Shellwords.split (what Einhorn does to --reexec-as), rule by rule.
#include "core/shell_words.h"

#include <doctest/doctest.h>

#include <string>
#include <vector>

namespace einhorn::core {
namespace {

using Words = std::vector<std::string>;

Words Split(std::string_view line) {
  const Result<Words> r = ShellSplit(line);
  REQUIRE_MESSAGE(r.ok(), r.error());
  return r.value();
}

std::string SplitError(std::string_view line) {
  const Result<Words> r = ShellSplit(line);
  REQUIRE_FALSE(r.ok());
  return r.error();
}

TEST_CASE("shell words: whitespace separates words") {
  CHECK(Split("env FOO=bar ruby /path/einhorn") ==
        Words{"env", "FOO=bar", "ruby", "/path/einhorn"});
  CHECK(Split("  a \t b\n\nc\v\fd\r ") == Words{"a", "b", "c", "d"});
  CHECK(Split("").empty());
  CHECK(Split(" \t\n ").empty());
  // Only ASCII whitespace: UTF-8 text (here a no-break space) is part of a word.
  CHECK(Split("caf\xc3\xa9 a\xc2\xa0" "b") == Words{"caf\xc3\xa9", "a\xc2\xa0" "b"});
}

TEST_CASE("shell words: quotes, escapes and concatenation") {
  CHECK(Split(R"(a "b c" 'd e' f\ g)") == Words{"a", "b c", "d e", "f g"});
  CHECK(Split(R"(a"b"'c'd)") == Words{"abcd"});
  CHECK(Split(R"('' "" x)") == Words{"", "", "x"});
  CHECK(Split(R"(x '')") == Words{"x", ""});
}

TEST_CASE("shell words: single quotes keep every byte") {
  CHECK(Split(R"('a\b "c" $d')") == Words{R"(a\b "c" $d)"});
  CHECK(Split("'multi\nline'") == Words{"multi\nline"});
}

TEST_CASE("shell words: double quotes unescape only $ ` \" \\ and newline") {
  CHECK(Split(R"("\$ \` \" \\")") == Words{R"($ ` " \)"});
  CHECK(Split("\"a\\\nb\"") == Words{"a\nb"});
  CHECK(Split(R"("\a\n\'")") == Words{R"(\a\n\')"});
  CHECK(Split(R"("\\\\n")") == Words{R"(\\n)"});
  CHECK(Split(R"("it's")") == Words{"it's"});
}

TEST_CASE("shell words: a backslash outside quotes escapes the next byte") {
  CHECK(Split(R"(a\ b \' \" \\ \x)") == Words{"a b", "'", "\"", "\\", "x"});
  CHECK(Split(R"(a\)") == Words{"a\\"});    // a trailing one is kept
  CHECK(Split("a\\\nb") == Words{"a\\\nb"});  // before a newline, both are kept, as Ruby
  CHECK(Split(R"(\'quoted\')") == Words{"'quoted'"});
}

TEST_CASE("shell words: unmatched quotes and NUL bytes are errors") {
  CHECK(SplitError("ruby 'x") == R"(unmatched quote in "ruby 'x")");
  CHECK(SplitError("the farmer's wife").find("unmatched quote in ") == 0);
  CHECK(SplitError(R"(a "b)").find("unmatched quote") == 0);
  CHECK(SplitError(R"(a "b\")").find("unmatched quote") == 0);  // the quote is escaped
  CHECK(SplitError(R"("b\)").find("unmatched quote") == 0);
  CHECK(SplitError("'").find("unmatched quote") == 0);
  CHECK(SplitError(std::string("a\0b", 3)).find("NUL byte in ") == 0);
}

}  // namespace
}  // namespace einhorn::core
