// The einhornctl shell on a real terminal (a pty from forkpty): libedit's line editing and
// history recall, the history file's rules, Ctrl-C, and CLI commands typed into the shell,
// against a fake master on a real socket.
#include <doctest/doctest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include "fake_master.h"
#include "proc.h"
#include "proc_pty.h"

namespace einhorn::test {
namespace {

using namespace std::chrono_literals;

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
