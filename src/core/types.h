// Vocabulary shared by the pure core and the shell. The core never reads a clock nor includes
// <signal.h>: time is a monotonic duration passed in, and signals are our own enum that
// src/sys maps to the platform's numbers.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

namespace einhorn::core {

using Pid = int;
// Monotonic time since an arbitrary origin chosen by the shell (tests start at zero).
using Time = std::chrono::nanoseconds;
using Duration = std::chrono::nanoseconds;

inline Duration Seconds(double s) {
  return std::chrono::duration_cast<Duration>(std::chrono::duration<double>(s));
}
inline double ToSeconds(Duration d) { return std::chrono::duration<double>(d).count(); }

enum class Signal { kHup, kInt, kQuit, kKill, kUsr1, kUsr2, kTerm, kTtin, kTtou, kAbrt };

const char* SignalName(Signal s);  // "SIGTERM", ...
// Accepts "TERM", "SIGTERM", "term"; false when unknown.
bool ParseSignalName(const std::string& name, Signal* out);

// How a child ended, as waitpid reported it.
struct ExitStatus {
  bool signaled = false;
  int code = 0;  // exit code, or the signal number when signaled
  // code -1, not signaled: lost. Another process reaped the child (a --reexec-as shell between
  // two images waits for any child), so waitpid only says ECHILD. A failure, not a clean exit.
  static ExitStatus Unknown() { return ExitStatus{false, -1}; }
  bool unknown() const { return !signaled && code < 0; }
  std::string ToString() const;  // "exit 3", "signal 9"

  bool operator==(const ExitStatus&) const = default;
};

enum class LogLevel { kDebug, kInfo, kWarn, kError };

}  // namespace einhorn::core
