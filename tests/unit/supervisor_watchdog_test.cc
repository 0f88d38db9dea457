// Supervisor: --worker-watchdog (a ready worker must send WATCHDOG=1 within the interval) and
// the other sd_notify messages a -m notify worker sends (STATUS=, STOPPING=1).
#include <doctest/doctest.h>

#include "core/supervisor.h"
#include "fake_effects.h"

namespace einhorn::core {
namespace {

using test::FakeEffects;

Time At(double s) { return Seconds(s); }

SupervisorConfig Watched() {
  SupervisorConfig c;
  c.target = 1;
  c.ack_mode.kind = AckMode::Kind::kNotify;
  c.jitter = 0;
  c.signal_timeout = Seconds(2);
  c.worker_watchdog = Seconds(5);
  return c;
}

TEST_CASE("watchdog: a ready worker silent past the interval gets SIGABRT, then SIGKILL, then a "
          "successor") {
  FakeEffects fx;
  Supervisor s(Watched(), fx);
  s.Start(At(0));
  REQUIRE(fx.spawns.size() == 1);
  // Booting: not watched yet (the ack deadlines cover that).
  CHECK(s.NextDeadline() == std::nullopt);
  s.Tick(At(100));
  CHECK(fx.kills.empty());
  REQUIRE(s.Ack(100, At(101)) == AckResult::kAcked);
  CHECK(s.NextDeadline() == At(106));
  s.WorkerWatchdog(100, At(104));
  CHECK(s.NextDeadline() == At(109));
  s.Tick(At(108.9));
  CHECK(fx.kills.empty());
  s.Tick(At(109));
  REQUIRE(fx.kills.size() == 1);
  CHECK(fx.kills[0].pid == 100);
  CHECK(fx.kills[0].signal == Signal::kAbrt);
  CHECK(s.watchdog_timeouts() == 1);
  CHECK(s.workers().at(100).state == WorkerState::kDraining);
  // A late WATCHDOG=1 does not save it, and it is not aborted twice.
  s.WorkerWatchdog(100, At(109.5));
  s.Tick(At(110));
  CHECK(fx.kills.size() == 1);
  s.Tick(At(111));
  REQUIRE(fx.kills.size() == 2);
  CHECK(fx.kills[1].signal == Signal::kKill);
  s.ChildExited(100, ExitStatus{true, 9}, At(111.1));
  REQUIRE(fx.spawns.size() == 2);
  CHECK(s.watchdog_timeouts() == 1);
  // The count survives a reload.
  CHECK(Supervisor::Restore(s.Snapshot(), fx).watchdog_timeouts() == 1);
}

// Every way of becoming ready starts the watchdog's clock: with -m 0 a worker is ready at
// fork, and one that never sends WATCHDOG=1 was never watched (issue 14.10).
TEST_CASE("watchdog: a worker ready at fork (-m 0) that stays silent is aborted and replaced") {
  FakeEffects fx;
  SupervisorConfig c = Watched();
  c.ack_mode.kind = AckMode::Kind::kTimer;
  c.ack_mode.timer_seconds = 0;
  Supervisor s(c, fx);
  s.Start(At(10));
  REQUIRE(fx.spawns.size() == 1);
  REQUIRE(s.workers().at(100).state == WorkerState::kReady);
  CHECK(s.workers().at(100).watchdog_at == At(10));
  CHECK(s.NextDeadline() == At(15));
  s.Tick(At(14.9));
  CHECK(fx.kills.empty());
  s.Tick(At(15));
  REQUIRE(fx.kills.size() == 1);
  CHECK(fx.kills[0].pid == 100);
  CHECK(fx.kills[0].signal == Signal::kAbrt);
  CHECK(s.watchdog_timeouts() == 1);
  s.Tick(At(17));
  REQUIRE(fx.kills.size() == 2);
  CHECK(fx.kills[1].signal == Signal::kKill);
  // Ready for longer than -s: replaced at once.
  s.ChildExited(100, ExitStatus{true, 9}, At(17.1));
  REQUIRE(fx.spawns.size() == 2);
  // The successor is ready at fork too, and watched from then on.
  REQUIRE(s.workers().at(101).state == WorkerState::kReady);
  CHECK(s.workers().at(101).watchdog_at == At(17.1));
  CHECK(s.NextDeadline() == At(22.1));
  s.WorkerWatchdog(101, At(21));
  s.Tick(At(25));
  CHECK(fx.kills.size() == 2);
  s.Tick(At(26));
  CHECK(fx.kills.size() == 3);
  CHECK(s.watchdog_timeouts() == 2);
}

// The three ways of becoming ready log the same kind of line and event, and all arm the watchdog.
TEST_CASE("watchdog: every way of becoming ready arms it") {
  for (const char* how : {"timer 0", "timer 1", "ack"}) {
    INFO(how);
    FakeEffects fx;
    SupervisorConfig c = Watched();
    const std::string mode = how;
    if (mode != "ack") {
      c.ack_mode.kind = AckMode::Kind::kTimer;
      c.ack_mode.timer_seconds = mode == "timer 0" ? 0 : 1;
    }
    Supervisor s(c, fx);
    s.Start(At(0));
    s.Tick(At(1));
    if (mode == "ack") REQUIRE(s.Ack(100, At(1)) == AckResult::kAcked);
    const Worker& w = s.workers().at(100);
    REQUIRE(w.state == WorkerState::kReady);
    REQUIRE(w.ready_at.has_value());
    CHECK(w.watchdog_at == w.ready_at);
    CHECK(fx.EventsOf(EventKind::kReady).size() == 1);
    CHECK(fx.Logged("is ready"));
  }
}

TEST_CASE("watchdog: WATCHDOG=1 in time keeps a worker, and without the option nothing is watched") {
  FakeEffects fx;
  Supervisor s(Watched(), fx);
  s.Start(At(0));
  s.Ack(100, At(1));
  for (double t = 4; t < 60; t += 4) {
    s.WorkerWatchdog(100, At(t));
    s.Tick(At(t + 0.5));
  }
  CHECK(fx.kills.empty());

  FakeEffects plain;
  SupervisorConfig c = Watched();
  c.worker_watchdog.reset();
  Supervisor u(c, plain);
  u.Start(At(0));
  u.Ack(100, At(1));
  u.Tick(At(1000));
  CHECK(plain.kills.empty());
  CHECK(u.NextDeadline() == std::nullopt);
}

TEST_CASE("notify: STATUS is kept, STOPPING=1 drains without a signal, READY=1 acks in notify") {
  FakeEffects fx;
  SupervisorConfig c = Watched();
  c.worker_watchdog.reset();
  c.target = 2;
  Supervisor s(c, fx);
  s.Start(At(0));
  s.WorkerStatusText(100, "warming up");
  CHECK(s.workers().at(100).notify_status == "warming up");
  CHECK(s.Ack(100, At(1)) == AckResult::kAcked);
  CHECK(s.Ack(101, At(1)) == AckResult::kAcked);
  s.WorkerStopping(101, At(2));
  CHECK(s.workers().at(101).state == WorkerState::kDraining);
  CHECK(fx.kills.empty());                             // it leaves on its own
  CHECK(s.Ack(101, At(2.5)) == AckResult::kDraining);  // and cannot come back
  CHECK(fx.spawns.size() == 2);                        // its slot waits for its exit
  s.ChildExited(101, ExitStatus{false, 0}, At(3));
  CHECK(fx.spawns.size() == 3);  // it had been up past -s: replaced at once
  // A worker that says STOPPING=1 before it ever was ready and exits is a failure: backoff.
  s.WorkerStopping(102, At(3.1));
  s.ChildExited(102, ExitStatus{false, 0}, At(3.2));
  CHECK(fx.spawns.size() == 3);
  CHECK(s.NextDeadline().has_value());
}

}  // namespace
}  // namespace einhorn::core
