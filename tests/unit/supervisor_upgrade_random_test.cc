// The rig's checks (upgrade_rig.h), the serving invariant first, over random sequences of
// starts, acks, exits, ticks, upgrades, resizes and stops, with random configurations.
#include <doctest/doctest.h>

#include <cstdint>
#include <deque>
#include <map>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "upgrade_rig.h"

namespace einhorn::core {
namespace {

using namespace upgrade_rig;  // the rig and its vocabulary

// --- the invariant over random sequences ------------------------------------------------------

struct RandomRun {
  std::uint64_t seed;
  std::mt19937_64 rng;
  std::deque<std::string> history;
  explicit RandomRun(std::uint64_t s) : seed(s), rng(s) {}
  int Below(int n) { return static_cast<int>(rng() % static_cast<std::uint64_t>(n)); }
  bool Chance(int percent) { return Below(100) < percent; }
  void Note(const std::string& line) {
    history.push_back(line);
    if (history.size() > 40) history.pop_front();
  }
  std::string Story() const {
    std::string out;
    for (const auto& h : history) out += "  " + h + "\n";
    return out;
  }
};

SupervisorConfig RandomConfig(RandomRun& run, std::string* text) {
  SupervisorConfig c;
  c.target = 1 + run.Below(4);
  switch (run.Below(3)) {
    case 0:
      c.ack_mode.kind = AckMode::Kind::kManual;
      break;
    case 1:
      c.ack_mode.timer_seconds = 0;
      break;
    default:
      c.ack_mode.timer_seconds = 1;
  }
  c.backoff_base = Seconds(1);
  c.backoff_cap = Seconds(8);
  c.jitter = 0.2;
  c.jitter_seed = run.seed;
  if (run.Chance(50)) c.signal_timeout = Seconds(2);
  c.rollback_kill_after = Seconds(4);
  c.upgrade.max_unacked = 1 + run.Below(3);
  const int additional = run.Below(4);
  if (additional < 3) c.upgrade.max_additional = additional;
  c.upgrade.canary = run.Chance(50);
  if (run.Chance(50)) c.upgrade.ack_timeout = Seconds(3);
  if (run.Chance(50)) c.upgrade.upgrade_timeout = Seconds(15);
  c.upgrade.max_failures = 1 + run.Below(4);
  std::ostringstream o;
  o << "N=" << c.target << " ack="
    << (c.ack_mode.kind == AckMode::Kind::kManual ? "manual"
                                                  : std::to_string(c.ack_mode.timer_seconds))
    << " -t=" << (c.signal_timeout ? "2" : "-") << " unacked=" << c.upgrade.max_unacked
    << " additional=" << (c.upgrade.max_additional ? std::to_string(additional) : "-")
    << " canary=" << c.upgrade.canary << " ack_timeout=" << (c.upgrade.ack_timeout ? "3" : "-")
    << " upgrade_timeout=" << (c.upgrade.upgrade_timeout ? "15" : "-")
    << " max_failures=" << c.upgrade.max_failures;
  *text = o.str();
  return c;
}

template <class T>
T Pick(RandomRun& run, const std::vector<T>& from) {
  return from[static_cast<size_t>(run.Below(static_cast<int>(from.size())))];
}

TEST_CASE("ready workers serving never drop below min(N, before) over random sequences") {
  int runs_with_rollback = 0;
  int runs_with_done = 0;
  int failed_runs = 0;
  for (std::uint64_t seed = 1; seed <= 600; ++seed) {
    RandomRun run(seed);
    std::string config_text;
    const SupervisorConfig c = RandomConfig(run, &config_text);
    Rig r(c);
    r.report = false;
    double t = 0;
    r.Start(t);
    const bool manual = c.ack_mode.kind == AckMode::Kind::kManual;
    bool stopped = false;
    for (int step = 0; step < 150 && r.violations.empty() && !stopped; ++step) {
      const int roll = run.Below(100);
      std::vector<Pid> all, booting;
      for (const auto& [pid, w] : r.s.workers()) {
        all.push_back(pid);
        if (w.state == WorkerState::kBooting) booting.push_back(pid);
      }
      if (roll < 30) {
        const double steps[] = {0, 0.25, 0.5, 1, 2, 5};
        const auto next = r.s.NextDeadline();
        t = run.Chance(30) && next && ToSeconds(*next) > t ? ToSeconds(*next)
                                                           : t + steps[run.Below(6)];
        run.Note("Tick " + std::to_string(t));
        r.Tick(t);
      } else if (roll < 55) {
        if (booting.empty()) continue;
        const Pid p = Pick(run, booting);
        t += 0.01;
        run.Note("Ack " + std::to_string(p));
        r.Ack(p, t);  // refused in timer mode: also a valid call
      } else if (roll < 75) {
        if (all.empty()) continue;
        const Pid p = Pick(run, all);
        t += 0.01;
        const auto& w = r.s.workers().at(p);
        run.Note("Exit " + std::to_string(p) + " (" + WorkerStateName(w.state) + ", gen " +
                 std::to_string(w.generation) + ", slot " + std::to_string(w.slot) + ")");
        r.Exit(p, t, run.Chance(50) ? kExit1 : kKilled);
      } else if (roll < 87) {
        const UpgradeStrategy st = run.Chance(50) ? kSmooth : kFleet;
        t += 0.01;
        run.Note(std::string("Upgrade ") + UpgradeStrategyName(st));
        r.Upgrade(st, t);
      } else if (roll < 95) {
        const int n = 1 + run.Below(5);
        t += 0.01;
        run.Note("SetTarget " + std::to_string(n));
        r.SetTarget(n, t);
      } else if (roll < 99) {
        r.fx.fail_with = r.fx.fail_with.empty() ? "exec failed" : "";
        run.Note(r.fx.fail_with.empty() ? "spawns work" : "spawns fail");
      } else {
        t += 0.01;
        run.Note("Stop");
        const bool upgrading = r.s.upgrade().has_value();
        const int failed_before = r.fx.NotesOf(UpgradeNoteKind::kFailed);
        r.Stop(run.Chance(50) ? StopKind::kDrain : StopKind::kTerminate, t);
        if (upgrading && r.fx.NotesOf(UpgradeNoteKind::kFailed) != failed_before + 1) {
          r.violations.push_back("stop during an upgrade without a failure note");
        }
        stopped = true;
      }
    }
    // Settle: no more deaths or spawn errors; draining workers exit, manual workers ack. An
    // upgrade must end, and the pool must end up with N ready workers and nothing else. The
    // supervisor must never be left waiting with nothing that can wake it.
    r.fx.fail_with.clear();
    bool settled = false;
    for (int i = 0; i < 400 && r.violations.empty() && !settled; ++i) {
      bool acted = false;
      for (const auto& [pid, w] : std::map<Pid, Worker>(r.s.workers())) {
        if (w.state == WorkerState::kDraining) {
          t += 0.01;
          run.Note("settle: Exit " + std::to_string(pid) + " (draining)");
          r.Exit(pid, t, kExit0);
          acted = true;
        }
      }
      if (manual) {
        for (Pid p : r.Booting()) {
          t += 0.01;
          run.Note("settle: Ack " + std::to_string(p));
          r.Ack(p, t);
          acted = true;
        }
      }
      int ready_in_slots = 0;
      for (const auto& slot : r.s.slots()) {
        if (slot.pid && r.s.workers().at(*slot.pid).state == WorkerState::kReady) {
          ++ready_in_slots;
        }
      }
      if (stopped) {
        settled = r.s.Finished();
      } else {
        settled = !r.s.upgrade() && ready_in_slots == r.s.target() &&
                  static_cast<int>(r.s.workers().size()) == r.s.target();
      }
      if (settled) break;
      const auto next = r.s.NextDeadline();
      if (!next && !acted && r.s.workers().size() == 0 && stopped) break;
      if (!next && !acted) {
        r.violations.push_back("stalled: nothing can wake the supervisor, upgrade " +
                               std::string(r.s.upgrade() ? "on" : "off") + ", " +
                               std::to_string(ready_in_slots) + "/" + std::to_string(r.s.target()) +
                               " ready in slots, " + std::to_string(r.s.workers().size()) +
                               " alive");
        break;
      }
      if (next) {
        t = std::max(t + 0.001, ToSeconds(*next));
        run.Note("settle: Tick " + std::to_string(t));
        r.Tick(t);
      }
    }
    if (r.violations.empty() && !settled) r.violations.push_back("did not settle");
    runs_with_rollback += r.fx.NotesOf(UpgradeNoteKind::kFailed) > 0 ? 1 : 0;
    runs_with_done += r.fx.NotesOf(UpgradeNoteKind::kDone) > 0 ? 1 : 0;
    if (!r.violations.empty()) {
      ++failed_runs;
      if (failed_runs <= 3) {
        FAIL_CHECK("seed " << seed << " (" << config_text << "): " << r.violations.front()
                           << "\nlast calls:\n"
                           << run.Story());
      }
    }
  }
  CHECK(failed_runs == 0);
  // The sequences do reach both ends of an upgrade, or the test proves little.
  CHECK(runs_with_rollback > 50);
  CHECK(runs_with_done > 50);
}

}  // namespace
}  // namespace einhorn::core
