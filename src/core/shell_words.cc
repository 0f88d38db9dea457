#include "core/shell_words.h"

#include "core/wire.h"

namespace einhorn::core {
namespace {

// Ruby's \s: ASCII whitespace only, so bytes of UTF-8 text are word bytes.
bool IsSpace(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r';
}

// What a backslash inside double quotes escapes (Ruby 2.2.3+, as POSIX sh): anything else
// keeps its backslash, so "a\b" is the three bytes a\b.
bool EscapableInDoubleQuotes(char c) {
  return c == '$' || c == '`' || c == '"' || c == '\\' || c == '\n';
}

}  // namespace

Result<std::vector<std::string>> ShellSplit(std::string_view line) {
  using Words = std::vector<std::string>;
  if (line.find('\0') != std::string_view::npos) {
    return Result<Words>::Error("NUL byte in " + wire::RubyStringInspect(line));
  }
  const auto unmatched = [&line] {
    return Result<Words>::Error("unmatched quote in " + wire::RubyStringInspect(line));
  };
  Words words;
  std::string field;
  bool in_word = false;  // `field` has begun, even if it is still empty ('')
  size_t i = 0;
  while (i < line.size()) {
    const char c = line[i];
    if (IsSpace(c)) {
      if (in_word) words.push_back(std::move(field));
      field.clear();
      in_word = false;
      ++i;
      continue;
    }
    in_word = true;
    if (c == '\'') {
      const size_t close = line.find('\'', i + 1);
      if (close == std::string_view::npos) return unmatched();
      field.append(line.substr(i + 1, close - i - 1));
      i = close + 1;
    } else if (c == '"') {
      size_t j = i + 1;
      for (;;) {
        if (j >= line.size()) return unmatched();
        const char d = line[j];
        if (d == '"') break;
        if (d == '\\') {
          if (j + 1 >= line.size()) return unmatched();  // the backslash takes the quote
          const char next = line[j + 1];
          if (!EscapableInDoubleQuotes(next)) field += '\\';
          field += next;
          j += 2;
        } else {
          field += d;
          ++j;
        }
      }
      i = j + 1;
    } else if (c == '\\') {
      // Ruby unescapes with /\\(.)/, whose `.` does not match a newline: a backslash before a
      // newline stays, and so does one at the very end.
      if (i + 1 < line.size() && line[i + 1] != '\n') {
        field += line[i + 1];
      } else {
        field += '\\';
        if (i + 1 < line.size()) field += '\n';
      }
      i += i + 1 < line.size() ? 2 : 1;
    } else {
      field += c;
      ++i;
    }
  }
  if (in_word) words.push_back(std::move(field));
  return words;
}

}  // namespace einhorn::core
