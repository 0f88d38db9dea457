// sys/process.h: signal mapping, reaping, fd hygiene, signal mask, niceness.
#include "sys/process.h"

#include <doctest/doctest.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <string>

#include "proc.h"
#include "sys/spawn.h"
#include "sys_test_util.h"

namespace einhorn {
namespace {

using namespace std::chrono_literals;

constexpr core::Signal kAll[] = {
    core::Signal::kHup,  core::Signal::kInt,  core::Signal::kQuit, core::Signal::kKill,
    core::Signal::kUsr1, core::Signal::kUsr2, core::Signal::kTerm, core::Signal::kTtin,
    core::Signal::kTtou, core::Signal::kAbrt,
};

pid_t SpawnOrFail(const std::string& script) {
  sys::SpawnPlan plan;
  plan.path = "/bin/sh";
  plan.argv = {"sh", "-c", script};
  core::Result<pid_t> r = sys::Spawn(plan);
  REQUIRE_MESSAGE(r.ok(), r.error());
  return r.value();
}

// ReapAll until `pid` shows up or the deadline passes.
std::optional<sys::Reaped> ReapUntil(pid_t pid) {
  std::optional<sys::Reaped> found;
  test::PollUntil(
      [&] {
        for (const sys::Reaped& r : sys::ReapAll()) {
          if (r.pid == pid) found = r;
        }
        return found.has_value();
      },
      10s, 2ms);
  return found;
}

TEST_CASE("signals: every core::Signal maps to a platform signal and back") {
  CHECK(sys::ToPlatformSignal(core::Signal::kTerm) == SIGTERM);
  CHECK(sys::ToPlatformSignal(core::Signal::kKill) == SIGKILL);
  CHECK(sys::ToPlatformSignal(core::Signal::kTtin) == SIGTTIN);
  std::vector<int> seen;
  for (core::Signal s : kAll) {
    const int signo = sys::ToPlatformSignal(s);
    CHECK(signo > 0);
    CHECK(std::find(seen.begin(), seen.end(), signo) == seen.end());
    seen.push_back(signo);
    REQUIRE(sys::FromPlatformSignal(signo).has_value());
    CHECK(*sys::FromPlatformSignal(signo) == s);
  }
  CHECK_FALSE(sys::FromPlatformSignal(SIGCHLD).has_value());
  CHECK_FALSE(sys::FromPlatformSignal(0).has_value());
}

TEST_CASE("DescribeExit") {
  CHECK(sys::DescribeExit(core::ExitStatus{false, 3}) == "exit 3");
  CHECK(sys::DescribeExit(core::ExitStatus{false, 0}) == "exit 0");
  CHECK(sys::DescribeExit(core::ExitStatus{true, 9}) == "signal 9 (SIGKILL)");
  CHECK(sys::DescribeExit(core::ExitStatus{true, SIGTERM}) == "signal 15 (SIGTERM)");
}

TEST_CASE("ReapOne: running, exited, and not ours (reaped elsewhere) told apart") {
  CHECK(sys::DescribeExit(core::ExitStatus::Unknown()) ==
        "an unknown status (another process reaped it)");
  CHECK_FALSE(sys::ReapOne(0).has_value());  // never "any child of the group"
  CHECK_FALSE(sys::ReapOne(-1).has_value());  // nor "any child"

  const pid_t sleeper = SpawnOrFail("exec sleep 30");
  test::ChildGuard sleeper_guard(sleeper);
  CHECK_FALSE(sys::ReapOne(sleeper).has_value());  // running

  CHECK(sys::SendSignal(sleeper, core::Signal::kKill) == 0);
  std::optional<sys::Reaped> gone;
  for (int i = 0; i < 500 && !gone; ++i) {
    gone = sys::ReapOne(sleeper);
    if (!gone) usleep(10'000);
  }
  REQUIRE(gone.has_value());
  sleeper_guard.reset(-1);
  CHECK(gone->status.signaled);
  CHECK(gone->status.code == SIGKILL);
  CHECK_FALSE(gone->status.unknown());

  // Reaped already (as a --reexec-as shell would have): ECHILD, status unknown.
  const std::optional<sys::Reaped> again = sys::ReapOne(sleeper);
  REQUIRE(again.has_value());
  CHECK(again->status.unknown());
  CHECK(again->status.code == -1);
  // Not our child at all.
  const std::optional<sys::Reaped> init = sys::ReapOne(1);
  REQUIRE(init.has_value());
  CHECK(init->status.unknown());
}

TEST_CASE("ReapAll: exit codes and signals, nothing when no child has exited") {
  CHECK(sys::ReapAll().empty());  // no children at all (ECHILD)

  const pid_t sleeper = SpawnOrFail("exec sleep 30");
  test::ChildGuard sleeper_guard(sleeper);
  CHECK(sys::ReapAll().empty());  // a child exists but has not exited

  const pid_t exiter = SpawnOrFail("exit 3");
  test::ChildGuard exiter_guard(exiter);
  std::optional<sys::Reaped> exited = ReapUntil(exiter);
  REQUIRE(exited.has_value());
  exiter_guard.reset(-1);
  CHECK_FALSE(exited->status.signaled);
  CHECK(exited->status.code == 3);

  CHECK(sys::SendSignal(sleeper, core::Signal::kTerm) == 0);
  std::optional<sys::Reaped> killed = ReapUntil(sleeper);
  REQUIRE(killed.has_value());
  sleeper_guard.reset(-1);
  CHECK(killed->status.signaled);
  CHECK(killed->status.code == SIGTERM);

  CHECK(sys::SendSignal(sleeper, core::Signal::kTerm) == ESRCH);  // reaped: gone
  CHECK(sys::SendSignal(0, core::Signal::kTerm) == ESRCH);        // never a process group
  CHECK(sys::SendSignal(-1, core::Signal::kTerm) == ESRCH);
}

TEST_CASE("CloexecFrom3 marks every inherited fd close-on-exec") {
  const int fd = open("/dev/null", O_RDONLY);  // no O_CLOEXEC
  REQUIRE(fd >= 3);
  REQUIRE((fcntl(fd, F_GETFD) & FD_CLOEXEC) == 0);
  sys::CloexecFrom3();
  CHECK((fcntl(fd, F_GETFD) & FD_CLOEXEC) != 0);
  CHECK((fcntl(0, F_GETFD) & FD_CLOEXEC) == 0);  // stdio untouched
  close(fd);
}

TEST_CASE("ResetSignalMask unblocks everything") {
  sigset_t block;
  sigset_t old;
  sigemptyset(&block);
  sigaddset(&block, SIGUSR1);
  sigaddset(&block, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &block, &old);
  sys::ResetSignalMask();
  sigset_t now;
  pthread_sigmask(SIG_SETMASK, nullptr, &now);
  CHECK(sigismember(&now, SIGUSR1) == 0);
  CHECK(sigismember(&now, SIGHUP) == 0);
  pthread_sigmask(SIG_SETMASK, &old, nullptr);
}

TEST_CASE("SetNice sets this process's niceness") {
  // In a forked child: niceness cannot be lowered again without privileges.
  const pid_t pid = fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    const int wanted = std::min(19, getpriority(PRIO_PROCESS, 0) + 2);
    const bool ok = sys::SetNice(wanted).ok() && getpriority(PRIO_PROCESS, 0) == wanted;
    _exit(ok ? 0 : 1);
  }
  test::ChildGuard child(pid);
  std::optional<int> status = child.Wait(10s);
  REQUIRE(status.has_value());
  CHECK(WIFEXITED(*status));
  CHECK(WEXITSTATUS(*status) == 0);
}

}  // namespace
}  // namespace einhorn
