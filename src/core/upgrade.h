// Rolling upgrades: how many new workers to start and how many old ones to drain, decided from
// the pool's counts at one instant. Pure arithmetic; the supervisor counts and executes.
//
// Vocabulary: a worker is *attached* while it fills one of the pool's N slots (during an
// upgrade the slots belong to the new generation), *detached* once it no longer does (the old
// generation during an upgrade, the new one after a rollback, extras after a shrink) and is not
// yet draining. Ready workers that are not draining are the ones serving.
//
// The invariant (the upgrade tests check it after every step): a step never drains a ready
// worker unless the ready workers left, attached and detached, still number at least N; so the
// number serving only drops below N when workers die on their own or the operator shrinks the
// pool, never because of an upgrade or a rollback.
//
// Strategies:
//  - smooth (Einhorn's default): new workers are started while fewer than max_unacked are
//    unready and, with max_additional, while no more than N + max_additional workers are alive
//    (draining ones included); each new ready worker lets one detached worker drain.
//  - fleet: every new worker is started at once; the detached ones drain when all N are ready.
// Canary (both strategies): until one new worker is ready, only one is started.
#pragma once

#include <optional>

#include "core/types.h"

namespace einhorn::core {

enum class UpgradeStrategy { kSmooth, kFleet };
const char* UpgradeStrategyName(UpgradeStrategy s);  // "smooth", "fleet"

// Unready new workers allowed at once by a smooth upgrade: max_unacked, or with scale_unacked
// (the default, when --max-unacked is not given) the larger of max_unacked (then the CPU count,
// Einhorn's default) and a tenth of the pool, rounded up (ScaledMaxUnacked).
struct UpgradePolicy {
  int max_unacked = 1;
  bool scale_unacked = false;
  std::optional<int> max_additional;  // 0 acts as 1: a smooth upgrade needs room for one
  bool canary = true;
  std::optional<Duration> ack_timeout;      // per new worker
  std::optional<Duration> upgrade_timeout;  // whole upgrade
  int max_failures = 3;                     // new workers dying before ready

  bool operator==(const UpgradePolicy&) const = default;
};

struct PoolCounts {
  int target = 0;
  int attached_ready = 0;
  int attached_booting = 0;
  int detached_ready = 0;
  int detached_booting = 0;
  int alive = 0;        // every live worker, draining ones included
  int empty_slots = 0;  // slots with no worker and no respawn pending
};

struct UpgradeStep {
  bool done = false;   // the new generation fills every slot with a ready worker
  int spawn = 0;       // new workers to start now, into empty slots
  int drain_ready = 0;  // detached ready workers to drain now
  bool drain_booting = false;  // drain every detached unready worker (they serve nobody)
};

// The unready new workers a smooth upgrade of a pool of `target` allows at once.
int MaxUnacked(const UpgradePolicy& policy, int target);

// `upgrading` is empty outside an upgrade: then nothing is spawned here (the supervisor fills
// slots itself) and detached workers drain as soon as the attached ones can replace them.
UpgradeStep PlanStep(std::optional<UpgradeStrategy> upgrading, const UpgradePolicy& policy,
                     const PoolCounts& c);

}  // namespace einhorn::core
