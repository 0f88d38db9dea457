#include "core/types.h"

#include <algorithm>
#include <array>
#include <cctype>
#include <cstdio>
#include <utility>

namespace einhorn::core {
namespace {

constexpr std::array<std::pair<Signal, const char*>, 10> kSignalNames{{
    {Signal::kHup, "SIGHUP"},
    {Signal::kInt, "SIGINT"},
    {Signal::kQuit, "SIGQUIT"},
    {Signal::kKill, "SIGKILL"},
    {Signal::kUsr1, "SIGUSR1"},
    {Signal::kUsr2, "SIGUSR2"},
    {Signal::kTerm, "SIGTERM"},
    {Signal::kTtin, "SIGTTIN"},
    {Signal::kTtou, "SIGTTOU"},
    {Signal::kAbrt, "SIGABRT"},
}};

}  // namespace

const char* SignalName(Signal s) {
  for (const auto& [sig, name] : kSignalNames) {
    if (sig == s) return name;
  }
  return "SIG?";
}

bool ParseSignalName(const std::string& name, Signal* out) {
  std::string upper = name;
  std::transform(upper.begin(), upper.end(), upper.begin(),
                 [](unsigned char c) { return static_cast<char>(std::toupper(c)); });
  if (upper.rfind("SIG", 0) != 0) upper = "SIG" + upper;
  for (const auto& [sig, n] : kSignalNames) {
    if (upper == n) {
      *out = sig;
      return true;
    }
  }
  return false;
}

std::string LogSeconds(double seconds) {
  char buf[48];
  std::snprintf(buf, sizeof buf, "%.3fs", seconds);
  return buf;
}

std::string ExitStatus::ToString() const {
  if (unknown()) return "an unknown status";
  return (signaled ? "signal " : "exit ") + std::to_string(code);
}

}  // namespace einhorn::core
