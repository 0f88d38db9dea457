// einhornctl's interactive shell, like Einhorn's einhornsh: one connection to the master, one
// command per line, each line read exactly as einhornctl's own command line (`set 8 --wait`,
// `inc 2`, `status --json`), so the shell and the CLI have one table of commands (commands.cc).
// A first word that is not an einhornctl command goes to the master as it is (einhornsh's
// `set_workers 5`, `upgrade_fleet`, `config ...`). Pure like commands.h: the lines come from a
// LineReader (the terminal's line editor, line_editor.h) or the context's input stream.
#pragma once

#include <optional>
#include <string>

#include "ctl/cli.h"
#include "ctl/commands.h"

namespace einhorn::ctl {

// Where the shell's lines come from.
class LineReader {
 public:
  virtual ~LineReader() = default;
  // The next line, without its '\n'; nullopt at the end of the input (Ctrl-D).
  virtual std::optional<std::string> Read(const std::string& prompt) = 0;
  // A line the shell ran, for the history (a no-op where there is none).
  virtual void Remember(const std::string& line) = 0;
};

// On a terminal (Context::stdin_tty): ehlo, a banner, and the prompt "einhorn> " before each
// line; the exit code is 0 at quit, exit or the end of the input. Otherwise (`einhornctl shell
// < commands`): no ehlo, no banner, no prompt, and the exit code is the last command's.
// Either way kExitUnreachable as soon as the master cannot be reached or goes away.
// Each line is split on ';' (as einhornsh does), then into words as a POSIX shell would.
// Lines come from `context.lines`, else from `context.in`.
int Shell(const Invocation& invocation, Context& context);

}  // namespace einhorn::ctl
