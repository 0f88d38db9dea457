// Vocabulary shared by the pure core and the shell. The core never reads a clock nor includes
// <signal.h>: time is a monotonic duration passed in, and signals are our own enum that
// src/sys maps to the platform's numbers.
#pragma once

#include <chrono>
#include <cmath>
#include <cstdint>
#include <string>

namespace einhorn::core {

using Pid = int;
// Monotonic time since an arbitrary origin chosen by the shell (tests start at zero).
using Time = std::chrono::nanoseconds;
using Duration = std::chrono::nanoseconds;

// The longest duration a setting may hold (-s, -t, -m SECS, --ack-timeout, --upgrade-timeout,
// --worker-watchdog), from the flags, the config file or the state a reload carries: 1e6 s,
// about 11.6 days. Far beyond any real timeout, and far below the 292 years where int64
// nanoseconds wrap, so a time plus any setting stays exact. Options' FindProblem refuses
// what is outside it (one error line); CheckSnapshot refuses such a carried state.
inline constexpr double kMaxSettingSeconds = 1e6;
inline constexpr Duration kMaxSetting = std::chrono::seconds(1'000'000);

// s seconds, for any double: NaN is 0, and what int64 nanoseconds cannot hold saturates to
// Duration::max() / min() (a cast of an out-of-range double would be undefined behaviour).
// Within range it truncates toward zero, as duration_cast does.
inline Duration Seconds(double s) {
  if (std::isnan(s)) return Duration::zero();
  const double ns = s * 1e9;
  constexpr double kTwoTo63 = 9223372036854775808.0;
  if (ns >= kTwoTo63) return Duration::max();
  if (ns <= -kTwoTo63) return Duration::min();
  return Duration(static_cast<Duration::rep>(ns));
}
inline double ToSeconds(Duration d) { return std::chrono::duration<double>(d).count(); }
// "1.500s": seconds as log lines and event summaries write them, to the millisecond.
std::string LogSeconds(double seconds);
inline std::string LogSeconds(Duration d) { return LogSeconds(ToSeconds(d)); }

// The time d after t, saturating at Time::max() / min() instead of wrapping: a deadline that
// far away is "never". Every deadline the supervisor computes goes through here.
inline Time After(Time t, Duration d) {
  const auto a = t.count();
  const auto b = d.count();
  if (b > 0 && a > Time::max().count() - b) return Time::max();
  if (b < 0 && a < Time::min().count() - b) return Time::min();
  return Time(a + b);
}

enum class Signal { kHup, kInt, kQuit, kKill, kUsr1, kUsr2, kTerm, kTtin, kTtou, kAbrt };

const char* SignalName(Signal s);  // "SIGTERM", ...
// Accepts "TERM", "SIGTERM", "term"; false when unknown.
bool ParseSignalName(const std::string& name, Signal* out);

// How a child ended, as waitpid reported it.
struct ExitStatus {
  bool signaled = false;
  int code = 0;  // exit code, or the signal number when signaled
  std::string ToString() const;  // "exit 3", "signal 9", "an unknown status"

  // A child that died but whose status someone else collected: a --reexec-as wrapper that
  // waited for its own children while the master's image was being replaced reaps the
  // workers that died meanwhile too (they are children of the same pid).
  static ExitStatus Unknown() { return ExitStatus{false, -1}; }
  bool unknown() const { return !signaled && code < 0; }

  bool operator==(const ExitStatus&) const = default;
};

enum class LogLevel { kDebug, kInfo, kWarn, kError };

}  // namespace einhorn::core
