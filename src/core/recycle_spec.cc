#include "core/recycle_spec.h"

#include <charconv>
#include <cmath>
#include <string>

#include "core/types.h"

namespace einhorn::core {
namespace {

// The whole text as a finite number (no sign games, no hex, no spaces), or nullopt.
std::optional<double> Number(std::string_view s) {
  if (s.empty() || s.size() > 32) return std::nullopt;
  double v = 0;
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || end != s.data() + s.size() || !std::isfinite(v)) return std::nullopt;
  return v;
}

std::string Shown(std::string_view s) {
  std::string out;
  for (char c : s.substr(0, 60)) out += (c >= 0x20 && c < 0x7f) ? c : '?';
  return out;
}

}  // namespace

Result<LifetimeSpec> ParseLifetimeSpec(std::string_view text) {
  const auto bad = [&text](const std::string& why) {
    return Result<LifetimeSpec>::Error("--max-worker-lifetime must be SECS[,jitter=PCT]: " + why +
                                       " (got '" + Shown(text) + "')");
  };
  LifetimeSpec spec;
  const size_t comma = text.find(',');
  const std::optional<double> secs = Number(text.substr(0, comma));
  if (!secs || !(*secs > 0) || *secs > kMaxSettingSeconds) {
    return bad("SECS is a number of seconds above 0, at most " +
               std::to_string(static_cast<long long>(kMaxSettingSeconds)));
  }
  spec.seconds = *secs;
  if (comma == std::string_view::npos) return spec;
  std::string_view rest = text.substr(comma + 1);
  constexpr std::string_view kKey = "jitter=";
  if (rest.substr(0, kKey.size()) != kKey) return bad("the only option is jitter=PCT");
  rest.remove_prefix(kKey.size());
  if (!rest.empty() && rest.back() == '%') rest.remove_suffix(1);
  const std::optional<double> pct = Number(rest);
  if (!pct || !(*pct >= 0) || *pct > kMaxLifetimeJitterPct) {
    return bad("PCT is a percentage from 0 to " +
               std::to_string(static_cast<int>(kMaxLifetimeJitterPct)));
  }
  spec.jitter_pct = *pct;
  return spec;
}

}  // namespace einhorn::core
