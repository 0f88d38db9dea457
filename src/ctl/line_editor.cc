#include "ctl/line_editor.h"

#include <errno.h>
#include <fcntl.h>
#include <histedit.h>
#include <signal.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <optional>
#include <ostream>
#include <utility>

#include "sys/posix.h"
#include "sys/safe_path.h"

namespace einhorn::ctl {
namespace {

// Reading more than this of an old history file is pointless: kHistoryLines lines fit.
constexpr size_t kHistoryFileBytes = kHistoryLines * (kHistoryLineBytes + 1);

std::string Get(const Env& env, const char* name) {
  const auto it = env.find(name);
  return it == env.end() ? std::string() : it->second;
}

// mkdir -p, the directories it creates 0700 (private, as the XDG rules ask).
core::Status MakeDirs(const std::string& dir) {
  for (size_t slash = 1; slash != std::string::npos;) {
    slash = dir.find('/', slash + 1);
    const std::string prefix = dir.substr(0, slash);
    if (::mkdir(prefix.c_str(), 0700) != 0 && errno != EEXIST) {
      return core::Status::Error("cannot create " + prefix + ": " + std::strerror(errno));
    }
  }
  return core::Status::Ok();
}

bool Usable(const std::string& line) {
  return !line.empty() && line.size() <= kHistoryLineBytes &&
         line.find_first_of(std::string("\n\r\0", 3)) == std::string::npos;
}

// Ctrl-C: einhornsh exits 0. The terminal goes back to how the shell found it (libedit may be
// in the middle of a line, in raw mode).
struct termios g_saved_termios;
bool g_have_termios = false;

extern "C" void OnInterrupt(int) {
  if (g_have_termios) ::tcsetattr(STDIN_FILENO, TCSAFLUSH, &g_saved_termios);
  const char nl = '\n';
  [[maybe_unused]] const ssize_t n = ::write(STDOUT_FILENO, &nl, 1);
  ::_exit(0);
}

class EditLineReader : public LineReader {
 public:
  EditLineReader(const std::string& history_path, std::ostream& err) {
    if (!history_path.empty()) {
      file_.emplace(history_path, err);
      for (std::string& line : file_->Load()) Add(std::move(line));
    }
    g_have_termios = ::tcgetattr(STDIN_FILENO, &g_saved_termios) == 0;
    struct sigaction sa {};
    sa.sa_handler = OnInterrupt;
    ::sigemptyset(&sa.sa_mask);
    ::sigaction(SIGINT, &sa, nullptr);

    hist_ = ::history_init();
    HistEvent ev;
    ::history(hist_, &ev, H_SETSIZE, static_cast<int>(kHistoryLines));
    for (const std::string& line : lines_) ::history(hist_, &ev, H_ENTER, line.c_str());
    el_ = ::el_init("einhornctl", stdin, stdout, stderr);
    ::el_set(el_, EL_CLIENTDATA, this);
    ::el_set(el_, EL_PROMPT, &EditLineReader::Prompt);
    ::el_set(el_, EL_EDITOR, "emacs");
    ::el_set(el_, EL_HIST, ::history, hist_);
    // libedit puts the terminal back before our SIGINT handler runs.
    ::el_set(el_, EL_SIGNAL, 1);
    ::el_source(el_, nullptr);  // ~/.editrc, $EDITRC
  }
  ~EditLineReader() override {
    ::el_end(el_);
    ::history_end(hist_);
    ::signal(SIGINT, SIG_DFL);
  }

  std::optional<std::string> Read(const std::string& prompt) override {
    prompt_ = prompt;
    int count = 0;
    const char* line = ::el_gets(el_, &count);
    if (line == nullptr || count <= 0) return std::nullopt;
    std::string text(line, static_cast<size_t>(count));
    while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.pop_back();
    return text;
  }

  void Remember(const std::string& line) override {
    if (!Usable(line) || (!lines_.empty() && lines_.back() == line)) return;
    HistEvent ev;
    ::history(hist_, &ev, H_ENTER, line.c_str());
    Add(line);
    if (file_ && file_->enabled()) file_->Save(lines_);
  }

 private:
  static char* Prompt(EditLine* el) {
    void* self = nullptr;
    ::el_get(el, EL_CLIENTDATA, &self);
    return static_cast<EditLineReader*>(self)->prompt_.data();
  }

  void Add(std::string line) {
    lines_.push_back(std::move(line));
    if (lines_.size() > kHistoryLines) lines_.erase(lines_.begin());
  }

  EditLine* el_ = nullptr;
  History* hist_ = nullptr;
  std::string prompt_;
  std::vector<std::string> lines_;  // oldest first, what the file gets
  std::optional<HistoryFile> file_;
};

}  // namespace

std::string HistoryPath(const Env& env, const std::string& home) {
  std::string state = Get(env, "XDG_STATE_HOME");
  if (state.empty() || state.front() != '/') {
    std::string h = Get(env, "HOME");
    if (h.empty()) h = home;
    if (h.empty() || h.front() != '/') return "";
    while (h.size() > 1 && h.back() == '/') h.pop_back();
    state = (h == "/" ? "" : h) + "/.local/state";
  }
  while (state.size() > 1 && state.back() == '/') state.pop_back();
  return state + "/einhorn-cpp/history";
}

struct HistoryFile::Dir {
  sys::ParentDir parent;
};

HistoryFile::HistoryFile(std::string path, std::ostream& err) : path_(std::move(path)), err_(err) {
  const std::string dir = path_.substr(0, path_.rfind('/'));
  if (core::Status s = MakeDirs(dir); !s.ok()) {
    Refuse(s.message());
    return;
  }
  core::Result<sys::ParentDir> parent = sys::OpenParent(path_);
  if (!parent.ok()) {
    Refuse("cannot open " + dir + ": " + parent.error());
    return;
  }
  struct stat st {};
  if (::fstat(parent.value().fd.get(), &st) != 0) {
    Refuse("cannot stat " + dir + ": " + std::strerror(errno));
    return;
  }
  // Whoever may rename entries in the directory may swap the file between our checks.
  if (st.st_uid != ::geteuid() && st.st_uid != 0) {
    Refuse(dir + " is owned by uid " + std::to_string(st.st_uid) + ", not by you");
    return;
  }
  if ((st.st_mode & (S_IWGRP | S_IWOTH)) != 0) {
    char mode[8];
    std::snprintf(mode, sizeof mode, "%03o", static_cast<unsigned>(st.st_mode & 0777));
    Refuse(dir + " is writable by other users (mode " + mode + ")");
    return;
  }
  dir_ = std::make_unique<Dir>(Dir{std::move(parent).value()});
  enabled_ = true;
}

HistoryFile::~HistoryFile() = default;

void HistoryFile::Refuse(const std::string& why) {
  err_ << "einhornctl: not keeping the shell's history: " << why << "\n" << std::flush;
  enabled_ = false;
}

// The file as it is now, if there is one: a regular file of ours, not a link.
bool HistoryFile::CheckFile() {
  const std::string what = "history file " + path_;
  core::Result<std::optional<struct stat>> st = sys::StatEntry(dir_->parent);
  if (!st.ok()) {
    Refuse("cannot stat " + path_ + ": " + st.error());
    return false;
  }
  if (!st.value()) return true;
  if (core::Status s = sys::CheckEntry(dir_->parent, *st.value(), what); !s.ok()) {
    Refuse(s.message());
    return false;
  }
  if (!S_ISREG(st.value()->st_mode)) {
    Refuse(what + " is not a regular file");
    return false;
  }
  if (st.value()->st_uid != ::geteuid()) {
    Refuse(what + " is owned by uid " + std::to_string(st.value()->st_uid) + ", not by you");
    return false;
  }
  return true;
}

std::vector<std::string> HistoryFile::Load() {
  std::vector<std::string> lines;
  if (!enabled_ || !CheckFile()) return lines;
  core::Result<std::optional<struct stat>> exists = sys::StatEntry(dir_->parent);
  if (!exists.ok() || !exists.value()) return lines;
  struct stat st {};
  core::Result<sys::UniqueFd> fd =
      sys::OpenEntry(dir_->parent, O_RDONLY, 0, "history file " + path_, &st);
  if (!fd.ok()) {
    Refuse(fd.error());
    return lines;
  }
  if (!S_ISREG(st.st_mode) || st.st_uid != ::geteuid()) {
    Refuse("history file " + path_ + " changed while it was opened");
    return lines;
  }
  // The newest lines are at the end: skip what cannot be kept of a huge file.
  if (st.st_size > static_cast<off_t>(kHistoryFileBytes)) {
    ::lseek(fd.value().get(), st.st_size - static_cast<off_t>(kHistoryFileBytes), SEEK_SET);
  }
  std::string text;
  char buf[65536];
  while (text.size() < kHistoryFileBytes) {
    const ssize_t n = ::read(fd.value().get(), buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    text.append(buf, static_cast<size_t>(n));
  }
  for (size_t from = 0; from < text.size();) {
    size_t nl = text.find('\n', from);
    if (nl == std::string::npos) nl = text.size();
    std::string line = text.substr(from, nl - from);
    if (Usable(line)) lines.push_back(std::move(line));
    from = nl + 1;
  }
  if (lines.size() > kHistoryLines) {
    lines.erase(lines.begin(), lines.end() - static_cast<std::ptrdiff_t>(kHistoryLines));
  }
  return lines;
}

void HistoryFile::Save(const std::vector<std::string>& lines) {
  if (!enabled_ || !CheckFile()) return;
  std::string text;
  for (const std::string& line : lines) text += line + "\n";
  if (core::Status s = sys::ReplaceEntry(dir_->parent, text, 0600); !s.ok()) {
    Refuse("cannot write " + path_ + ": " + s.message());
  }
}

std::unique_ptr<LineReader> OpenLineEditor(const std::string& history_path, std::ostream& err) {
  return std::make_unique<EditLineReader>(history_path, err);
}

}  // namespace einhorn::ctl
