#include "core/reload.h"

#include <cstdint>
#include <cstdio>

namespace einhorn::core {

Reload::Begin Reload::Request(std::optional<UpgradeStrategy> then_upgrade, bool master_stopping) {
  Begin b;
  if (master_stopping) {
    b.message = then_upgrade ? "The master is shutting down; not upgrading"
                             : "Not reloading: the master is shutting down";
    return b;
  }
  b.accepted = true;
  b.start_check = !running_;
  running_ = true;
  if (then_upgrade) then_upgrades_.push_back(*then_upgrade);
  if (!then_upgrade) {
    b.message = "Reloading, as commanded";
  } else if (*then_upgrade == UpgradeStrategy::kSmooth) {
    b.message = "Upgrading smoothly, as commanded";
  } else {
    b.message = "Upgrading fleet, as commanded";
  }
  return b;
}

namespace {

// `line` is one whole line of `output`.
bool HasLine(const std::string& output, const std::string& line) {
  size_t at = 0;
  while ((at = output.find(line, at)) != std::string::npos) {
    const bool starts = at == 0 || output[at - 1] == '\n';
    const size_t end = at + line.size();
    const bool ends = end == output.size() || output[end] == '\n' || output[end] == '\r';
    if (starts && ends) return true;
    at = end;
  }
  return false;
}

}  // namespace

std::optional<std::string> Reload::CheckExited(const std::string& binary, const ExitStatus& status,
                                               const std::string& output,
                                               const std::string& proof) {
  // The whole line, as far as it is sane: it is what `einhornctl reload` prints as the reason
  // (a config naming several restart-only keys is longer than LastLine's default).
  const std::string said = LastLine(output, kMaxReasonChars);
  if (!status.signaled && status.code == 0) {
    if (!proof.empty() && HasLine(output, proof)) return std::nullopt;
    std::string reason = "the upgrade check of " + binary +
                         " exited 0 but did not show it read the state (no state digest in "
                         "its output; is it einhorn-cpp, of this version or later?)";
    if (!said.empty()) reason += "; its last line: " + said;
    return reason;
  }
  std::string reason = "the upgrade check of " + binary + " failed (" + status.ToString() + ")";
  if (!said.empty()) reason += ": " + said;
  return reason;
}

bool Reload::TakesStandIn(const std::string& output) {
  return HasLine(output, std::string(kTakesStandIn));
}

std::string Reload::ProofLine(std::string_view state) {
  std::uint64_t h = 0xcbf29ce484222325ULL;  // FNV-1a 64
  for (const char c : state) {
    h ^= static_cast<unsigned char>(c);
    h *= 0x100000001b3ULL;
  }
  char hex[17];
  std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(h));
  return std::string("einhorn-cpp upgrade check: state digest ") + hex;
}

std::string Reload::CheckTimedOut(const std::string& binary, Duration limit) {
  char secs[32];
  std::snprintf(secs, sizeof secs, "%g", ToSeconds(limit));
  return "the upgrade check of " + binary + " did not finish within " + secs + " s";
}

void Reload::Clear() {
  running_ = false;
  then_upgrades_.clear();
}

std::string Reload::FailureText(const std::string& reason) {
  return "Reload failed, the master keeps running as it was: " + reason;
}

std::string Reload::UpgradeFailureText(const std::string& reason) {
  return "Upgrade failed: the master could not reload first, so nothing changed: " + reason;
}

std::string LastLine(const std::string& output, size_t max_chars) {
  size_t end = output.size();
  while (true) {
    while (end > 0 && (output[end - 1] == '\n' || output[end - 1] == '\r' ||
                       output[end - 1] == ' ' || output[end - 1] == '\t')) {
      --end;
    }
    if (end == 0) return "";
    const size_t nl = output.rfind('\n', end - 1);
    const size_t begin = nl == std::string::npos ? 0 : nl + 1;
    std::string line = output.substr(begin, end - begin);
    while (!line.empty() && (line.front() == ' ' || line.front() == '\t')) line.erase(0, 1);
    if (!line.empty()) {
      for (char& c : line) {
        if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) c = '?';
      }
      if (line.size() > max_chars) line = line.substr(0, max_chars) + "...";
      return line;
    }
    end = begin;
  }
}

}  // namespace einhorn::core
