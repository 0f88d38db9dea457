// Process-wide plumbing for the master: reaping, signals by our own names, niceness, fd hygiene.
#pragma once

#include <sys/types.h>

#include <optional>
#include <string>
#include <vector>

#include "core/status.h"
#include "core/types.h"

namespace einhorn::sys {

int ToPlatformSignal(core::Signal s);
std::optional<core::Signal> FromPlatformSignal(int signo);

// kill(2) with our signal names; returns 0 or errno (ESRCH for a reaped pid is normal).
int SendSignal(pid_t pid, core::Signal s);

// kill(-pgid): the whole process group, e.g. a child started in its own group by Spawn and
// whatever it forked. Returns 0 or errno (ESRCH: nobody is left in it).
int SignalGroup(pid_t pgid, core::Signal s);

struct Reaped {
  pid_t pid = 0;
  core::ExitStatus status;
};
// waitpid(-1, WNOHANG) until nothing is left to reap.
std::vector<Reaped> ReapAll();
// The same, stopping after `max` children have ended (fewer returned: none is left).
std::vector<Reaped> ReapSome(size_t max);
// waitpid(pid, WNOHANG) for one pid: still running (and our child), ended (reaped now, with its
// status), or not our child (ECHILD: someone else reaped it, or it never was ours).
struct ChildProbe {
  enum class Kind { kAlive, kExited, kNotOurs };
  Kind kind = Kind::kAlive;
  core::ExitStatus status;  // kExited
};
ChildProbe ProbeChild(pid_t pid);

// Marks every fd >= 3 close-on-exec (close_range CLOSE_RANGE_CLOEXEC, falling back to a loop),
// so nothing the master inherited leaks into workers or across a re-exec.
void CloexecFrom3();

// Unblocks every signal: a mask inherited from the parent (or our own re-exec) must not persist.
void ResetSignalMask();

core::Status SetNice(int niceness);  // absolute, for this process

// prctl(PR_SET_CHILD_SUBREAPER): orphans below us are re-parented to us, not to PID 1. Kept
// across execve (a reload), cleared in children.
core::Status BecomeSubreaper();

// "signal 9 (SIGKILL)" / "exit 3"
std::string DescribeExit(const core::ExitStatus& s);

}  // namespace einhorn::sys
