// sys::Launch and sys::StartSpawn on real children: the child shares the caller's memory until
// exec (clone(CLONE_VM | CLONE_VFORK)), so besides each guarantee on the child these check that
// nothing of the caller changed: its dispositions, its mask, its fds, its errno-free return.
#include <doctest/doctest.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include "proc.h"
#include "sys/spawn.h"
#include "sys_test_util.h"

namespace einhorn {
namespace {

using namespace std::chrono_literals;
using test::ChildGuard;
using test::ReadFile;
using test::ShellPlan;
using test::TempDir;

int WaitExit(pid_t pid) {
  ChildGuard child(pid);
  std::optional<int> status = child.Wait(10s);
  REQUIRE(status.has_value());
  return *status;
}

bool ExitedWith(int status, int code) { return WIFEXITED(status) && WEXITSTATUS(status) == code; }

void OnUsr1(int) {}

TEST_CASE("Launch: returns once exec'd, or with the failed step and a child left to reap") {
  TempDir dir;
  SUBCASE("exec'd") {
    sys::SpawnPlan plan = ShellPlan("exit 7", dir.File("unused"));
    auto r = sys::Launch(plan);
    REQUIRE_MESSAGE(r.ok(), r.error());
    CHECK(r.value().exec_error.empty());
    CHECK(ExitedWith(WaitExit(r.value().pid), 7));
  }
  SUBCASE("exec failed: the error names execve and the path, the child exits 127") {
    sys::SpawnPlan plan;
    plan.path = dir.File("nope");
    plan.argv = {"nope"};
    auto r = sys::Launch(plan);
    REQUIRE_MESSAGE(r.ok(), r.error());
    CHECK(r.value().pid > 0);
    CHECK(r.value().exec_error == "execve " + dir.File("nope") + ": No such file or directory");
    CHECK(ExitedWith(WaitExit(r.value().pid), 127));
  }
  SUBCASE("a setup step failed") {
    sys::SpawnPlan plan = ShellPlan("exit 0", dir.File("unused"));
    const int fd = open(dir.File("f").c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    REQUIRE(fd >= 0);
    close(fd);
    plan.pass_fds = {fd};
    auto r = sys::Launch(plan);
    REQUIRE(r.ok());
    CHECK(r.value().exec_error == "fcntl(F_DUPFD_CLOEXEC): Bad file descriptor");
    CHECK(ExitedWith(WaitExit(r.value().pid), 127));
  }
  SUBCASE("a bad plan starts nothing") {
    sys::SpawnPlan plan;
    CHECK(sys::Launch(plan).error() == "spawn: empty command");
    plan.path = "/bin/true";
    plan.argv = {"true"};
    plan.pass_fds = {-3};
    CHECK(sys::Launch(plan).error() == "spawn: invalid fd -3 in pass_fds");
    errno = 0;
    CHECK(waitpid(-1, nullptr, WNOHANG) == -1);
    CHECK(errno == ECHILD);
  }
}

TEST_CASE("Launch: the caller keeps its dispositions, mask and fds and the child gets defaults") {
  TempDir dir;
  const std::string out = dir.File("out");
  struct sigaction handler {};
  handler.sa_handler = &OnUsr1;
  sigemptyset(&handler.sa_mask);
  struct sigaction ignore {};
  ignore.sa_handler = SIG_IGN;
  struct sigaction old_usr1 {};
  struct sigaction old_pipe {};
  sigaction(SIGUSR1, &handler, &old_usr1);
  sigaction(SIGPIPE, &ignore, &old_pipe);
  sigset_t block;
  sigset_t old_mask;
  sigemptyset(&block);
  sigaddset(&block, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &block, &old_mask);
  sigset_t mask_before;
  pthread_sigmask(SIG_SETMASK, nullptr, &mask_before);
  const size_t fds_before = test::OpenFds(getpid());

  sys::SpawnPlan plan = ShellPlan("exec grep -E '^Sig(Blk|Ign)' /proc/self/status > \"$OUT\"", out);
  auto r = sys::Launch(plan);
  REQUIRE_MESSAGE(r.ok(), r.error());
  const int status = WaitExit(r.value().pid);

  // The caller: its handler and its SIG_IGN are still there, its mask is as it was, and no fd
  // was left open (no status pipe).
  struct sigaction now_usr1 {};
  struct sigaction now_pipe {};
  sigaction(SIGUSR1, nullptr, &now_usr1);
  sigaction(SIGPIPE, nullptr, &now_pipe);
  sigset_t mask_after;
  pthread_sigmask(SIG_SETMASK, nullptr, &mask_after);
  const size_t fds_after = test::OpenFds(getpid());
  pthread_sigmask(SIG_SETMASK, &old_mask, nullptr);
  sigaction(SIGUSR1, &old_usr1, nullptr);
  sigaction(SIGPIPE, &old_pipe, nullptr);

  CHECK((now_usr1.sa_handler == &OnUsr1));
  CHECK((now_pipe.sa_handler == SIG_IGN));
  CHECK(sigismember(&mask_after, SIGTERM) == 1);
  CHECK(sigismember(&mask_after, SIGUSR1) == sigismember(&mask_before, SIGUSR1));
  CHECK(sigismember(&mask_after, SIGCHLD) == sigismember(&mask_before, SIGCHLD));
  CHECK(fds_after == fds_before);
  // The child: nothing blocked or ignored (handlers are reset by exec anyway).
  CHECK(ExitedWith(status, 0));
  CHECK(ReadFile(out) == "SigBlk:\t0000000000000000\nSigIgn:\t0000000000000000\n");
}

TEST_CASE("Launch: WATCHDOG_PID and LISTEN_PID are each child's own pid, over many launches") {
  TempDir dir;
  // Many in a row: the child's stack is reused, each child formats its own pid.
  for (int i = 0; i < 40; ++i) {
    const std::string out = dir.File("out" + std::to_string(i));
    sys::SpawnPlan plan = ShellPlan("echo \"$LISTEN_PID $WATCHDOG_PID $$\" > \"$OUT\"", out);
    plan.set_listen_pid = true;
    plan.set_watchdog_pid = true;
    auto r = sys::Launch(plan);
    REQUIRE_MESSAGE(r.ok(), r.error());
    REQUIRE(r.value().exec_error.empty());
    REQUIRE(ExitedWith(WaitExit(r.value().pid), 0));
    const std::string pid = std::to_string(r.value().pid);
    CHECK(ReadFile(out) == pid + " " + pid + " " + pid + "\n");
  }
}

TEST_CASE("Launch: stdout_fd and stderr_fd become the child's 1 and 2, also when stderr's is 1") {
  TempDir dir;
  const std::string out = dir.File("out");
  const int o = open(dir.File("o").c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  const int e = open(dir.File("e").c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  REQUIRE(o >= 0);
  REQUIRE(e >= 0);
  sys::SpawnPlan plan = ShellPlan("echo to-out; echo to-err >&2", out);
  plan.stdout_fd = o;
  plan.stderr_fd = e;
  auto r = sys::Launch(plan);
  REQUIRE_MESSAGE(r.ok(), r.error());
  CHECK(ExitedWith(WaitExit(r.value().pid), 0));
  CHECK(ReadFile(dir.File("o")) == "to-out\n");
  CHECK(ReadFile(dir.File("e")) == "to-err\n");
  close(o);
  close(e);

  // A caller whose stderr file sits at fd 1 (started with stdout closed): a helper process, so
  // that this test's own stdout is left alone.
  const pid_t helper = fork();
  REQUIRE(helper >= 0);
  if (helper == 0) {
    const int err_file = open(dir.File("e1").c_str(), O_RDWR | O_CREAT | O_TRUNC, 0644);
    const int out_file = open(dir.File("o1").c_str(), O_RDWR | O_CREAT | O_TRUNC, 0644);
    if (err_file < 0 || out_file < 0 || dup2(err_file, 1) < 0) _exit(3);
    sys::SpawnPlan p = ShellPlan("echo to-out; echo to-err >&2", out);
    p.stdout_fd = out_file;
    p.stderr_fd = 1;
    auto launched = sys::Launch(p);
    if (!launched.ok() || !launched.value().exec_error.empty()) _exit(2);
    int st = 0;
    while (waitpid(launched.value().pid, &st, 0) < 0 && errno == EINTR) {
    }
    _exit(WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : 1);
  }
  CHECK(ExitedWith(WaitExit(helper), 0));
  CHECK(ReadFile(dir.File("o1")) == "to-out\n");
  CHECK(ReadFile(dir.File("e1")) == "to-err\n");
}

TEST_CASE("Launch: two threads launching at once each get their own children") {
  TempDir dir;
  std::atomic<int> failures{0};
  auto launch_many = [&](const std::string& tag) {
    for (int i = 0; i < 15; ++i) {
      const std::string out = dir.File(tag + std::to_string(i));
      sys::SpawnPlan plan = ShellPlan("echo \"$LISTEN_PID $$\" > \"$OUT\"", out);
      plan.set_listen_pid = true;
      auto r = sys::Launch(plan);
      if (!r.ok() || !r.value().exec_error.empty()) {
        ++failures;
        continue;
      }
      int st = 0;
      while (waitpid(r.value().pid, &st, 0) < 0 && errno == EINTR) {
      }
      const std::string pid = std::to_string(r.value().pid);
      if (!WIFEXITED(st) || WEXITSTATUS(st) != 0 || ReadFile(out) != pid + " " + pid + "\n") {
        ++failures;
      }
    }
  };
  std::thread other(launch_many, "b");
  launch_many("a");
  other.join();
  CHECK(failures.load() == 0);
}

TEST_CASE("StartSpawn: the status pipe reads EOF once exec'd, or the failed step") {
  TempDir dir;
  SUBCASE("exec'd") {
    sys::SpawnPlan plan = ShellPlan("exit 0", dir.File("unused"));
    auto r = sys::StartSpawn(plan);
    REQUIRE_MESSAGE(r.ok(), r.error());
    ChildGuard child(r.value().pid);
    const sys::ExecOutcome out = sys::ReadExecOutcome(r.value().status_fd, plan.path);
    close(r.value().status_fd);
    CHECK(out.state == sys::ExecState::kExeced);
    REQUIRE(child.Wait(10s).has_value());
  }
  SUBCASE("exec failed") {
    sys::SpawnPlan plan;
    plan.path = dir.File("nope");
    plan.argv = {"nope"};
    auto r = sys::StartSpawn(plan);
    REQUIRE_MESSAGE(r.ok(), r.error());
    ChildGuard child(r.value().pid);
    CHECK((fcntl(r.value().status_fd, F_GETFD) & FD_CLOEXEC) != 0);
    const sys::ExecOutcome out = sys::ReadExecOutcome(r.value().status_fd, plan.path);
    close(r.value().status_fd);
    CHECK(out.state == sys::ExecState::kFailed);
    CHECK(out.error == "execve " + plan.path + ": No such file or directory");
    std::optional<int> status = child.Wait(10s);
    REQUIRE(status.has_value());
    CHECK(ExitedWith(*status, 127));
  }
}

}  // namespace
}  // namespace einhorn
