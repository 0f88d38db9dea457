// core/supervisor_stop.cc: the stop ladder a repeated INT or TERM climbs (DecideStop, and the
// Supervisor carrying it out), the reminder of who a stop still waits for, and the drain start
// each worker keeps for `status`.
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "core/supervisor.h"
#include "fake_effects.h"

namespace einhorn::core {
namespace {

using test::FakeEffects;

Time At(double seconds) { return Seconds(seconds); }

SupervisorConfig Config(int n) {
  SupervisorConfig c;
  c.target = n;
  c.ack_mode.timer_seconds = 0;  // ready at spawn
  c.jitter = 0;
  return c;
}

const ExitStatus kExit0{false, 0};
const ExitStatus kKilled{true, 9};

constexpr auto kInt = StopRepeat::kEscalate;  // INT and TERM
constexpr auto kUsr2 = StopRepeat::kResend;   // USR2 (and die)
constexpr auto kDrain = StopKind::kDrain;
constexpr auto kTerminate = StopKind::kTerminate;

StopDecision D(StopStep step, Signal signal, bool escalated) { return {step, signal, escalated}; }

// The signals sent to `pid`, in order.
std::vector<Signal> SignalsTo(const FakeEffects& fx, Pid pid) {
  std::vector<Signal> out;
  for (const auto& k : fx.kills) {
    if (k.pid == pid) out.push_back(k.signal);
  }
  return out;
}

// The reminder lines logged, in order.
std::vector<std::string> Reminders(const FakeEffects& fx) {
  std::vector<std::string> out;
  for (const auto& [level, text] : fx.logs) {
    if (text.find("still draining") != std::string::npos) out.push_back(text);
  }
  return out;
}

TEST_CASE("DecideStop: the first signal keeps Einhorn's meaning") {
  const Signal usr2 = Signal::kUsr2;
  CHECK(DecideStop(std::nullopt, kDrain, kInt, usr2) == D(StopStep::kDrain, usr2, false));
  CHECK(DecideStop(std::nullopt, kDrain, kUsr2, usr2) == D(StopStep::kDrain, usr2, false));
  CHECK(DecideStop(std::nullopt, kTerminate, kInt, usr2) ==
        D(StopStep::kTerm, Signal::kTerm, false));
  // --drain-signal: the first drain sends it.
  CHECK(DecideStop(std::nullopt, kDrain, kInt, Signal::kInt) ==
        D(StopStep::kDrain, Signal::kInt, false));
}

TEST_CASE("DecideStop: INT and TERM climb one rung, up to SIGKILL and SIGKILL again") {
  const Signal usr2 = Signal::kUsr2;
  for (StopKind kind : {kDrain, kTerminate}) {
    INFO(static_cast<int>(kind));
    CHECK(DecideStop(StopStep::kDrain, kind, kInt, usr2) ==
          D(StopStep::kTerm, Signal::kTerm, true));
    CHECK(DecideStop(StopStep::kTerm, kind, kInt, usr2) == D(StopStep::kKill, Signal::kKill, true));
    CHECK(DecideStop(StopStep::kKill, kind, kInt, usr2) ==
          D(StopStep::kKill, Signal::kKill, false));
  }
}

TEST_CASE("DecideStop: a repeated USR2 re-sends the drain signal and stays on its rung") {
  const Signal usr2 = Signal::kUsr2;
  CHECK(DecideStop(StopStep::kDrain, kDrain, kUsr2, usr2) == D(StopStep::kDrain, usr2, false));
  CHECK(DecideStop(StopStep::kTerm, kDrain, kUsr2, usr2) == D(StopStep::kTerm, usr2, false));
  CHECK(DecideStop(StopStep::kKill, kDrain, kUsr2, usr2) == D(StopStep::kKill, usr2, false));
  // A terminate that does not escalate (no signal of the master's is one today) re-sends TERM.
  CHECK(DecideStop(StopStep::kDrain, kTerminate, kUsr2, usr2) ==
        D(StopStep::kDrain, Signal::kTerm, false));
}

TEST_CASE("DecideStop: with --drain-signal TERM the second INT goes straight to SIGKILL") {
  const Signal term = Signal::kTerm;
  CHECK(DecideStop(std::nullopt, kDrain, kInt, term) == D(StopStep::kDrain, term, false));
  CHECK(DecideStop(StopStep::kDrain, kDrain, kInt, term) ==
        D(StopStep::kKill, Signal::kKill, true));
  CHECK(DecideStop(StopStep::kDrain, kTerminate, kInt, term) ==
        D(StopStep::kKill, Signal::kKill, true));
}

TEST_CASE("PidList names up to `shown` pids, then how many more") {
  CHECK(PidList({}, 10) == "");
  CHECK(PidList({7}, 10) == "7");
  CHECK(PidList({7, 8}, 10) == "7 and 8");
  CHECK(PidList({7, 8, 9}, 10) == "7, 8 and 9");
  CHECK(PidList({7, 8, 9}, 3) == "7, 8 and 9");
  CHECK(PidList({7, 8, 9, 10}, 2) == "7, 8 and 2 more");
  CHECK(PidList({7, 8, 9}, 0) == "3 more");
  std::vector<Pid> many;
  for (Pid p = 1000; p < 6000; ++p) many.push_back(p);
  const std::string text = PidList(many, kDrainReminderPids);
  CHECK(text == "1000, 1001, 1002, 1003, 1004, 1005, 1006, 1007, 1008, 1009 and 4990 more");
}

TEST_CASE("three INTs: the drain signal, then SIGTERM, then SIGKILL, and the master exits 0") {
  FakeEffects fx;
  Supervisor s(Config(2), fx);
  s.Start(At(0));
  s.Stop(kDrain, At(1), kInt);
  CHECK(s.stop_step() == StopStep::kDrain);
  CHECK(SignalsTo(fx, 100) == std::vector<Signal>{Signal::kUsr2});
  s.Stop(kDrain, At(2), kInt);
  CHECK(s.stop_step() == StopStep::kTerm);
  CHECK(SignalsTo(fx, 100) == std::vector<Signal>{Signal::kUsr2, Signal::kTerm});
  CHECK(
      fx.Logged("escalating the stop: sending SIGTERM to 2 workers; another INT or TERM "
                "sends SIGKILL"));
  CHECK(s.workers().at(100).signals_sent == std::vector<Signal>{Signal::kUsr2, Signal::kTerm});
  CHECK_FALSE(s.workers().at(100).killed);

  s.Stop(kDrain, At(3), kInt);
  CHECK(s.stop_step() == StopStep::kKill);
  CHECK(SignalsTo(fx, 101) == std::vector<Signal>{Signal::kUsr2, Signal::kTerm, Signal::kKill});
  CHECK(fx.Logged("escalating the stop: sending SIGKILL to 2 workers"));
  CHECK(s.workers().at(100).killed);
  CHECK(s.workers().at(100).kill_at == At(3));  // when it went, as after -t
  CHECK(fx.EventsOf(EventKind::kKill).size() == 2);
  // Nothing is left to hurry: no reminder, no -t; only the exits end it.
  CHECK_FALSE(s.NextDeadline().has_value());

  // A fourth sends SIGKILL again (harmless), without new kill events.
  s.Stop(kDrain, At(4), kInt);
  CHECK(SignalsTo(fx, 101).size() == 4);
  CHECK(SignalsTo(fx, 101).back() == Signal::kKill);
  CHECK(fx.Logged("stop signal again: sending SIGKILL to 2 workers"));
  CHECK(fx.EventsOf(EventKind::kKill).size() == 2);

  s.ChildExited(100, kKilled, At(4.1));
  CHECK_FALSE(s.Finished());
  s.ChildExited(101, kKilled, At(4.1));
  CHECK(s.Finished());
  CHECK(s.ExitCode() == 0);
  CHECK(fx.spawns.size() == 2);  // never a respawn
}

TEST_CASE("INT then TERM, and TERM then INT, climb the same ladder") {
  SUBCASE("INT, TERM, TERM") {
    FakeEffects fx;
    Supervisor s(Config(1), fx);
    s.Start(At(0));
    s.Stop(kDrain, At(1), kInt);
    s.Stop(kTerminate, At(2), kInt);
    s.Stop(kTerminate, At(3), kInt);
    CHECK(SignalsTo(fx, 100) == std::vector<Signal>{Signal::kUsr2, Signal::kTerm, Signal::kKill});
  }
  SUBCASE("TERM, INT: the first TERM is the SIGTERM rung already") {
    FakeEffects fx;
    Supervisor s(Config(1), fx);
    s.Start(At(0));
    s.Stop(kTerminate, At(1), kInt);
    CHECK(s.stop_step() == StopStep::kTerm);
    s.Stop(kDrain, At(2), kInt);
    CHECK(SignalsTo(fx, 100) == std::vector<Signal>{Signal::kTerm, Signal::kKill});
  }
}

TEST_CASE("USR2 never escalates, and an INT after it does") {
  FakeEffects fx;
  Supervisor s(Config(1), fx);
  s.Start(At(0));
  for (int i = 0; i < 4; ++i) s.Stop(kDrain, At(1 + i), kUsr2);
  CHECK(SignalsTo(fx, 100) == std::vector<Signal>(4, Signal::kUsr2));
  CHECK(fx.Logged("re-sending SIGUSR2 to 1 worker"));
  CHECK(s.stop_step() == StopStep::kDrain);
  s.Stop(kDrain, At(6), kInt);
  CHECK(SignalsTo(fx, 100).back() == Signal::kTerm);
  // USR2 on the SIGTERM rung: USR2 again, the rung stays.
  s.Stop(kDrain, At(7), kUsr2);
  CHECK(SignalsTo(fx, 100).back() == Signal::kUsr2);
  CHECK(s.stop_step() == StopStep::kTerm);
  s.Stop(kDrain, At(8), kInt);
  CHECK(SignalsTo(fx, 100).back() == Signal::kKill);
}

TEST_CASE("die is a first rung and never climbs, but an INT after it does") {
  FakeEffects fx;
  Supervisor s(Config(1), fx);
  s.Start(At(0));
  s.Die(Signal::kUsr2, At(1));
  s.Die(Signal::kUsr2, At(2));
  CHECK(SignalsTo(fx, 100) == std::vector<Signal>{Signal::kUsr2, Signal::kUsr2});
  CHECK(s.stop_step() == StopStep::kDrain);
  s.Stop(kDrain, At(3), kInt);
  CHECK(SignalsTo(fx, 100).back() == Signal::kTerm);
}

TEST_CASE("--drain-signal TERM: INT sends SIGTERM, the second INT SIGKILL") {
  FakeEffects fx;
  auto c = Config(1);
  c.drain_signal = Signal::kTerm;
  Supervisor s(c, fx);
  s.Start(At(0));
  s.Stop(kDrain, At(1), kInt);
  s.Stop(kDrain, At(2), kInt);
  CHECK(SignalsTo(fx, 100) == std::vector<Signal>{Signal::kTerm, Signal::kKill});
}

TEST_CASE("escalation keeps the -t deadline of the first signal, and -t does not kill twice") {
  FakeEffects fx;
  auto c = Config(1);
  c.signal_timeout = Seconds(10);
  Supervisor s(c, fx);
  s.Start(At(0));
  s.Stop(kDrain, At(1), kInt);
  s.Stop(kDrain, At(2), kInt);
  CHECK(s.workers().at(100).kill_at == At(11));
  s.Stop(kDrain, At(3), kInt);  // SIGKILL now
  const size_t kills = fx.kills.size();
  s.Tick(At(11));
  CHECK(fx.kills.size() == kills);  // -t finds it killed already
}

TEST_CASE("QUIT ends at once whatever the rung, with no reminder") {
  FakeEffects fx;
  Supervisor s(Config(1), fx);
  s.Start(At(0));
  s.Stop(kDrain, At(1), kInt);
  s.Stop(StopKind::kQuit, At(2));
  CHECK(s.Finished());
  CHECK(s.ExitCode() == 1);
  CHECK(SignalsTo(fx, 100).back() == Signal::kQuit);
  CHECK_FALSE(s.NextDeadline().has_value());
}

TEST_CASE("the drain reminder: every 5 s, names who the stop waits for and what forces it") {
  FakeEffects fx;
  Supervisor s(Config(2), fx);
  s.Start(At(0));
  s.Stop(kDrain, At(10), kInt);
  CHECK(s.NextDeadline() == At(15));
  s.Tick(At(14.9));
  CHECK(Reminders(fx).empty());
  s.Tick(At(15));
  REQUIRE(Reminders(fx).size() == 1);
  CHECK(Reminders(fx)[0] ==
        "2 workers still draining (pids 100 and 101); -t or a second Ctrl-C forces it");
  CHECK(s.NextDeadline() == At(20));
  s.Tick(At(17));  // not due: nothing
  CHECK(Reminders(fx).size() == 1);

  s.ChildExited(100, kExit0, At(18));
  s.Tick(At(20));
  REQUIRE(Reminders(fx).size() == 2);
  CHECK(Reminders(fx)[1] == "1 worker still draining (pids 101); -t or a second Ctrl-C forces it");

  // The second Ctrl-C: the next reminder is 5 s after it, and says what the next one does.
  s.Stop(kDrain, At(22), kInt);
  CHECK(s.NextDeadline() == At(27));
  s.Tick(At(27));
  REQUIRE(Reminders(fx).size() == 3);
  CHECK(Reminders(fx)[2] ==
        "1 worker still draining after SIGTERM (pids 101); -t or another Ctrl-C forces it");

  s.ChildExited(101, kExit0, At(28));
  CHECK(s.Finished());
  CHECK_FALSE(s.NextDeadline().has_value());
}

TEST_CASE("the drain reminder with -t says when SIGKILL comes") {
  FakeEffects fx;
  auto c = Config(2);
  c.signal_timeout = Seconds(8);
  Supervisor s(c, fx);
  s.Start(At(0));
  s.Stop(kTerminate, At(1), kInt);
  CHECK(s.NextDeadline() == At(6));  // the reminder before -t's SIGKILL at 9
  s.Tick(At(6));
  REQUIRE(Reminders(fx).size() == 1);
  CHECK(Reminders(fx)[0] ==
        "2 workers still draining after SIGTERM (pids 100 and 101); -t sends "
        "SIGKILL in 3.000s, another Ctrl-C forces it now");
  s.Tick(At(9));  // -t: both get SIGKILL; nobody is left to remind about
  CHECK(SignalsTo(fx, 100).back() == Signal::kKill);
  CHECK_FALSE(s.NextDeadline().has_value());
  s.Tick(At(11));
  CHECK(Reminders(fx).size() == 1);
}

TEST_CASE("the drain reminder names only the workers not killed yet") {
  FakeEffects fx;
  auto c = Config(2);
  c.signal_timeout = Seconds(3);
  Supervisor s(c, fx);
  s.Start(At(0));
  s.SetTarget(1, At(1));        // 101 drains, -t at 4
  s.Stop(kDrain, At(2), kInt);  // 100 drains, -t at 5
  s.Tick(At(4));                // -t: 101 killed
  s.Tick(At(5));                // -t: 100 killed
  CHECK_FALSE(s.NextDeadline().has_value());
  s.Tick(At(7));  // when the reminder was due: nobody it could hurry
  CHECK(Reminders(fx).empty());
}

TEST_CASE("the drain reminder is bounded with 5000 workers") {
  FakeEffects fx;
  Supervisor s(Config(5000), fx);
  s.Start(At(0));
  s.Stop(kDrain, At(1), kInt);
  s.Tick(At(6));
  REQUIRE(Reminders(fx).size() == 1);
  CHECK(Reminders(fx)[0] ==
        "5000 workers still draining (pids 100, 101, 102, 103, 104, 105, 106, 107, 108, 109 "
        "and 4990 more); -t or a second Ctrl-C forces it");
}

TEST_CASE("no drain reminder outside a stop: a shrink or an upgrade drains without one") {
  FakeEffects fx;
  Supervisor s(Config(2), fx);
  s.Start(At(0));
  s.SetTarget(1, At(1));
  CHECK(s.workers().at(101).state == WorkerState::kDraining);
  CHECK_FALSE(s.NextDeadline().has_value());
  s.Tick(At(30));
  CHECK(Reminders(fx).empty());
}

TEST_CASE("a worker's drain start is its first stop signal, or its STOPPING=1") {
  FakeEffects fx;
  auto c = Config(3);
  c.ack_mode.kind = AckMode::Kind::kNotify;
  Supervisor s(c, fx);
  s.Start(At(0));
  for (Pid p : {100, 101, 102}) CHECK_FALSE(s.workers().at(p).draining_since.has_value());
  s.WorkerStopping(102, At(1));
  CHECK(s.workers().at(102).draining_since == At(1));
  s.SetTarget(2, At(2));  // the pool gives up its emptiest slot: 102's
  s.Stop(kDrain, At(3), kInt);
  s.Stop(kDrain, At(4), kInt);
  s.Stop(kDrain, At(5), kInt);
  CHECK(s.workers().at(100).draining_since == At(3));
  CHECK(s.workers().at(101).draining_since == At(3));
  CHECK(s.workers().at(102).draining_since == At(1));
}

TEST_CASE("the rung, the reminder and the drain starts survive a snapshot and restore") {
  FakeEffects fx;
  Supervisor s(Config(1), fx);
  s.Start(At(0));
  s.Stop(kDrain, At(1), kInt);
  const SupervisorSnapshot snap = s.Snapshot();
  CHECK(snap.stop_step == StopStep::kDrain);
  CHECK(snap.drain_reminder == At(6));
  CHECK(snap.workers[0].draining_since == At(1));
  FakeEffects fx2;
  Supervisor r = Supervisor::Restore(snap, fx2);
  CHECK(r.Snapshot() == snap);
  CHECK(r.NextDeadline() == At(6));
  r.Stop(kDrain, At(2), kInt);  // the second INT, in the new image
  CHECK(SignalsTo(fx2, 100) == std::vector<Signal>{Signal::kTerm});
}

}  // namespace
}  // namespace einhorn::core
