// Real fork/exec tests for sys::Spawn and sys::ResolveCommand. The children are small /bin/sh
// scripts that write what they were given (fds, environment, signal state) to a file.
#include "sys/spawn.h"

#include <doctest/doctest.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <climits>
#include <cstdlib>
#include <string>

#include "proc.h"
#include "sys_test_util.h"

namespace einhorn {
namespace {

using namespace std::chrono_literals;
using test::ChildGuard;
using test::ReadFile;
using test::ShellPlan;
using test::TempDir;

// Runs the plan to completion and returns the child's wait status.
int RunToExit(const sys::SpawnPlan& plan) {
  core::Result<pid_t> r = sys::Spawn(plan);
  REQUIRE_MESSAGE(r.ok(), r.error());
  ChildGuard child(r.value());
  std::optional<int> status = child.Wait(10s);
  REQUIRE(status.has_value());
  return *status;
}

bool ExitedZero(int status) { return WIFEXITED(status) && WEXITSTATUS(status) == 0; }

int OpenFile(const std::string& path, int flags) {
  const int fd = open(path.c_str(), flags | O_RDWR | O_CREAT, 0644);
  REQUIRE(fd >= 0);
  return fd;
}

TEST_CASE("spawn: the child gets stdio and pass_fds at 3.. and nothing else") {
  TempDir dir;
  const std::string out = dir.File("out");
  const int a = OpenFile(dir.File("a"), O_CLOEXEC);
  const int b = OpenFile(dir.File("b"), O_CLOEXEC);
  const int leak = OpenFile(dir.File("leak"), 0);  // not CLOEXEC on purpose: must not leak

  // b twice, and out of order, to exercise the two-phase placement.
  sys::SpawnPlan plan = ShellPlan(
      "exec > \"$OUT\"; ls /proc/$$/fd; readlink /proc/$$/fd/3 /proc/$$/fd/4 /proc/$$/fd/5", out);
  plan.pass_fds = {b, a, b};
  CHECK(ExitedZero(RunToExit(plan)));
  CHECK(ReadFile(out) ==
        "0\n1\n2\n3\n4\n5\n" + dir.File("b") + "\n" + dir.File("a") + "\n" + dir.File("b") + "\n");

  // The parent's descriptors are untouched: still open, still CLOEXEC.
  CHECK((fcntl(a, F_GETFD) & FD_CLOEXEC) != 0);
  CHECK((fcntl(b, F_GETFD) & FD_CLOEXEC) != 0);
  CHECK((fcntl(leak, F_GETFD) & FD_CLOEXEC) == 0);
  close(a);
  close(b);
  close(leak);
}

TEST_CASE("spawn: stdin, stdout and stderr are inherited") {
  TempDir dir;
  const std::string out = dir.File("out");
  // The substitution's subshell reads the shell's fds before any redirection touches them.
  sys::SpawnPlan plan = ShellPlan(
      "x=$(readlink /proc/$$/fd/0 /proc/$$/fd/1 /proc/$$/fd/2); echo \"$x\" > \"$OUT\"", out);
  CHECK(ExitedZero(RunToExit(plan)));
  std::string expected;
  for (int fd = 0; fd <= 2; ++fd) {
    char buf[PATH_MAX];
    const ssize_t n =
        readlink(("/proc/self/fd/" + std::to_string(fd)).c_str(), buf, sizeof(buf) - 1);
    REQUIRE(n > 0);
    expected += std::string(buf, static_cast<size_t>(n)) + "\n";
  }
  CHECK(ReadFile(out) == expected);
}

TEST_CASE("spawn: fds already sitting in the target range are swapped, error pipe moved away") {
  // Runs in a disposable forked helper that owns fds 3, 4, 10 and 11, so pass_fds = {10, 11,
  // 3, 4} must cross over, and pipe2 lands on 5/6 inside the target range 3..6.
  TempDir dir;
  const std::string out = dir.File("out");
  const pid_t helper = fork();
  REQUIRE(helper >= 0);
  if (helper == 0) {
    const char* names[] = {"a", "b", "c", "d"};
    const int targets[] = {3, 4, 10, 11};
    int high[4];
    for (int i = 0; i < 4; ++i) {
      const int fd = open(dir.File(names[i]).c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
      high[i] = fcntl(fd, F_DUPFD_CLOEXEC, 100 + i);
      close(fd);
    }
    for (int i = 0; i < 4; ++i) {
      if (dup3(high[i], targets[i], O_CLOEXEC) < 0) _exit(3);
      close(high[i]);
    }
    close_range(5, 9, 0);
    close_range(12, ~0U, 0);
    sys::SpawnPlan plan = ShellPlan(
        "exec > \"$OUT\"; readlink /proc/$$/fd/3 /proc/$$/fd/4 /proc/$$/fd/5 /proc/$$/fd/6;"
        " ls /proc/$$/fd",
        out);
    plan.pass_fds = {10, 11, 3, 4};
    core::Result<pid_t> r = sys::Spawn(plan);
    if (!r.ok()) _exit(2);
    int status = 0;
    while (waitpid(r.value(), &status, 0) < 0 && errno == EINTR) {
    }
    _exit(ExitedZero(status) ? 0 : 1);
  }
  ChildGuard guard(helper);
  std::optional<int> status = guard.Wait(10s);
  REQUIRE(status.has_value());
  CHECK(ExitedZero(*status));
  CHECK(ReadFile(out) == dir.File("c") + "\n" + dir.File("d") + "\n" + dir.File("a") + "\n" +
                             dir.File("b") + "\n0\n1\n2\n3\n4\n5\n6\n");
}

TEST_CASE("spawn: environment is exactly the plan's, LISTEN_PID is the child's own pid") {
  TempDir dir;
  const std::string out = dir.File("out");
  setenv("EINHORN_SPAWN_TEST_LEAK", "1", 1);
  sys::SpawnPlan plan =
      ShellPlan("echo \"$LISTEN_PID $$ $FOO ${EINHORN_SPAWN_TEST_LEAK-unset}\" > \"$OUT\"", out);
  plan.env.push_back("FOO=bar baz");
  plan.set_listen_pid = true;
  core::Result<pid_t> r = sys::Spawn(plan);
  REQUIRE_MESSAGE(r.ok(), r.error());
  ChildGuard child(r.value());
  std::optional<int> status = child.Wait(10s);
  unsetenv("EINHORN_SPAWN_TEST_LEAK");
  REQUIRE(status.has_value());
  const std::string pid = std::to_string(r.value());
  CHECK(ReadFile(out) == pid + " " + pid + " bar baz unset\n");

  plan.set_listen_pid = false;
  plan.argv[2] = "echo \"${LISTEN_PID-none}\" > \"$OUT\"";
  CHECK(ExitedZero(RunToExit(plan)));
  CHECK(ReadFile(out) == "none\n");
}

TEST_CASE("spawn: own process group and the requested niceness") {
  const int current = getpriority(PRIO_PROCESS, 0);
  const int wanted = std::min(19, current + 3);
  sys::SpawnPlan plan;
  plan.path = "/bin/sleep";
  plan.argv = {"sleep", "30"};
  plan.nice = wanted;
  core::Result<pid_t> r = sys::Spawn(plan);
  REQUIRE_MESSAGE(r.ok(), r.error());
  ChildGuard child(r.value());
  // Both are set before exec, and Spawn returns only after exec succeeded.
  const std::vector<std::string> fields = test::ProcStatFields(r.value());
  REQUIRE(fields.size() > 16);
  CHECK(fields[1] == std::to_string(getpid()));   // ppid
  CHECK(fields[2] == std::to_string(r.value()));  // pgrp: its own group
  CHECK(fields[16] == std::to_string(wanted));    // nice
  CHECK(getpgid(r.value()) == r.value());
}

TEST_CASE("spawn: ignored and blocked signals of the parent do not reach the child") {
  TempDir dir;
  const std::string out = dir.File("out");
  struct sigaction ignore {};
  ignore.sa_handler = SIG_IGN;
  struct sigaction old_pipe {};
  sigaction(SIGPIPE, &ignore, &old_pipe);
  sigset_t block;
  sigset_t old_mask;
  sigemptyset(&block);
  sigaddset(&block, SIGUSR1);
  sigaddset(&block, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &block, &old_mask);

  sys::SpawnPlan plan = ShellPlan("exec grep -E '^Sig(Blk|Ign)' /proc/self/status > \"$OUT\"", out);
  const int status = RunToExit(plan);

  pthread_sigmask(SIG_SETMASK, &old_mask, nullptr);
  sigaction(SIGPIPE, &old_pipe, nullptr);
  CHECK(ExitedZero(status));
  CHECK(ReadFile(out) == "SigBlk:\t0000000000000000\nSigIgn:\t0000000000000000\n");
}

TEST_CASE("spawn: exec failure is an error naming the step, and leaves no zombie") {
  TempDir dir;
  sys::SpawnPlan plan;
  plan.argv = {"x"};

  SUBCASE("missing path") {
    plan.path = dir.File("nope");
    core::Result<pid_t> r = sys::Spawn(plan);
    REQUIRE_FALSE(r.ok());
    CHECK(r.error() == "execve " + dir.File("nope") + ": No such file or directory");
  }
  SUBCASE("not executable") {
    plan.path = dir.File("script");
    test::WriteFile(plan.path, "#!/bin/sh\nexit 0\n", 0644);
    core::Result<pid_t> r = sys::Spawn(plan);
    REQUIRE_FALSE(r.ok());
    CHECK(r.error() == "execve " + plan.path + ": Permission denied");
  }
  SUBCASE("bad fd in pass_fds") {
    plan.path = "/bin/true";
    const int closed = OpenFile(dir.File("f"), O_CLOEXEC);
    close(closed);
    plan.pass_fds = {closed};
    core::Result<pid_t> r = sys::Spawn(plan);
    REQUIRE_FALSE(r.ok());
    CHECK(r.error() == "fcntl(F_DUPFD_CLOEXEC): Bad file descriptor");
  }
  SUBCASE("negative fd is refused before fork") {
    plan.path = "/bin/true";
    plan.pass_fds = {-1};
    CHECK_FALSE(sys::Spawn(plan).ok());
  }
  // The failed child was reaped inside Spawn: this test process has no children left.
  errno = 0;
  CHECK(waitpid(-1, nullptr, WNOHANG) == -1);
  CHECK(errno == ECHILD);
}

TEST_CASE("spawn: pdeath_signal kills the child when its parent dies") {
  // The parent is an intermediate forked helper; this test becomes a subreaper so that the
  // orphaned child is re-parented to us and its death signal can be read with waitpid.
  REQUIRE(prctl(PR_SET_CHILD_SUBREAPER, 1) == 0);
  int report[2];
  int hold[2];
  REQUIRE(pipe2(report, O_CLOEXEC) == 0);
  REQUIRE(pipe2(hold, O_CLOEXEC) == 0);
  const pid_t helper = fork();
  REQUIRE(helper >= 0);
  if (helper == 0) {
    close(report[0]);
    close(hold[1]);
    sys::SpawnPlan plan;
    plan.path = "/bin/sleep";
    plan.argv = {"sleep", "30"};
    plan.pdeath_signal = SIGTERM;
    plan.expected_parent = getpid();
    core::Result<pid_t> r = sys::Spawn(plan);
    const pid_t grandchild = r.ok() ? r.value() : -1;
    if (write(report[1], &grandchild, sizeof(grandchild)) != sizeof(grandchild)) _exit(2);
    char c;
    while (read(hold[0], &c, 1) < 0 && errno == EINTR) {
    }
    _exit(0);  // the grandchild is not reaped: its parent dying is the point
  }
  close(report[1]);
  close(hold[0]);
  ChildGuard helper_guard(helper);

  pid_t grandchild = -1;
  pollfd p{report[0], POLLIN, 0};
  REQUIRE(poll(&p, 1, 10000) == 1);
  REQUIRE(read(report[0], &grandchild, sizeof(grandchild)) == sizeof(grandchild));
  close(report[0]);
  REQUIRE(grandchild > 0);
  ChildGuard grandchild_guard(grandchild);  // kill(-pid) reaches it even before reparenting
  CHECK(test::ProcessAlive(grandchild));

  close(hold[1]);  // lets the helper exit
  std::optional<int> helper_status = helper_guard.Wait(10s);
  REQUIRE(helper_status.has_value());
  CHECK(ExitedZero(*helper_status));

  std::optional<int> status = grandchild_guard.Wait(10s);
  prctl(PR_SET_CHILD_SUBREAPER, 0);
  REQUIRE(status.has_value());
  CHECK(WIFSIGNALED(*status));
  CHECK(WTERMSIG(*status) == SIGTERM);
}

TEST_CASE("spawn: a child whose parent is not the expected one exits 1 without exec") {
  TempDir dir;
  sys::SpawnPlan plan = ShellPlan("touch \"$OUT\"", dir.File("ran"));
  plan.pdeath_signal = SIGKILL;
  plan.expected_parent = 1;  // as if the master had died before prctl
  const int status = RunToExit(plan);
  CHECK(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 1);
  CHECK_FALSE(test::FileExists(dir.File("ran")));
}

TEST_CASE("ResolveCommand: like which") {
  TempDir dir;
  test::WriteFile(dir.File("tool"), "#!/bin/sh\n", 0755);
  test::WriteFile(dir.File("plain"), "data\n", 0644);
  mkdir(dir.File("sub").c_str(), 0755);

  SUBCASE("a bare name is searched in PATH") {
    core::Result<std::string> r = sys::ResolveCommand("tool", "/nonexistent:" + dir.path());
    REQUIRE_MESSAGE(r.ok(), r.error());
    CHECK(r.value() == dir.File("tool"));
    core::Result<std::string> sh = sys::ResolveCommand("sh", "/usr/bin:/bin");
    REQUIRE(sh.ok());
    CHECK(sh.value() == "/usr/bin/sh");
  }
  SUBCASE("the first executable match wins, non-executable ones are skipped") {
    TempDir other;
    test::WriteFile(other.File("tool"), "#!/bin/sh\n", 0644);
    core::Result<std::string> r = sys::ResolveCommand("tool", other.path() + ":" + dir.path());
    REQUIRE(r.ok());
    CHECK(r.value() == dir.File("tool"));
  }
  SUBCASE("not found") {
    core::Result<std::string> r = sys::ResolveCommand("no-such-tool-x", dir.path());
    REQUIRE_FALSE(r.ok());
    CHECK(r.error() == "could not find no-such-tool-x in PATH (" + dir.path() + ")");
  }
  SUBCASE("found only without the execute bit") {
    core::Result<std::string> r = sys::ResolveCommand("plain", dir.path());
    REQUIRE_FALSE(r.ok());
    CHECK(r.error() == dir.File("plain") + ": not executable (mode 0644)");
  }
  SUBCASE("a word with a slash is not searched, and is made absolute") {
    CHECK(sys::ResolveCommand(dir.File("tool"), "").value() == dir.File("tool"));
    CHECK(sys::ResolveCommand(dir.File("missing"), "").error() ==
          dir.File("missing") + ": No such file or directory");
    // Each refusal says what is there (issue 17.5: --check-config shows these).
    CHECK(sys::ResolveCommand(dir.File("plain"), "").error() ==
          dir.File("plain") + ": not executable (mode 0644)");
    CHECK(sys::ResolveCommand(dir.File("sub"), "").error() ==
          dir.File("sub") + ": is a directory, not a program");
    REQUIRE(symlink("/nonexistent/release/bin/work", dir.File("dangling").c_str()) == 0);
    CHECK(sys::ResolveCommand(dir.File("dangling"), "").error() ==
          dir.File("dangling") + ": a symbolic link to /nonexistent/release/bin/work, which "
                                 "does not exist");
    REQUIRE(mkfifo(dir.File("fifo").c_str(), 0755) == 0);
    CHECK(sys::ResolveCommand(dir.File("fifo"), "").error() ==
          dir.File("fifo") + ": not a regular file");

    char cwd[PATH_MAX];
    REQUIRE(getcwd(cwd, sizeof(cwd)) != nullptr);
    REQUIRE(chdir(dir.path().c_str()) == 0);
    core::Result<std::string> rel = sys::ResolveCommand("./tool", "");
    core::Result<std::string> empty_entry = sys::ResolveCommand("tool", "/nonexistent:");
    core::Result<std::string> rel_missing = sys::ResolveCommand("bin/work", "");
    REQUIRE(chdir(cwd) == 0);
    CHECK(rel_missing.error() == "bin/work: No such file or directory (relative to " +
                                     dir.path() + ", the current directory)");
    // mkdtemp under /tmp: no symlinks in the way, so getcwd gives back the same spelling.
    CHECK(rel.value() == dir.File("tool"));
    CHECK(empty_entry.value() == dir.File("tool"));  // an empty PATH entry is "."
  }
  SUBCASE("empty word") { CHECK_FALSE(sys::ResolveCommand("", "/bin").ok()); }
}

}  // namespace
}  // namespace einhorn
