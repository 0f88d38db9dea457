// sys/process.h: signal mapping, reaping, fd hygiene, signal mask, niceness.
#include "sys/process.h"

#include <doctest/doctest.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <memory>
#include <string>

#include "proc.h"
#include "sys/spawn.h"
#include "sys_test_util.h"

namespace einhorn {
namespace {

using namespace std::chrono_literals;

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
  CHECK(sys::ToPlatformSignal(core::Signal::kCont) == SIGCONT);
  CHECK(sys::ToPlatformSignal(core::Signal::kWinch) == SIGWINCH);
  CHECK(sys::ToPlatformSignal(core::Signal::kIo) == SIGIO);
  for (const auto& [s, name] : core::kSignalNames) {
    CAPTURE(name);
    const int signo = sys::ToPlatformSignal(s);
    CHECK(signo > 0);
    CHECK(std::find(seen.begin(), seen.end(), signo) == seen.end());
    seen.push_back(signo);
    REQUIRE(sys::FromPlatformSignal(signo).has_value());
    CHECK(*sys::FromPlatformSignal(signo) == s);
  }
  // The name agrees with the platform's own.
  for (const auto& [s, name] : core::kSignalNames) {
    const char* abbrev = sigabbrev_np(sys::ToPlatformSignal(s));
    REQUIRE(abbrev != nullptr);
    // glibc calls SIGIO by its other name, SIGPOLL (Ruby lists both, IO first).
    CHECK(std::string("SIG") + abbrev == (s == core::Signal::kIo ? "SIGPOLL" : name));
  }
  // SIGCHLD is one of them now (the `signal` verb sends it as Einhorn does); what Ruby's
  // Signal.list lacks is not.
  CHECK(sys::FromPlatformSignal(SIGCHLD) == core::Signal::kChld);
  CHECK_FALSE(sys::FromPlatformSignal(SIGSTKFLT).has_value());
  CHECK_FALSE(sys::FromPlatformSignal(SIGRTMIN).has_value());
  CHECK_FALSE(sys::FromPlatformSignal(0).has_value());
}

TEST_CASE("ReapSome stops at its count and leaves the other zombies for the next call") {
  std::vector<pid_t> pids;
  std::vector<std::unique_ptr<test::ChildGuard>> guards;
  for (int i = 0; i < 3; ++i) {
    pids.push_back(SpawnOrFail("exit " + std::to_string(10 + i)));
    guards.push_back(std::make_unique<test::ChildGuard>(pids.back()));
  }
  // Every one a zombie: waitid(WNOWAIT) sees it ended without reaping it.
  for (const pid_t pid : pids) {
    CHECK(test::PollUntil(
        [pid] {
          siginfo_t info{};
          return waitid(P_PID, static_cast<id_t>(pid), &info, WEXITED | WNOHANG | WNOWAIT) == 0 &&
                 info.si_pid == pid;
        },
        10s, 2ms));
  }
  std::vector<sys::Reaped> got = sys::ReapSome(2);
  CHECK(got.size() == 2);
  const std::vector<sys::Reaped> rest = sys::ReapSome(2);
  CHECK(rest.size() == 1);  // fewer than asked: none is left
  got.insert(got.end(), rest.begin(), rest.end());
  for (const sys::Reaped& r : got) {
    const auto it = std::find(pids.begin(), pids.end(), r.pid);
    REQUIRE(it != pids.end());
    CHECK(r.status.code == 10 + (it - pids.begin()));
    guards[static_cast<size_t>(it - pids.begin())]->reset(-1);
  }
  CHECK(sys::ReapSome(2).empty());
}

TEST_CASE("DescribeExit") {
  CHECK(sys::DescribeExit(core::ExitStatus{false, 3}) == "exit 3");
  CHECK(sys::DescribeExit(core::ExitStatus{false, 0}) == "exit 0");
  CHECK(sys::DescribeExit(core::ExitStatus{true, 9}) == "signal 9 (SIGKILL)");
  CHECK(sys::DescribeExit(core::ExitStatus{true, SIGTERM}) == "signal 15 (SIGTERM)");
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

TEST_CASE("ProbeChild: alive, ended with its status, or not ours (someone else reaped it)") {
  const pid_t sleeper = SpawnOrFail("exec sleep 30");
  test::ChildGuard sleeper_guard(sleeper);
  CHECK(sys::ProbeChild(sleeper).kind == sys::ChildProbe::Kind::kAlive);

  const pid_t exiter = SpawnOrFail("exit 4");
  test::ChildGuard exiter_guard(exiter);
  sys::ChildProbe probe;
  REQUIRE(test::PollUntil(
      [&] {
        probe = sys::ProbeChild(exiter);
        return probe.kind != sys::ChildProbe::Kind::kAlive;
      },
      10s, 2ms));
  exiter_guard.reset(-1);
  CHECK(probe.kind == sys::ChildProbe::Kind::kExited);
  CHECK(probe.status == core::ExitStatus{false, 4});
  // Reaped now: asking again finds no such child.
  CHECK(sys::ProbeChild(exiter).kind == sys::ChildProbe::Kind::kNotOurs);

  // Not a child of ours at all, and never a process group.
  CHECK(sys::ProbeChild(getppid()).kind == sys::ChildProbe::Kind::kNotOurs);
  CHECK(sys::ProbeChild(0).kind == sys::ChildProbe::Kind::kNotOurs);
  CHECK(sys::ProbeChild(-1).kind == sys::ChildProbe::Kind::kNotOurs);
  // The sleeper was left alone by all of that.
  CHECK(sys::ProbeChild(sleeper).kind == sys::ChildProbe::Kind::kAlive);
  CHECK(sys::DescribeExit(core::ExitStatus::Unknown()) == "an unknown status");
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
