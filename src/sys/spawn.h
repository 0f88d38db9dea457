// fork+exec of one worker, with every decision made before the fork (STYLE.md, "Spawning").
// The child side is one straight-line function that only makes async-signal-safe calls: no
// allocation, logging or exceptions between fork and exec.
//
// The "fork" is clone(CLONE_VM | CLONE_VFORK), as glibc's posix_spawn and CPython's vfork path
// do: the child runs on a stack of its own in the caller's memory, and the caller is suspended
// until the child has exec'd or exited. So no page table is copied and the caller takes no
// copy-on-write fault afterwards (a fork costs both, in proportion to the caller's size), and
// the outcome of the exec is known when the call returns, without a pipe. The cost: the
// caller waits for the child's setup and the kernel's part of execve (tens of microseconds),
// and a binary on a filesystem that hangs would hang the caller with it.
#pragma once

#include <sys/types.h>

#include <optional>
#include <string>
#include <vector>

#include "core/status.h"

namespace einhorn::sys {

struct SpawnPlan {
  std::string path;               // absolute path given to execve
  std::vector<std::string> argv;  // argv[0] included
  std::vector<std::string> env;   // "NAME=value" entries, without LISTEN_PID
  bool set_listen_pid = false;    // the child appends LISTEN_PID=<its own pid>
  bool set_watchdog_pid = false;  // ... and WATCHDOG_PID=<its own pid>
  std::vector<int> pass_fds;      // dup'ed to 3, 4, ... in this order, CLOEXEC cleared
  // expected_parent 0 means the caller. A child that exits 1 on this check never exec'd, but
  // Spawn still returns its pid (the error pipe just closes).
  std::optional<int> pdeath_signal;  // prctl(PR_SET_PDEATHSIG); the child then checks that
  pid_t expected_parent = 0;         // getppid() is still this, else _exit(1)
  std::optional<int> nice;           // absolute niceness for the child
  int stdout_fd = -1;                // >= 0: the child's stdout (else inherited)
  int stderr_fd = -1;                // >= 0: the child's stderr (else inherited)
};

// Starts the child in its own process group with default signal dispositions, an empty signal
// mask, stdin/stdout/stderr inherited and no other fd than pass_fds. Returns the pid once exec
// succeeded. If exec (or any setup step) failed, the child has already been reaped and the
// error names the step and errno, e.g. "execve /bin/nope: No such file or directory".
core::Result<pid_t> Spawn(const SpawnPlan& plan);

// The same, leaving a failed child to the caller's reaper: the error is only for "no child"
// (a bad plan, or clone failed). Otherwise the child exists: it exec'd (exec_error empty), or
// it failed at the step exec_error names and exits 127, to be reaped like any other child.
// The master starts its workers with this (one call per worker, no fd, no callback).
struct Launched {
  pid_t pid = -1;
  std::string exec_error;  // e.g. "execve /bin/nope: No such file or directory"
};
core::Result<Launched> Launch(const SpawnPlan& plan);

// Launch for callers that want the outcome as an fd to poll: returns with the read end of a
// status pipe (CLOEXEC; blocking unless the caller sets O_NONBLOCK) that reads EOF when exec
// succeeded, or carries the failed step, after which the child exits 127 and is reaped like
// any other child. The caller owns status_fd.
struct StartedChild {
  pid_t pid = -1;
  int status_fd = -1;
};
core::Result<StartedChild> StartSpawn(const SpawnPlan& plan);

enum class ExecState { kPending, kExeced, kFailed };
struct ExecOutcome {
  ExecState state = ExecState::kPending;
  std::string error;  // kFailed: e.g. "execve /bin/nope: No such file or directory"
};
// Reads status_fd once (it should be O_NONBLOCK): kPending when nothing is there yet. Does not
// close it.
ExecOutcome ReadExecOutcome(int status_fd, const std::string& path);

// Resolves the worker command like `which`: a word containing '/' must name an existing
// executable file; otherwise each PATH entry is tried (an empty entry is the current directory;
// an empty path_env means the system default, as execvp does with PATH unset). Returns the
// absolute path (relative paths are made absolute against the current directory).
core::Result<std::string> ResolveCommand(const std::string& word, const std::string& path_env);

}  // namespace einhorn::sys
