#include "core/upgrade.h"

#include <algorithm>

namespace einhorn::core {

const char* UpgradeStrategyName(UpgradeStrategy s) {
  return s == UpgradeStrategy::kFleet ? "fleet" : "smooth";
}

int MaxUnacked(const UpgradePolicy& policy, int target) {
  if (!policy.scale_unacked) return policy.max_unacked;
  // A tenth of the pool: with fast workers the upgrade then runs at the spawn rate (1000
  // workers: 100 booting at once), while a small pool keeps Einhorn's one per CPU.
  return std::max(policy.max_unacked, target / 10 + (target % 10 != 0 ? 1 : 0));
}

UpgradeStep PlanStep(std::optional<UpgradeStrategy> upgrading, const UpgradePolicy& policy,
                     const PoolCounts& c) {
  UpgradeStep step;
  step.drain_booting = c.detached_booting > 0;
  step.done = upgrading.has_value() && c.attached_ready >= c.target;
  // Only as many as keep the ready ones at N or more.
  const int excess = std::max(0, c.detached_ready + c.attached_ready - c.target);
  const bool hold_old = upgrading == UpgradeStrategy::kFleet && !step.done;
  step.drain_ready = hold_old ? 0 : std::min(excess, c.detached_ready);
  if (!upgrading || step.done) return step;

  int room = c.empty_slots;
  if (policy.canary && c.attached_ready == 0) room = std::min(room, 1 - c.attached_booting);
  if (*upgrading == UpgradeStrategy::kSmooth) {
    room = std::min(room, MaxUnacked(policy, c.target) - c.attached_booting);
    if (policy.max_additional) {
      room = std::min(room, c.target + std::max(1, *policy.max_additional) - c.alive);
    }
  }
  step.spawn = std::max(0, room);
  return step;
}

}  // namespace einhorn::core
