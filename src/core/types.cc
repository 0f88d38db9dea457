#include "core/types.h"

#include <array>
#include <cctype>
#include <cstdio>
#include <string_view>
#include <utility>

namespace einhorn::core {
namespace {

// Ruby's other names for the same signal numbers.
constexpr std::array<std::pair<std::string_view, Signal>, 3> kSignalAliases{{
    {"IOT", Signal::kAbrt},
    {"CLD", Signal::kChld},
    {"POLL", Signal::kIo},
}};

// The non-ASCII characters (UTF-8) whose Unicode uppercase, as Ruby's String#upcase maps them,
// is all ASCII. Any other non-ASCII character cannot become part of a signal name.
constexpr std::array<std::pair<std::string_view, std::string_view>, 10> kUpcaseToAscii{{
    {"\u0131", "I"},   // dotless i
    {"\u017f", "S"},   // long s
    {"\u00df", "SS"},  // sharp s
    {"\ufb00", "FF"},  // ligatures...
    {"\ufb01", "FI"},
    {"\ufb02", "FL"},
    {"\ufb03", "FFI"},
    {"\ufb04", "FFL"},
    {"\ufb05", "ST"},
    {"\ufb06", "ST"},
}};

std::string Upcase(const std::string& s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size();) {
    bool mapped = false;
    if (static_cast<unsigned char>(s[i]) >= 0x80) {
      for (const auto& [from, to] : kUpcaseToAscii) {
        if (s.compare(i, from.size(), from) == 0) {
          out += to;
          i += from.size();
          mapped = true;
          break;
        }
      }
    }
    if (mapped) continue;
    const char c = s[i++];
    out += (c >= 'a' && c <= 'z') ? static_cast<char>(c - 'a' + 'A') : c;
  }
  return out;
}

}  // namespace

const char* SignalName(Signal s) {
  for (const auto& [sig, name] : kSignalNames) {
    if (sig == s) return name.data();  // literals: NUL-terminated
  }
  return "SIG?";
}

std::string NormalizeSignalArg(const std::string& name) {
  std::string upper = Upcase(name);
  // /\ASIG(.*)\Z/: "." stops at a newline, and \Z also matches before one final "\n".
  if (upper.rfind("SIG", 0) != 0) return upper;
  std::string rest = upper.substr(3);
  if (!rest.empty() && rest.back() == '\n') rest.pop_back();
  if (rest.find('\n') != std::string::npos) return upper;
  return rest;
}

bool ParseSignalName(const std::string& name, Signal* out) {
  const std::string bare = NormalizeSignalArg(name);
  for (const auto& [sig, n] : kSignalNames) {
    if (n.substr(3) == bare) {
      *out = sig;
      return true;
    }
  }
  for (const auto& [alias, sig] : kSignalAliases) {
    if (alias == bare) {
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
