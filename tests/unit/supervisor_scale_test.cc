// The supervisor's per-event work is O(log n), never O(n), in the number of workers: counted
// in elements scanned (Supervisor::scan_steps), not timed. On the old code (a scan of every
// worker for each spawn's index, for each Count, for each drain) these counts grew as n^2.
#include <doctest/doctest.h>

#include <cstdint>
#include <vector>

#include "core/supervisor.h"
#include "fake_effects.h"

namespace einhorn::core {
namespace {

using test::FakeEffects;

SupervisorConfig Manual(int n, int max_unacked) {
  SupervisorConfig c;
  c.target = n;
  c.ack_mode.kind = AckMode::Kind::kManual;
  c.backoff_base = Seconds(1);
  c.jitter = 0;
  c.upgrade.max_unacked = max_unacked;
  return c;
}

// Acks every booting worker of the current generation, one event each, and lets every
// draining one exit, until nothing changes.
void AckAndReap(Supervisor& s, Time now) {
  for (;;) {
    std::vector<Pid> booting, draining;
    for (const auto& [pid, w] : s.workers()) {
      if (w.state == WorkerState::kBooting) booting.push_back(pid);
      if (w.state == WorkerState::kDraining) draining.push_back(pid);
    }
    if (booting.empty() && draining.empty()) return;
    for (const Pid p : booting) s.Ack(p, now);
    for (const Pid p : draining) s.ChildExited(p, ExitStatus{false, 0}, now);
    REQUIRE(s.TalliesMatch());
  }
}

TEST_CASE("supervisor scale: start, ack and upgrade of n workers scan O(n) elements in all") {
  for (const int n : {500, 4000}) {
    CAPTURE(n);
    FakeEffects fx;
    Supervisor s(Manual(n, 8), fx);
    const Time t0 = Seconds(10);
    s.Start(t0);
    AckAndReap(s, t0);
    REQUIRE(s.workers().size() == static_cast<size_t>(n));
    REQUIRE(s.Upgrade(UpgradeStrategy::kSmooth, t0 + Seconds(5)).started);
    AckAndReap(s, t0 + Seconds(6));
    CHECK_FALSE(s.upgrade().has_value());
    REQUIRE(s.last_upgrade().has_value());
    CHECK(s.last_upgrade()->ok);
    CHECK(s.workers().size() == static_cast<size_t>(n));
    CHECK(s.ready_count() == n);
    CHECK(s.booting_count() == 0);
    CHECK(s.draining_count() == 0);
    // ~3 events per worker (spawn, ack, exit) at each of start and upgrade, each O(1)
    // elements; the old code scanned every worker at each of them.
    CHECK(s.scan_steps() <= static_cast<std::uint64_t>(n) * 40);
  }
}

// A resize at n workers costs O(k log n) for k slots given up or added, not a sort of every
// slot (issue 20: `dec` and `set_workers` replied in ~2 ms at 1000 workers, most of it that
// sort and the rebuild of the slot sets).
TEST_CASE("supervisor scale: dec and set_workers at n workers visit O(log n) elements each") {
  const int n = 4000;
  FakeEffects fx;
  Supervisor s(Manual(n, 8), fx);
  Time now = Seconds(10);
  s.Start(now);
  AckAndReap(s, now);
  REQUIRE(s.ready_count() == n);
  const std::uint64_t before = s.scan_steps();
  // 100 `dec`: each gives up the highest slot; its worker is drained and exits.
  for (int i = 1; i <= 100; ++i) {
    now += Seconds(0.02);
    s.SetTarget(n - i, now);
    REQUIRE(fx.kills.size() == static_cast<size_t>(i));
    CHECK(fx.kills.back().pid == 100 + n - i);  // pids follow the slots: the highest goes
    s.ChildExited(fx.kills.back().pid, ExitStatus{true, 12}, now);
  }
  CHECK(s.target() == n - 100);
  CHECK(s.TalliesMatch());
  // 100 `set_workers` up and down by one: the new slot is the one given up again (it is not
  // ready yet: booting and empty slots go first).
  for (int i = 0; i < 100; ++i) {
    now += Seconds(0.02);
    s.SetTarget(n - 99, now);
    s.SetTarget(n - 100, now);
  }
  CHECK(s.TalliesMatch());
  CHECK(s.ready_count() == n - 100);
  // The old code sorted every slot for each shrink: 4000 * 12 comparisons per `dec`.
  CHECK(s.scan_steps() - before <= 300u * 64);
}

// The shell asks NextDeadline after every event and calls Tick at every slice of spawns: both
// visit only what is due (the deadline index), not every worker (issue 20: a walk of the pool
// at each turn of the loop, and a spawn of 1000 takes about 1000 turns).
TEST_CASE("supervisor scale: NextDeadline and Tick at n workers visit only what is due") {
  const int n = 4000;
  SupervisorConfig c;
  c.target = n;
  c.ack_mode.kind = AckMode::Kind::kTimer;
  c.ack_mode.timer_seconds = 1;
  c.backoff_base = Seconds(1);
  c.jitter = 0;
  c.signal_timeout = Seconds(5);
  FakeEffects fx;
  Supervisor s(c, fx);
  Time now = Seconds(10);
  s.Start(now);
  REQUIRE(s.NextDeadline() == now + Seconds(1));  // the timer acks
  now += Seconds(1);
  s.Tick(now);  // all n are due: visiting them is the work
  REQUIRE(s.ready_count() == n);
  CHECK_FALSE(s.NextDeadline().has_value());
  const std::uint64_t before = s.scan_steps();
  // 100 rounds: a worker exits (its slot is refilled at once: it served for over -s), the
  // shell asks for the next deadline (its timer ack), and ticks then.
  for (int i = 0; i < 100; ++i) {
    now += Seconds(2);
    s.ChildExited(static_cast<Pid>(100 + i), ExitStatus{false, 0}, now);
    for (int k = 0; k < 10; ++k) CHECK(s.NextDeadline() == now + Seconds(1));
    s.Tick(now + Seconds(0.5));  // nothing due yet
    s.Tick(now + Seconds(1));
    CHECK_FALSE(s.NextDeadline().has_value());
  }
  CHECK(s.ready_count() == n);
  // A drained worker's SIGKILL after -t is a deadline too.
  s.SetTarget(n - 1, now);
  REQUIRE(s.NextDeadline() == now + Seconds(5));
  s.Tick(now + Seconds(5));
  CHECK(fx.kills.back().signal == Signal::kKill);
  CHECK(s.TalliesMatch());
  // The old code walked all n workers (and slots) for each of these 1200 calls.
  CHECK(s.scan_steps() - before <= 100u * 64);
}

// The tallies follow every transition: crash loops, a shrink and a grow, a stop.
TEST_CASE("supervisor scale: the tallies equal a recount through resizes, failures and a stop") {
  FakeEffects fx;
  Supervisor s(Manual(6, 2), fx);
  Time now = Seconds(10);
  s.Start(now);
  CHECK(s.TalliesMatch());
  s.Ack(100, now);
  s.Ack(101, now);
  s.ChildExited(102, ExitStatus{false, 1}, now);  // before ready: a respawn is pending
  CHECK(s.TalliesMatch());
  s.SetTarget(3, now);
  CHECK(s.TalliesMatch());
  s.SetTarget(8, now);
  CHECK(s.TalliesMatch());
  now += Seconds(5);
  s.Tick(now);
  CHECK(s.TalliesMatch());
  REQUIRE(s.Upgrade(UpgradeStrategy::kSmooth, now).started);
  CHECK(s.TalliesMatch());
  const Pid first_new = fx.spawns.empty() ? 0 : static_cast<Pid>(99 + fx.spawns.size());
  s.ChildExited(first_new, ExitStatus{true, 9}, now);  // the canary dies
  CHECK(s.TalliesMatch());
  s.Stop(StopKind::kDrain, now);
  CHECK(s.TalliesMatch());
  CHECK(s.ready_count() + s.booting_count() + s.draining_count() ==
        static_cast<int>(s.workers().size()));
}

}  // namespace
}  // namespace einhorn::core
