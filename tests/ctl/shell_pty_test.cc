// The einhornctl shell on a real terminal (a pty from forkpty): libedit's line editing and
// history recall, the history file's rules, Ctrl-C, and CLI commands typed into the shell,
// against a fake master on a real socket.
#include <doctest/doctest.h>
#include <poll.h>
#include <pty.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include "fake_master.h"
#include "proc.h"

extern char** environ;

namespace einhorn::test {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

// A program on the slave side of a new pty, which is its controlling terminal (so that Ctrl-C
// is a SIGINT, as at a real keyboard).
class Pty {
 public:
  Pty(const std::vector<std::string>& argv, const std::vector<std::string>& env) {
    // The inherited environment, minus the names `env` sets, then `env`.
    std::vector<std::string> envs;
    for (char** e = environ; *e != nullptr; ++e) {
      const std::string entry = *e;
      const std::string prefix = entry.substr(0, entry.find('=') + 1);
      bool overridden = false;
      for (const std::string& x : env) overridden = overridden || x.starts_with(prefix);
      if (!overridden) envs.push_back(entry);
    }
    envs.insert(envs.end(), env.begin(), env.end());
    std::vector<char*> cargv, cenv;
    for (const std::string& a : argv) cargv.push_back(const_cast<char*>(a.c_str()));
    cargv.push_back(nullptr);
    for (const std::string& e : envs) cenv.push_back(const_cast<char*>(e.c_str()));
    cenv.push_back(nullptr);
    struct winsize ws {};
    ws.ws_row = 24;
    ws.ws_col = 200;
    pid_ = ::forkpty(&master_, nullptr, nullptr, &ws);
    REQUIRE(pid_ >= 0);
    if (pid_ == 0) {
      ::execve(cargv[0], cargv.data(), cenv.data());
      ::_exit(127);
    }
  }
  ~Pty() {
    if (pid_ > 0 && !status_) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
    if (master_ >= 0) ::close(master_);
  }

  void Type(const std::string& keys) {
    REQUIRE(::write(master_, keys.data(), keys.size()) == static_cast<ssize_t>(keys.size()));
  }
  // Reads the terminal until `needle` appears in what came after the previous WaitFor's match.
  bool WaitFor(const std::string& needle, std::chrono::milliseconds within = 10s) {
    const auto deadline = Clock::now() + within;
    for (;;) {
      const size_t at = out_.find(needle, seen_);
      if (at != std::string::npos) {
        seen_ = at + needle.size();
        return true;
      }
      const auto left =
          std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
      if (left.count() <= 0 || !ReadSome(static_cast<int>(left.count()))) return false;
    }
  }
  // The exit code (-1 for a signal), or nullopt if it did not exit in time.
  std::optional<int> WaitExit(std::chrono::milliseconds within = 10s) {
    const auto deadline = Clock::now() + within;
    while (!status_ && Clock::now() < deadline) {
      int st = 0;
      if (::waitpid(pid_, &st, WNOHANG) == pid_) {
        status_ = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
        break;
      }
      ReadSome(10);
    }
    return status_;
  }
  const std::string& out() const { return out_; }

 private:
  bool ReadSome(int ms) {
    pollfd p{master_, POLLIN, 0};
    if (::poll(&p, 1, ms) <= 0) return true;
    char buf[4096];
    const ssize_t n = ::read(master_, buf, sizeof buf);
    if (n <= 0) return false;  // EIO: the program closed the terminal
    out_.append(buf, static_cast<size_t>(n));
    return true;
  }

  pid_t pid_ = -1;
  int master_ = -1;
  std::string out_;
  size_t seen_ = 0;
  std::optional<int> status_;
};

constexpr const char* kUp = "\x1b[A";

struct ShellBench {
  TempDir dir;
  std::string sock = dir.File("m.sock");
  std::string state = dir.File("state");
  std::string history = state + "/einhorn-cpp/history";

  Pty Start() {
    return Pty({EINHORNCTL_BIN, "-d", sock}, {"XDG_STATE_HOME=" + state, "HOME=" + dir.path(),
                                              "TERM=xterm", "USER=tester", "EDITRC=/dev/null"});
  }
};

std::vector<std::string> Verbs(const FakeMaster& m) {
  std::vector<std::string> v;
  for (const core::wire::Request& r : m.requests()) v.push_back(r.command);
  return v;
}

TEST_CASE("shell on a pty: the up arrow recalls a line, CLI commands work, history is kept") {
  ShellBench b;
  FakeMaster m(b.sock, EinhornLike());
  {
    Pty p = b.Start();
    REQUIRE_MESSAGE(p.WaitFor("einhorn> "), p.out());
    p.Type("inc\r");
    REQUIRE_MESSAGE(p.WaitFor("from 2 -> 3"), p.out());
    REQUIRE(p.WaitFor("einhorn> "));
    p.Type(std::string(kUp) + "\r");  // inc again, recalled
    REQUIRE_MESSAGE(p.WaitFor("from 3 -> 4"), p.out());
    REQUIRE(p.WaitFor("einhorn> "));
    p.Type("set 2\r");  // the CLI's verb, not einhorn's set_workers
    REQUIRE_MESSAGE(p.WaitFor("Altering worker count, 4 -> 2"), p.out());
    REQUIRE(p.WaitFor("einhorn> "));
    p.Type("quit\r");
    CHECK(p.WaitExit() == 0);
  }
  const std::vector<core::wire::Request> reqs = m.requests();
  CHECK(Verbs(m) == std::vector<std::string>{"ehlo", "inc", "inc", "set_workers"});
  REQUIRE(reqs.size() == 4);
  CHECK(reqs[3].args == std::vector<std::string>{"2"});

  struct stat st {};
  REQUIRE(::lstat(b.history.c_str(), &st) == 0);
  CHECK(S_ISREG(st.st_mode));
  CHECK((st.st_mode & 07777) == 0600);
  CHECK(ReadFile(b.history) == "inc\nset 2\nquit\n");
  REQUIRE(::stat((b.state + "/einhorn-cpp").c_str(), &st) == 0);
  CHECK((st.st_mode & 07777) == 0700);

  // The next session starts with that history: up, up is `set 2`.
  {
    Pty p = b.Start();
    REQUIRE(p.WaitFor("einhorn> "));
    p.Type(std::string(kUp) + kUp + "\r");
    REQUIRE_MESSAGE(p.WaitFor("Altering worker count, 2 -> 2"), p.out());
    REQUIRE(p.WaitFor("einhorn> "));
    p.Type("\x04");  // Ctrl-D: the end of the input
    CHECK(p.WaitExit() == 0);
  }
}

TEST_CASE("shell on a pty: Ctrl-C exits 0, as einhornsh") {
  ShellBench b;
  FakeMaster m(b.sock, EinhornLike());
  Pty p = b.Start();
  REQUIRE(p.WaitFor("einhorn> "));
  p.Type("inc 3");  // half typed
  p.Type("\x03");
  CHECK_MESSAGE(p.WaitExit() == 0, p.out());
  CHECK(Verbs(m) == std::vector<std::string>{"ehlo"});
}

TEST_CASE("shell on a pty: a history file that is a symlink, or someone else's, is refused") {
  ShellBench b;
  FakeMaster m(b.sock, EinhornLike());
  REQUIRE(::mkdir(b.state.c_str(), 0700) == 0);
  REQUIRE(::mkdir((b.state + "/einhorn-cpp").c_str(), 0700) == 0);
  const std::string target = b.dir.File("target");
  WriteFile(target, "precious\n", 0644);
  REQUIRE(::symlink(target.c_str(), b.history.c_str()) == 0);
  {
    Pty p = b.Start();
    REQUIRE_MESSAGE(p.WaitFor("einhornctl: not keeping the shell's history: history file " +
                              b.history + " is a symbolic link"),
                    p.out());
    REQUIRE(p.WaitFor("einhorn> "));
    p.Type("inc\r");
    REQUIRE(p.WaitFor("from 2 -> 3"));
    p.Type("quit\r");
    CHECK(p.WaitExit() == 0);
  }
  struct stat st {};
  REQUIRE(::lstat(b.history.c_str(), &st) == 0);
  CHECK(S_ISLNK(st.st_mode));
  CHECK(ReadFile(target) == "precious\n");

  // Someone else's file (we run as root in CI: chown works; skip otherwise).
  REQUIRE(::unlink(b.history.c_str()) == 0);
  WriteFile(b.history, "inc\n", 0600);
  if (::geteuid() != 0 || ::chown(b.history.c_str(), 65534, 65534) != 0) {
    MESSAGE("skipped: cannot give a file to uid 65534 without root");
    return;
  }
  {
    Pty p = b.Start();
    REQUIRE_MESSAGE(p.WaitFor("history file " + b.history + " is owned by uid 65534, not by you"),
                    p.out());
    REQUIRE(p.WaitFor("einhorn> "));
    p.Type(std::string(kUp) + "\r");  // nothing was loaded: nothing to recall
    p.Type("quit\r");
    CHECK(p.WaitExit() == 0);
  }
  CHECK(ReadFile(b.history) == "inc\n");
  // Each session's ehlo and the first one's inc: nothing was recalled in the second.
  CHECK(Verbs(m) == std::vector<std::string>{"ehlo", "inc", "ehlo"});
}

}  // namespace
}  // namespace einhorn::test
