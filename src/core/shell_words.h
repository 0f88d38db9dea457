// Ruby's Shellwords.split, which Einhorn applies to --reexec-as: a command line written as
// one string (`--reexec-as "env FOO=bar ruby /path/einhorn"`) becomes the argv to exec. Pure.
//
// The rules, as Ruby's: whitespace (space, \t, \n, \v, \f, \r) separates words; inside single
// quotes every byte is literal; inside double quotes a backslash escapes only $ ` " \ and
// newline (before any other byte it is kept); outside quotes a backslash escapes the next
// byte (but a backslash before a newline is kept with it, and a trailing one is kept);
// quoted and unquoted parts with no whitespace between them make one word (`a"b"'c'` is
// "abc"; `''` is one empty word). No expansion of any kind ($VAR, ~, globs) is done.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"

namespace einhorn::core {

// An unmatched quote, or a NUL byte (which no argv can hold), is an error naming the input:
// `unmatched quote in "ruby 'x"`. Only whitespace gives no words, which is not an error here.
Result<std::vector<std::string>> ShellSplit(std::string_view line);

}  // namespace einhorn::core
