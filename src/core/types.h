// Vocabulary shared by the pure core and the shell. The core never reads a clock nor includes
// <signal.h>: time is a monotonic duration passed in, and signals are our own enum that
// src/sys maps to the platform's numbers.
#pragma once

#include <array>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>

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

// Every signal Ruby's Signal.list names on Linux, but EXIT (not a signal: Einhorn lets it
// through its check, then Process.kill raises). The `signal` and `die` verbs accept them all, as
// Einhorn does. The master reasons about a few (the first ten: the signals it sends of its own
// and the ones --drain-signal usually names); the others only pass through to the workers. No
// switch needs to know them all: names and platform numbers are tables (here and in src/sys).
enum class Signal {
  kHup,
  kInt,
  kQuit,
  kKill,
  kUsr1,
  kUsr2,
  kTerm,
  kTtin,
  kTtou,
  kAbrt,
  kIll,
  kTrap,
  kBus,
  kFpe,
  kSegv,
  kPipe,
  kAlrm,
  kChld,
  kCont,
  kStop,
  kTstp,
  kUrg,
  kXcpu,
  kXfsz,
  kVtalrm,
  kProf,
  kWinch,
  kIo,
  kPwr,
  kSys,
};

// Each Signal once, with its name; this spelling is also the one the reload state carries.
inline constexpr std::array<std::pair<Signal, std::string_view>, 30> kSignalNames{{
    {Signal::kHup, "SIGHUP"},       {Signal::kInt, "SIGINT"},   {Signal::kQuit, "SIGQUIT"},
    {Signal::kKill, "SIGKILL"},     {Signal::kUsr1, "SIGUSR1"}, {Signal::kUsr2, "SIGUSR2"},
    {Signal::kTerm, "SIGTERM"},     {Signal::kTtin, "SIGTTIN"}, {Signal::kTtou, "SIGTTOU"},
    {Signal::kAbrt, "SIGABRT"},     {Signal::kIll, "SIGILL"},   {Signal::kTrap, "SIGTRAP"},
    {Signal::kBus, "SIGBUS"},       {Signal::kFpe, "SIGFPE"},   {Signal::kSegv, "SIGSEGV"},
    {Signal::kPipe, "SIGPIPE"},     {Signal::kAlrm, "SIGALRM"}, {Signal::kChld, "SIGCHLD"},
    {Signal::kCont, "SIGCONT"},     {Signal::kStop, "SIGSTOP"}, {Signal::kTstp, "SIGTSTP"},
    {Signal::kUrg, "SIGURG"},       {Signal::kXcpu, "SIGXCPU"}, {Signal::kXfsz, "SIGXFSZ"},
    {Signal::kVtalrm, "SIGVTALRM"}, {Signal::kProf, "SIGPROF"}, {Signal::kWinch, "SIGWINCH"},
    {Signal::kIo, "SIGIO"},         {Signal::kPwr, "SIGPWR"},   {Signal::kSys, "SIGSYS"},
}};

const char* SignalName(Signal s);  // "SIGTERM", ...

// A signal argument as Einhorn normalises it before looking it up: upcased as Ruby's
// String#upcase does for what can become a signal name (ASCII letters, and the few non-ASCII
// characters whose uppercase is ASCII: "ı" is "I", "ﬆ" is "ST"), then a leading "SIG" dropped
// as /\ASIG(.*)\Z/ does (so a final "\n" after it goes too). "sigusr2" -> "USR2". This is also
// the text of Einhorn's `Invalid signal: "..."` reply.
std::string NormalizeSignalArg(const std::string& name);

// Accepts "TERM", "SIGTERM", "term", and Ruby's aliases IOT, CLD and POLL (for ABRT, CHLD, IO);
// false when unknown, for EXIT, and for numbers ("9": Einhorn refuses them too).
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
