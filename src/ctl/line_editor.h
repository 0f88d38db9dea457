// The shell's line editor on a terminal: libedit with emacs keys (arrows, Ctrl-R search of the
// history, ~/.editrc), and a history kept in a file between sessions. libedit, not GNU
// Readline: its BSD licence binds nothing else in the program, where Readline (GPL-3) would
// make einhornctl GPL-3. This is the shell's one part that touches the OS.
#pragma once

#include <cstddef>
#include <iosfwd>
#include <memory>
#include <string>
#include <vector>

#include "ctl/cli.h"
#include "ctl/shell.h"

namespace einhorn::ctl {

// The history keeps the newest lines only, and no line longer than this.
inline constexpr size_t kHistoryLines = 1000;
inline constexpr size_t kHistoryLineBytes = 4096;

// $XDG_STATE_HOME/einhorn-cpp/history, else $HOME/.local/state/einhorn-cpp/history (the XDG
// base directory rules: a relative XDG_STATE_HOME is ignored); `home` stands in for an unset
// HOME (the passwd entry). "" when there is no place at all.
std::string HistoryPath(const Env& env, const std::string& home);

// The history file, kept by the rules of sys/safe_path.h: its directories are created 0700, the
// file is written whole (a new file renamed over the old) with mode 0600, and a file that is a
// symbolic link, not a regular file, or not ours (nor its directory) is refused. A refusal or
// an error is one line on `err` ("einhornctl: not keeping the shell's history: ..."), after
// which the history stays in memory only.
class HistoryFile {
 public:
  HistoryFile(std::string path, std::ostream& err);
  ~HistoryFile();
  // The lines saved, oldest first (at most kHistoryLines). Empty when there is no file.
  std::vector<std::string> Load();
  void Save(const std::vector<std::string>& lines);
  bool enabled() const { return enabled_; }

 private:
  struct Dir;
  void Refuse(const std::string& why);
  bool CheckFile();

  std::string path_;
  std::ostream& err_;
  bool enabled_ = false;
  std::unique_ptr<Dir> dir_;
};

// libedit on stdin and stdout (a terminal), with the history in `history_path` ("" for none).
// While it lives, SIGINT ends the program with exit code 0 and the terminal as it found it
// (einhornsh's Ctrl-C).
std::unique_ptr<LineReader> OpenLineEditor(const std::string& history_path, std::ostream& err);

}  // namespace einhorn::ctl
