#include "core/readiness.h"

#include <algorithm>
#include <cstdint>

namespace einhorn::core {

int ReadyNeeded(int target, int share_percent) {
  if (target <= 0) return 0;
  const std::int64_t share = std::clamp(share_percent, 1, 100);
  // Rounded up: 50 % of 3 workers is 2, so "half" never means fewer than half.
  const std::int64_t needed = (static_cast<std::int64_t>(target) * share + 99) / 100;
  return static_cast<int>(std::max<std::int64_t>(needed, 1));
}

Readiness DecideReadiness(const ReadinessInput& in) {
  const std::string counts = std::to_string(in.ready) + "/" + std::to_string(in.target);
  const std::string upgrade = in.upgrading ? " (upgrade under way)" : "";
  if (in.stopping) return {false, "not ready: stopping, ready " + counts + "\n"};
  if (in.target <= 0) return {false, "not ready: no workers wanted, ready " + counts + "\n"};
  const int needed = ReadyNeeded(in.target, in.share_percent);
  if (in.ready >= needed) return {true, "ready " + counts + upgrade + "\n"};
  return {false,
          "not ready: ready " + counts + ", need " + std::to_string(needed) + upgrade + "\n"};
}

}  // namespace einhorn::core
