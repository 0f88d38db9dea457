// PlanStep, the per-step arithmetic of an upgrade: a table of hand-checked steps, then
// properties checked over every small pool (the budgets, the invariant of upgrade.h, progress).
#include "core/upgrade.h"

#include <doctest/doctest.h>

#include <algorithm>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

namespace einhorn::core {
namespace {

constexpr auto kSmooth = UpgradeStrategy::kSmooth;
constexpr auto kFleet = UpgradeStrategy::kFleet;

UpgradePolicy Policy(int max_unacked, std::optional<int> max_additional, bool canary) {
  UpgradePolicy p;
  p.max_unacked = max_unacked;
  p.max_additional = max_additional;
  p.canary = canary;
  return p;
}

// Counts for a pool of `target` slots; empty slots are the ones no attached worker fills.
PoolCounts Counts(int target, int attached_ready, int attached_booting, int detached_ready,
                  int detached_booting, int draining = 0, int pending = 0) {
  PoolCounts c;
  c.target = target;
  c.attached_ready = attached_ready;
  c.attached_booting = attached_booting;
  c.detached_ready = detached_ready;
  c.detached_booting = detached_booting;
  c.alive = attached_ready + attached_booting + detached_ready + detached_booting + draining;
  c.empty_slots = std::max(0, target - attached_ready - attached_booting - pending);
  return c;
}

struct Row {
  const char* what;
  std::optional<UpgradeStrategy> upgrading;
  UpgradePolicy policy;
  PoolCounts counts;
  UpgradeStep want;
};

UpgradeStep Want(bool done, int spawn, int drain_ready, bool drain_booting) {
  UpgradeStep s;
  s.done = done;
  s.spawn = spawn;
  s.drain_ready = drain_ready;
  s.drain_booting = drain_booting;
  return s;
}

TEST_CASE("PlanStep table") {
  const UpgradePolicy p1 = Policy(1, std::nullopt, true);
  const Row rows[] = {
      // Outside an upgrade nothing is spawned here; detached workers drain as replaced.
      {"idle pool", std::nullopt, p1, Counts(3, 3, 0, 0, 0), Want(false, 0, 0, false)},
      {"idle, empty slots are the supervisor's job", std::nullopt, p1, Counts(3, 1, 0, 0, 0),
       Want(false, 0, 0, false)},
      {"after a rollback, ready new workers wait for old replacements", std::nullopt, p1,
       Counts(3, 1, 2, 2, 0), Want(false, 0, 0, false)},
      {"after a rollback, one replacement ready lets one new worker go", std::nullopt, p1,
       Counts(3, 2, 1, 2, 0), Want(false, 0, 1, false)},
      {"after a rollback, all replaced", std::nullopt, p1, Counts(3, 3, 0, 2, 0),
       Want(false, 0, 2, false)},
      {"detached booting workers always drain", std::nullopt, p1, Counts(3, 3, 0, 0, 2),
       Want(false, 0, 0, true)},

      // Smooth, canary on.
      {"smooth start: the canary only", kSmooth, Policy(3, std::nullopt, true),
       Counts(3, 0, 0, 3, 0), Want(false, 1, 0, false)},
      {"smooth: canary booting, nothing more", kSmooth, Policy(3, std::nullopt, true),
       Counts(3, 0, 1, 3, 0), Want(false, 0, 0, false)},
      {"smooth: two booting before any ready (never negative)", kSmooth,
       Policy(3, std::nullopt, true), Counts(3, 0, 2, 3, 0), Want(false, 0, 0, false)},
      {"smooth: canary ready drains one old and opens the budget", kSmooth,
       Policy(2, std::nullopt, true), Counts(3, 1, 0, 3, 0), Want(false, 2, 1, false)},
      {"smooth: max_unacked bounds the unready ones", kSmooth, Policy(2, std::nullopt, true),
       Counts(4, 1, 1, 3, 0), Want(false, 1, 0, false)},
      {"smooth: budget used up", kSmooth, Policy(2, std::nullopt, true), Counts(4, 1, 2, 3, 0),
       Want(false, 0, 0, false)},
      {"smooth: more booting than the budget (never negative)", kSmooth,
       Policy(1, std::nullopt, false), Counts(5, 0, 3, 5, 0), Want(false, 0, 0, false)},

      // Smooth, canary off.
      {"smooth, no canary: max_unacked at once", kSmooth, Policy(2, std::nullopt, false),
       Counts(3, 0, 0, 3, 0), Want(false, 2, 0, false)},
      {"smooth, no canary, no additional limit: every empty slot", kSmooth,
       Policy(10, std::nullopt, false), Counts(3, 0, 0, 3, 0), Want(false, 3, 0, false)},
      {"smooth: max_additional 1 allows one beyond N", kSmooth, Policy(3, 1, false),
       Counts(3, 0, 0, 3, 0), Want(false, 1, 0, false)},
      {"smooth: max_additional 0 acts as 1", kSmooth, Policy(3, 0, false), Counts(3, 0, 0, 3, 0),
       Want(false, 1, 0, false)},
      {"smooth: max_additional 2", kSmooth, Policy(3, 2, false), Counts(3, 0, 0, 3, 0),
       Want(false, 2, 0, false)},
      {"smooth: draining workers count against max_additional", kSmooth, Policy(3, 1, false),
       Counts(3, 1, 0, 2, 0, /*draining=*/1), Want(false, 0, 0, false)},
      {"smooth: once the drained one is gone, the next", kSmooth, Policy(3, 1, false),
       Counts(3, 1, 0, 2, 0), Want(false, 1, 0, false)},
      {"smooth: each new ready worker drains one old", kSmooth, Policy(1, std::nullopt, true),
       Counts(3, 2, 0, 2, 0), Want(false, 1, 1, false)},
      {"smooth: old ones that died are not replaced by draining more", kSmooth,
       Policy(1, std::nullopt, true), Counts(3, 1, 0, 1, 0), Want(false, 1, 0, false)},
      {"smooth: a pending respawn is not an empty slot", kSmooth, Policy(3, std::nullopt, false),
       Counts(3, 1, 0, 2, 0, 0, /*pending=*/2), Want(false, 0, 0, false)},
      {"smooth done: the last old ones drain", kSmooth, Policy(1, std::nullopt, true),
       Counts(3, 3, 0, 1, 1), Want(true, 0, 1, true)},
      {"done even with more ready than slots (after a shrink)", kSmooth,
       Policy(1, std::nullopt, true), Counts(2, 3, 0, 0, 0), Want(true, 0, 0, false)},

      // Fleet.
      {"fleet start: the canary only", kFleet, Policy(1, 0, true), Counts(3, 0, 0, 3, 0),
       Want(false, 1, 0, false)},
      {"fleet: canary ready, the rest at once whatever the smooth budgets", kFleet,
       Policy(1, 0, true), Counts(3, 1, 0, 3, 0), Want(false, 2, 0, false)},
      {"fleet, no canary: all at once", kFleet, Policy(1, 0, false), Counts(3, 0, 0, 3, 0),
       Want(false, 3, 0, false)},
      {"fleet: old ones held while any new one is unready", kFleet, Policy(1, 0, true),
       Counts(3, 2, 1, 3, 0), Want(false, 0, 0, false)},
      {"fleet: unready detached workers still drain", kFleet, Policy(1, 0, true),
       Counts(3, 2, 1, 3, 2), Want(false, 0, 0, true)},
      {"fleet done: every old one drains at once", kFleet, Policy(1, 0, true),
       Counts(3, 3, 0, 3, 0), Want(true, 0, 3, false)},

      // Einhorn's bug: a smooth upgrade over a fleet stuck with unacked workers drained every
      // healthy old worker. Unacked workers are no capacity.
      {"smooth over a stuck fleet keeps the healthy old ones", kSmooth,
       Policy(2, std::nullopt, true), Counts(3, 0, 0, 3, 3), Want(false, 1, 0, true)},
  };
  for (const Row& r : rows) {
    INFO(r.what);
    const UpgradeStep got = PlanStep(r.upgrading, r.policy, r.counts);
    CHECK(got.done == r.want.done);
    CHECK(got.spawn == r.want.spawn);
    CHECK(got.drain_ready == r.want.drain_ready);
    CHECK(got.drain_booting == r.want.drain_booting);
  }
}

std::string Show(const std::optional<UpgradeStrategy>& up, const UpgradePolicy& p,
                 const PoolCounts& c, const UpgradeStep& s) {
  std::ostringstream o;
  o << (up ? UpgradeStrategyName(*up) : "idle") << " unacked=" << p.max_unacked
    << " additional=" << (p.max_additional ? std::to_string(*p.max_additional) : "-")
    << " canary=" << p.canary << " | N=" << c.target << " ar=" << c.attached_ready
    << " ab=" << c.attached_booting << " dr=" << c.detached_ready << " db=" << c.detached_booting
    << " alive=" << c.alive << " empty=" << c.empty_slots << " -> done=" << s.done
    << " spawn=" << s.spawn << " drain=" << s.drain_ready << " drain_booting=" << s.drain_booting;
  return o.str();
}

// Every consistent pool of up to 4 slots and 4 detached workers of each kind, every policy.
template <class F>
void ForEverySmallPool(F&& f) {
  const std::optional<UpgradeStrategy> modes[] = {std::nullopt, kSmooth, kFleet};
  const std::optional<int> additionals[] = {std::nullopt, 0, 1, 2};
  for (const auto& mode : modes) {
    for (int unacked = 1; unacked <= 3; ++unacked) {
      for (const auto& additional : additionals) {
        for (bool canary : {false, true}) {
          const UpgradePolicy p = Policy(unacked, additional, canary);
          for (int n = 1; n <= 4; ++n) {
            for (int ar = 0; ar <= n + 1; ++ar) {  // n + 1: a shrink leaves more than N
              for (int ab = 0; ar + ab <= n + 1; ++ab) {
                for (int pending = 0; pending <= std::max(0, n - ar - ab); ++pending) {
                  for (int dr = 0; dr <= 4; ++dr) {
                    for (int db = 0; db <= 2; ++db) {
                      for (int draining = 0; draining <= 2; ++draining) {
                        f(mode, p, Counts(n, ar, ab, dr, db, draining, pending));
                      }
                    }
                  }
                }
              }
            }
          }
        }
      }
    }
  }
}

TEST_CASE("PlanStep never drains below N and keeps to its budgets, over every small pool") {
  int checked = 0;
  int failures = 0;
  ForEverySmallPool([&](const std::optional<UpgradeStrategy>& up, const UpgradePolicy& p,
                        const PoolCounts& c) {
    ++checked;
    const UpgradeStep s = PlanStep(up, p, c);
    std::vector<std::string> broken;
    const int ready = c.attached_ready + c.detached_ready;
    if (s.spawn < 0 || s.spawn > c.empty_slots) broken.push_back("spawn out of [0, empty]");
    if (s.drain_ready < 0 || s.drain_ready > c.detached_ready) {
      broken.push_back("drains more than the detached ready ones");
    }
    // The invariant of upgrade.h.
    if (s.drain_ready > 0 && ready - s.drain_ready < c.target) {
      broken.push_back("drains ready workers below N");
    }
    if (s.drain_booting != (c.detached_booting > 0)) broken.push_back("drain_booting");
    if (!up) {
      if (s.spawn != 0 || s.done) broken.push_back("acts as an upgrade when idle");
    } else {
      if (s.done != (c.attached_ready >= c.target)) broken.push_back("done");
      if (s.done && s.spawn != 0) broken.push_back("spawns when done");
      if (s.spawn > 0 && p.canary && c.attached_ready == 0 && c.attached_booting + s.spawn > 1) {
        broken.push_back("more than the canary");
      }
      if (*up == kFleet && !s.done && s.drain_ready > 0) broken.push_back("fleet drains early");
      if (*up == kSmooth && s.spawn > 0) {
        if (c.attached_booting + s.spawn > p.max_unacked) broken.push_back("max_unacked");
        if (p.max_additional && c.alive + s.spawn > c.target + std::max(1, *p.max_additional)) {
          broken.push_back("max_additional");
        }
      }
    }
    // Every ready worker beyond N that is free to go goes now (no stall on the way out).
    const bool hold = up == kFleet && !s.done;
    if (!hold && s.drain_ready != std::min(c.detached_ready, std::max(0, ready - c.target))) {
      broken.push_back("keeps more ready workers than N");
    }
    if (!broken.empty()) {
      ++failures;
      if (failures <= 5) {
        std::string all;
        for (const auto& b : broken) all += b + "; ";
        FAIL_CHECK(all << " at " << Show(up, p, c, s));
      }
    }
  });
  CHECK(checked > 10000);
  CHECK(failures == 0);
}

TEST_CASE("PlanStep always moves an upgrade on when nothing is booting or draining") {
  // Spawning one more would break a budget, or there is nothing to do: otherwise an upgrade
  // could stall with no event left to wake it.
  int failures = 0;
  ForEverySmallPool(
      [&](const std::optional<UpgradeStrategy>& up, const UpgradePolicy& p, const PoolCounts& c) {
        if (!up) return;
        const int draining =
            c.alive - c.attached_ready - c.attached_booting - c.detached_ready - c.detached_booting;
        const int pending = c.target - c.attached_ready - c.attached_booting - c.empty_slots;
        if (c.attached_booting > 0 || c.detached_booting > 0 || draining > 0 || pending > 0) return;
        const UpgradeStep s = PlanStep(up, p, c);
        if (s.done || s.spawn > 0 || s.drain_ready > 0) return;
        if (c.attached_ready + c.attached_booting >= c.target) return;  // slots full (shrink)
        ++failures;
        if (failures <= 5) FAIL_CHECK("stalls at " << Show(up, p, c, s));
      });
  CHECK(failures == 0);
}

TEST_CASE("PlanStep spawns as many as the tightest budget allows, not fewer") {
  // A spawn count below every bound would slow upgrades down to one event per worker.
  int failures = 0;
  ForEverySmallPool([&](const std::optional<UpgradeStrategy>& up, const UpgradePolicy& p,
                        const PoolCounts& c) {
    if (!up) return;
    const UpgradeStep s = PlanStep(up, p, c);
    if (s.done) return;
    const int more = s.spawn + 1;
    const bool at_bound = more > c.empty_slots ||
                          (p.canary && c.attached_ready == 0 && c.attached_booting + more > 1) ||
                          (*up == kSmooth && c.attached_booting + more > p.max_unacked) ||
                          (*up == kSmooth && p.max_additional &&
                           c.alive + more > c.target + std::max(1, *p.max_additional));
    if (at_bound) return;
    ++failures;
    if (failures <= 5) FAIL_CHECK("could spawn more at " << Show(up, p, c, s));
  });
  CHECK(failures == 0);
}

TEST_CASE("strategy names") {
  CHECK(std::string(UpgradeStrategyName(kSmooth)) == "smooth");
  CHECK(std::string(UpgradeStrategyName(kFleet)) == "fleet");
}

}  // namespace
}  // namespace einhorn::core

namespace einhorn::core {
namespace {

// The default --max-unacked (scale_unacked): Einhorn's one per CPU for a small pool, a tenth
// of a large one, so that an upgrade of 1000 fast workers is not serialised on 2 CPUs.
TEST_CASE("upgrade: the default max_unacked scales with the pool, an explicit one does not") {
  UpgradePolicy p = Policy(2, std::nullopt, true);
  CHECK(MaxUnacked(p, 1000) == 2);  // explicit: exactly as given, as Einhorn
  p.scale_unacked = true;
  CHECK(MaxUnacked(p, 1) == 2);
  CHECK(MaxUnacked(p, 20) == 2);
  CHECK(MaxUnacked(p, 21) == 3);
  CHECK(MaxUnacked(p, 1000) == 100);
  CHECK(MaxUnacked(p, 5000) == 500);
  p.max_unacked = 16;  // 16 CPUs
  CHECK(MaxUnacked(p, 100) == 16);
  // PlanStep uses it: after the canary, 100 new workers boot at once in a pool of 1000.
  const UpgradeStep step = PlanStep(kSmooth, p, Counts(1000, 1, 0, 999, 0));
  CHECK(step.spawn == 100);
  p.scale_unacked = false;
  CHECK(PlanStep(kSmooth, p, Counts(1000, 1, 0, 999, 0)).spawn == 16);
}

}  // namespace
}  // namespace einhorn::core
