#include "core/supervisor.h"

#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>

#include "fake_effects.h"

namespace einhorn::core {
namespace {

using test::FakeEffects;

Time At(double seconds) { return Seconds(seconds); }

SupervisorConfig Config(int n) {
  SupervisorConfig c;
  c.target = n;
  c.ack_mode.timer_seconds = 1.0;
  c.backoff_base = Seconds(1);
  c.backoff_cap = Seconds(30);
  c.jitter = 0;  // exact delays; jitter has its own test
  return c;
}

const ExitStatus kExit0{false, 0};
const ExitStatus kExit1{false, 1};
const ExitStatus kKilled{true, 9};

TEST_CASE("start spawns one worker per slot with its slot as child index") {
  FakeEffects fx;
  Supervisor s(Config(3), fx);
  s.Start(At(0));
  REQUIRE(fx.spawns.size() == 3);
  for (int i = 0; i < 3; ++i) {
    CHECK(fx.spawns[static_cast<size_t>(i)].slot == i);
    CHECK(fx.spawns[static_cast<size_t>(i)].generation == 1);
  }
  CHECK(s.workers().size() == 3);
  CHECK(s.slots()[1].pid == 101);
  CHECK(s.workers().at(100).state == WorkerState::kBooting);
}

TEST_CASE("timer ack makes a worker ready once it has lived the ack delay") {
  FakeEffects fx;
  Supervisor s(Config(1), fx);
  s.Start(At(0));
  REQUIRE(s.NextDeadline() == At(1));
  s.Tick(At(0.5));
  CHECK(s.workers().at(100).state == WorkerState::kBooting);
  s.Tick(At(1));
  CHECK(s.workers().at(100).state == WorkerState::kReady);
  CHECK(s.workers().at(100).ready_at == At(1));
  CHECK_FALSE(s.NextDeadline().has_value());
}

TEST_CASE("a zero ack delay makes workers ready at spawn") {
  FakeEffects fx;
  auto c = Config(2);
  c.ack_mode.timer_seconds = 0;
  Supervisor s(c, fx);
  s.Start(At(0));
  CHECK(s.workers().at(100).state == WorkerState::kReady);
  CHECK(s.workers().at(101).state == WorkerState::kReady);
  CHECK_FALSE(s.NextDeadline().has_value());
}

TEST_CASE("a worker that stayed up is replaced at once in the same slot") {
  FakeEffects fx;
  Supervisor s(Config(2), fx);
  s.Start(At(0));
  s.Tick(At(1));
  s.ChildExited(101, kKilled, At(10));
  REQUIRE(fx.spawns.size() == 3);
  CHECK(fx.spawns[2].slot == 1);
  CHECK(s.slots()[1].pid == 102);
  CHECK(s.slots()[1].restarts == 1);
  CHECK(s.slots()[1].consecutive_failures == 0);
  REQUIRE(s.slots()[1].last_exit.has_value());
  CHECK(s.slots()[1].last_exit->signaled);
  CHECK(s.slots()[1].last_exit->code == 9);
  CHECK(s.slots()[0].restarts == 0);
}

TEST_CASE("deaths before ack back off exponentially up to the cap") {
  FakeEffects fx;
  Supervisor s(Config(1), fx);
  s.Start(At(0));
  double now = 0;
  const double expected[] = {1, 1.5, 2.25, 3.375, 5.0625, 7.59375, 11.390625, 17.0859375,
                             25.62890625, 30, 30};
  for (double delay : expected) {
    const Pid pid = *s.slots()[0].pid;
    s.ChildExited(pid, kExit1, At(now));
    CHECK_FALSE(s.slots()[0].pid.has_value());
    REQUIRE(s.NextDeadline().has_value());
    CHECK(ToSeconds(*s.NextDeadline() - At(now)) == doctest::Approx(delay));
    // Nothing is spawned before the deadline.
    const size_t before = fx.spawns.size();
    s.Tick(At(now + delay * 0.99));
    CHECK(fx.spawns.size() == before);
    now += delay;
    s.Tick(At(now));
    CHECK(fx.spawns.size() == before + 1);
  }
  CHECK(s.slots()[0].consecutive_failures == 11);
}

TEST_CASE("a ready worker that dies within the backoff base still counts as a failure") {
  FakeEffects fx;
  auto c = Config(1);
  c.ack_mode.timer_seconds = 0;
  c.backoff_base = Seconds(2);
  Supervisor s(c, fx);
  s.Start(At(0));
  s.ChildExited(100, kExit0, At(0.1));
  CHECK(s.slots()[0].consecutive_failures == 1);
  CHECK(fx.spawns.size() == 1);
  CHECK(s.NextDeadline() == At(2.1));
}

TEST_CASE("a worker that stays up resets the slot's failure streak") {
  FakeEffects fx;
  Supervisor s(Config(1), fx);
  s.Start(At(0));
  s.ChildExited(100, kExit1, At(0.2));
  s.Tick(At(1.2));  // respawn after 1 s
  REQUIRE(s.slots()[0].pid == 101);
  s.ChildExited(101, kExit1, At(1.3));
  CHECK(s.slots()[0].consecutive_failures == 2);
  s.Tick(At(2.8));  // respawn after 1.5 s
  REQUIRE(s.slots()[0].pid == 102);
  s.Tick(At(3.8));  // acked
  CHECK(s.workers().at(102).state == WorkerState::kReady);
  s.ChildExited(102, kExit0, At(100));
  CHECK(s.slots()[0].consecutive_failures == 0);
  CHECK(s.slots()[0].pid == 103);  // at once
}

TEST_CASE("backoff is per slot") {
  FakeEffects fx;
  Supervisor s(Config(2), fx);
  s.Start(At(0));
  s.Tick(At(1));
  s.ChildExited(100, kExit1, At(0.5 + 1));
  s.ChildExited(101, kExit0, At(5));
  CHECK(s.slots()[0].consecutive_failures == 0);  // 100 was ready and up 1.5 s
  CHECK(s.slots()[1].consecutive_failures == 0);
  s.ChildExited(102, kExit1, At(5.1));  // the replacement of slot 0 crashed at once
  CHECK(s.slots()[0].consecutive_failures == 1);
  CHECK(s.slots()[1].consecutive_failures == 0);
  CHECK(s.slots()[1].pid.has_value());
}

TEST_CASE("jitter keeps delays within the configured band and varies them") {
  FakeEffects fx;
  auto c = Config(1);
  c.jitter = 0.2;
  c.jitter_seed = 42;
  Supervisor s(c, fx);
  s.Start(At(0));
  std::vector<double> delays;
  double now = 0;
  for (int i = 0; i < 20; ++i) {
    s.ChildExited(*s.slots()[0].pid, kExit1, At(now));
    const double d = ToSeconds(*s.NextDeadline() - At(now));
    const double nominal = std::min(30.0, std::pow(1.5, i));
    CHECK(d >= nominal * 0.8 - 1e-9);
    CHECK(d <= nominal * 1.2 + 1e-9);
    delays.push_back(d / nominal);
    now += d;
    s.Tick(At(now));
  }
  CHECK(*std::min_element(delays.begin(), delays.end()) <
        *std::max_element(delays.begin(), delays.end()));
}

TEST_CASE("a spawn error counts as a failure and is retried with backoff") {
  FakeEffects fx;
  fx.fail_with = "execve /nope: No such file or directory";
  Supervisor s(Config(1), fx);
  s.Start(At(0));
  CHECK(s.workers().empty());
  CHECK(s.slots()[0].consecutive_failures == 1);
  CHECK(fx.Logged("could not start the worker: execve /nope"));
  CHECK(s.NextDeadline() == At(1));
  s.Tick(At(1));
  CHECK(fx.spawns.size() == 2);
  CHECK(s.slots()[0].consecutive_failures == 2);
  CHECK(s.NextDeadline() == At(2.5));
  fx.fail_with.clear();
  s.Tick(At(2.5));
  CHECK(s.slots()[0].pid == 100);
}

TEST_CASE("unknown pids are ignored") {
  FakeEffects fx;
  Supervisor s(Config(1), fx);
  s.Start(At(0));
  s.ChildExited(4242, kExit0, At(1));
  CHECK(s.workers().size() == 1);
  CHECK(fx.spawns.size() == 1);
}

TEST_CASE("drain stop sends the drain signal, stops respawning and finishes with 0") {
  FakeEffects fx;
  Supervisor s(Config(2), fx);
  s.Start(At(0));
  s.ChildExited(100, kExit1, At(0.1));  // a respawn is pending for slot 0
  s.Stop(StopKind::kDrain, At(0.2));
  REQUIRE(fx.kills.size() == 1);
  CHECK(fx.kills[0].pid == 101);
  CHECK(fx.kills[0].signal == Signal::kUsr2);
  CHECK(s.workers().at(101).state == WorkerState::kDraining);
  // No respawn, no ack, no -t: only the drain reminder (supervisor_stop_test.cc).
  CHECK(s.NextDeadline() == At(0.2) + kDrainReminderEvery);
  s.Tick(At(5));
  CHECK(fx.spawns.size() == 2);
  CHECK_FALSE(s.Finished());
  s.ChildExited(101, kExit0, At(6));
  CHECK(fx.spawns.size() == 2);
  CHECK(s.Finished());
  CHECK(s.ExitCode() == 0);
}

TEST_CASE("terminate sends SIGTERM and escalates to SIGKILL after the signal timeout") {
  FakeEffects fx;
  auto c = Config(2);
  c.signal_timeout = Seconds(3);
  Supervisor s(c, fx);
  s.Start(At(0));
  s.Tick(At(1));
  s.Stop(StopKind::kTerminate, At(10));
  REQUIRE(fx.kills.size() == 2);
  CHECK(fx.kills[0].signal == Signal::kTerm);
  s.ChildExited(100, kExit0, At(11));
  CHECK(s.NextDeadline() == At(13));
  s.Tick(At(12.9));
  CHECK(fx.kills.size() == 2);
  s.Tick(At(13));
  REQUIRE(fx.kills.size() == 3);
  CHECK(fx.kills[2].pid == 101);
  CHECK(fx.kills[2].signal == Signal::kKill);
  CHECK_FALSE(s.NextDeadline().has_value());  // SIGKILL only once
  s.Tick(At(20));
  CHECK(fx.kills.size() == 3);
  s.ChildExited(101, kKilled, At(13.01));
  CHECK(s.Finished());
  CHECK(s.ExitCode() == 0);
}

TEST_CASE("a second stop escalates without postponing the -t escalation") {
  FakeEffects fx;
  auto c = Config(1);
  c.signal_timeout = Seconds(5);
  Supervisor s(c, fx);
  s.Start(At(0));
  s.Stop(StopKind::kDrain, At(1));
  s.Stop(StopKind::kTerminate, At(3));
  REQUIRE(fx.kills.size() == 2);
  CHECK(fx.kills[1].signal == Signal::kTerm);
  CHECK(fx.Logged("escalating the stop: sending SIGTERM"));
  CHECK(s.NextDeadline() == At(6));
}

TEST_CASE("quit sends SIGQUIT and finishes at once with 1") {
  FakeEffects fx;
  Supervisor s(Config(2), fx);
  s.Start(At(0));
  s.Stop(StopKind::kQuit, At(1));
  CHECK(s.Finished());
  CHECK(s.ExitCode() == 1);
  REQUIRE(fx.kills.size() == 2);
  CHECK(fx.kills[0].signal == Signal::kQuit);
}

TEST_CASE("quit with -k also sends the drain signal to survivors") {
  FakeEffects fx;
  auto c = Config(1);
  c.kill_children_on_exit = true;
  Supervisor s(c, fx);
  s.Start(At(0));
  s.Stop(StopKind::kQuit, At(1));
  REQUIRE(fx.kills.size() == 2);
  CHECK(fx.kills[0].signal == Signal::kQuit);
  CHECK(fx.kills[1].signal == Signal::kUsr2);
}

TEST_CASE("stop with no worker alive finishes immediately") {
  FakeEffects fx;
  fx.fail_with = "fork: Resource temporarily unavailable";
  Supervisor s(Config(1), fx);
  s.Start(At(0));
  s.Stop(StopKind::kTerminate, At(0.5));
  CHECK(s.Finished());
  CHECK(s.ExitCode() == 0);
  CHECK(fx.kills.empty());
}

TEST_CASE("a draining worker is not acked by the timer") {
  FakeEffects fx;
  Supervisor s(Config(1), fx);
  s.Start(At(0));
  s.Stop(StopKind::kDrain, At(0.5));
  s.Tick(At(2));
  CHECK(s.workers().at(100).state == WorkerState::kDraining);
  CHECK_FALSE(s.workers().at(100).ready_at.has_value());
}

TEST_CASE("config from options") {
  Options o;
  o.number = 7;
  o.seconds = 45;
  o.signal_timeout = 2.5;
  o.kill_children_on_exit = true;
  const SupervisorConfig c = ConfigFromOptions(o, 9);
  CHECK(c.target == 7);
  CHECK(c.backoff_base == Seconds(45));
  CHECK(c.backoff_cap == Seconds(45));  // the cap never undercuts the base
  CHECK(c.signal_timeout == Seconds(2.5));
  CHECK(c.kill_children_on_exit);
  CHECK(ConfigFromOptions(Options{}, 0).backoff_cap == Seconds(30));
  CHECK_FALSE(ConfigFromOptions(Options{}, 0).signal_timeout.has_value());
}

TEST_CASE("signal names") {
  Signal s{};
  CHECK(ParseSignalName("usr2", &s));
  CHECK(s == Signal::kUsr2);
  CHECK(ParseSignalName("SIGTERM", &s));
  CHECK(s == Signal::kTerm);
  CHECK_FALSE(ParseSignalName("SIGNOPE", &s));
  CHECK(std::string(SignalName(Signal::kKill)) == "SIGKILL");
  CHECK(ExitStatus{true, 9}.ToString() == "signal 9");
  CHECK(ExitStatus{false, 3}.ToString() == "exit 3");
}

}  // namespace
}  // namespace einhorn::core
