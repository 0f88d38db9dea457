#include "core/memory_limit.h"

#include <cctype>
#include <cmath>
#include <cstdlib>
#include <string_view>

namespace einhorn::core {
namespace {

std::string Shown(const std::string& text) {
  // Untrusted text in an error line: cut, and control bytes replaced.
  std::string s = text.substr(0, 60);
  for (char& c : s) {
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) c = '?';
  }
  return "'" + s + (text.size() > 60 ? "...'" : "'");
}

// The unit's multiplier: "", "B", "K", "KB", "KiB" (any case)...; 0 when unknown.
double UnitOf(std::string unit) {
  for (char& c : unit) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (unit.empty() || unit == "b") return 1;
  static constexpr std::string_view kLetters = "kmgt";
  const size_t at = kLetters.find(unit[0]);
  if (at == std::string_view::npos) return 0;
  const std::string rest = unit.substr(1);
  if (!rest.empty() && rest != "b" && rest != "ib") return 0;
  return std::ldexp(1.0, 10 * static_cast<int>(at + 1));
}

}  // namespace

Result<MemoryMeasure> ParseMemoryMeasure(const std::string& text) {
  if (text == "rss") return MemoryMeasure::kRss;
  if (text == "pss") return MemoryMeasure::kPss;
  return Result<MemoryMeasure>::Error("--memory-measure must be rss or pss (got " + Shown(text) +
                                      ")");
}

const char* MemoryMeasureName(MemoryMeasure m) {
  switch (m) {
    case MemoryMeasure::kRss:
      return "rss";
    case MemoryMeasure::kPss:
      return "pss";
  }
  return "rss";
}

Result<double> ParseMemorySize(const std::string& text) {
  const auto bad = [&](const std::string& why) {
    return Result<double>::Error("--max-worker-memory: " + Shown(text) + " " + why);
  };
  // Digits with at most one '.', then a unit: no sign, no exponent, no hex, no "inf"/"nan".
  size_t i = 0;
  bool dot = false, digit = false;
  for (; i < text.size(); ++i) {
    const char c = text[i];
    if (c >= '0' && c <= '9') {
      digit = true;
    } else if (c == '.' && !dot) {
      dot = true;
    } else {
      break;
    }
  }
  if (!digit || i > 32) {
    return bad("is not a size (bytes, or a number with K, M, G or T, e.g. 50M)");
  }
  const double unit = UnitOf(text.substr(i));
  if (unit == 0) return bad("has an unknown unit (K, M, G or T, powers of 1024)");
  const double bytes = std::floor(std::strtod(text.substr(0, i).c_str(), nullptr) * unit);
  if (!(bytes >= 1)) return bad("must be at least 1 byte");
  if (bytes > kMaxMemoryBytes) return bad("is past the limit of 1T * 1024 (1 PiB)");
  return bytes;
}

Result<MemoryLimit> ParseMemoryLimit(const std::string& text) {
  MemoryLimit limit;
  if (text.empty() || text == "none") return limit;
  const size_t comma = text.find(',');
  auto soft = ParseMemorySize(text.substr(0, comma));
  if (!soft.ok()) return Result<MemoryLimit>::Error(soft.error());
  limit.soft = soft.value();
  if (comma == std::string::npos) return limit;
  const std::string rest = text.substr(comma + 1);
  if (rest.rfind("hard=", 0) != 0) {
    return Result<MemoryLimit>::Error("--max-worker-memory: expected SIZE[,hard=SIZE], got " +
                                      Shown(text));
  }
  auto hard = ParseMemorySize(rest.substr(5));
  if (!hard.ok()) return Result<MemoryLimit>::Error(hard.error());
  limit.hard = hard.value();
  if (limit.hard < limit.soft) {
    return Result<MemoryLimit>::Error("--max-worker-memory: the hard limit " +
                                      FormatMemorySize(limit.hard) + " is below the soft limit " +
                                      FormatMemorySize(limit.soft));
  }
  return limit;
}

std::string FormatMemorySize(double bytes) {
  if (!(bytes >= 1)) return "none";
  static constexpr const char* kUnits[] = {"", "K", "M", "G", "T"};
  int u = 0;
  double v = bytes;
  while (u < 4 && std::fmod(v, 1024) == 0) {
    v /= 1024;
    ++u;
  }
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.0f%s", v, kUnits[u]);
  return buf;
}

std::string FormatMemoryLimit(const MemoryLimit& limit) {
  if (!limit.enabled()) return "none";
  std::string s = FormatMemorySize(limit.soft);
  if (limit.hard > 0) s += ",hard=" + FormatMemorySize(limit.hard);
  return s;
}

MemoryVerdict JudgeMemory(const MemoryLimit& limit, std::uint64_t bytes) {
  if (!limit.enabled()) return MemoryVerdict::kNone;
  const double b = static_cast<double>(bytes);
  if (limit.hard > 0 && b >= limit.hard) return MemoryVerdict::kDrainNow;
  if (b >= limit.soft) return MemoryVerdict::kRecycle;
  return MemoryVerdict::kNone;
}

std::vector<MemoryWatch::Decision> MemoryWatch::Observe(const MemoryLimit& limit,
                                                        const std::vector<Sample>& samples,
                                                        Time now) {
  std::map<Pid, Seen> next;
  std::vector<Decision> decisions;
  for (const Sample& s : samples) {
    Seen seen;
    if (auto it = seen_.find(s.pid); it != seen_.end()) seen = it->second;
    seen.bytes = s.bytes;
    seen.processes = s.processes;
    seen.at = now;
    seen.asked_recycle = seen.asked_recycle || s.recycle_pending || s.drain_pending;
    seen.asked_drain = seen.asked_drain || s.drain_pending;
    const MemoryVerdict verdict = s.draining ? MemoryVerdict::kNone : JudgeMemory(limit, s.bytes);
    Decision d{s.pid, verdict, s.bytes, 0};
    if (verdict == MemoryVerdict::kDrainNow && !seen.asked_drain) {
      seen.asked_drain = true;
      seen.asked_recycle = true;  // a drain supersedes a recycle
      d.limit = limit.hard;
    } else if (verdict == MemoryVerdict::kRecycle && !seen.asked_recycle) {
      seen.asked_recycle = true;
      d.limit = limit.soft;
    } else {
      d.verdict = MemoryVerdict::kNone;
    }
    if (d.verdict != MemoryVerdict::kNone) decisions.push_back(d);
    next.emplace(s.pid, seen);
  }
  seen_ = std::move(next);
  return decisions;
}

void MemoryWatch::AskAgain(Pid pid, MemoryVerdict verdict) {
  auto it = seen_.find(pid);
  if (it == seen_.end()) return;
  if (verdict == MemoryVerdict::kDrainNow) it->second.asked_drain = false;
  if (verdict == MemoryVerdict::kRecycle) it->second.asked_recycle = false;
}

const MemoryWatch::Seen* MemoryWatch::Find(Pid pid) const {
  auto it = seen_.find(pid);
  return it == seen_.end() ? nullptr : &it->second;
}

}  // namespace einhorn::core
