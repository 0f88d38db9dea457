// Small helpers shared by the tests/sys files: children started by the code under test (not by
// test::Process) still have to be reaped and killed on every path.
#pragma once

#include <errno.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <optional>
#include <string>
#include <thread>

#include "sys/spawn.h"

namespace einhorn::test {

// Polls waitpid(pid, WNOHANG) until the child exits or `timeout` passes; the raw wait status.
inline std::optional<int> WaitPid(pid_t pid, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (true) {
    int status = 0;
    const pid_t r = waitpid(pid, &status, WNOHANG);
    if (r == pid) return status;
    if (r < 0 && errno != EINTR) return std::nullopt;
    if (std::chrono::steady_clock::now() >= deadline) return std::nullopt;
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
}

// Owns a child pid: kills its process group and itself and reaps it, unless Wait() already
// collected it.
class ChildGuard {
 public:
  explicit ChildGuard(pid_t pid = -1) : pid_(pid) {}
  ~ChildGuard() {
    if (pid_ <= 0) return;
    kill(-pid_, SIGKILL);
    kill(pid_, SIGKILL);
    int status;
    while (waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
    }
  }
  ChildGuard(const ChildGuard&) = delete;
  ChildGuard& operator=(const ChildGuard&) = delete;

  void reset(pid_t pid) { pid_ = pid; }
  pid_t pid() const { return pid_; }
  // The wait status once the child exited within `timeout`; the guard then lets go of it.
  std::optional<int> Wait(std::chrono::milliseconds timeout) {
    std::optional<int> status = WaitPid(pid_, timeout);
    if (status) pid_ = -1;
    return status;
  }

 private:
  pid_t pid_;
};

// A plan running `script` in /bin/sh with $OUT set to `out`. Scripts start with
// `exec > "$OUT"` rather than redirecting single commands: dash applies a command's redirection
// in the shell itself, keeping a saved copy of the old fd (at 10), which would show up in
// /proc/$$/fd.
inline sys::SpawnPlan ShellPlan(const std::string& script, const std::string& out) {
  sys::SpawnPlan plan;
  plan.path = "/bin/sh";
  plan.argv = {"sh", "-c", script};
  plan.env = {"OUT=" + out, "PATH=/usr/bin:/bin"};
  return plan;
}

}  // namespace einhorn::test
