#include "core/telemetry.h"

#include <utility>

namespace einhorn::core {

std::uint64_t Telemetry::Record(Event event) {
  Count(event);
  return ring_.Push(std::move(event));
}

void Telemetry::CountCommand(std::string_view verb) {
  ++counters_.commands[verb == "invalid" ? std::string("invalid") : CommandLabel(verb)];
}

void Telemetry::Count(const Event& e) {
  Counters& c = counters_;
  switch (e.kind) {
    case EventKind::kSpawn:
      ++c.spawns;
      return;
    case EventKind::kSpawnFailed:
      ++c.spawn_failures;
      return;
    case EventKind::kReady:
      ++c.acks;
      if (e.seconds) c.time_to_ready.Observe(*e.seconds);
      return;
    case EventKind::kExit: {
      ExitCause cause = ExitCause::kErrorExit;
      if (e.exit && e.exit->signaled) {
        cause = ExitCause::kSignal;
      } else if (e.exit && e.exit->code == 0) {
        cause = ExitCause::kCleanExit;
      }
      ++c.exits[static_cast<size_t>(cause)][e.during_drain ? 1 : 0];
      return;
    }
    case EventKind::kRespawnDelay:
      ++c.respawn_backoffs;
      return;
    case EventKind::kKill:
      ++c.kills;
      return;
    case EventKind::kWatchdogTimeout:
      ++c.watchdog_timeouts;
      return;
    case EventKind::kUpgradeDone:
    case EventKind::kUpgradeRollback:
      ++c.upgrades[e.kind == EventKind::kUpgradeDone ? 0 : 1];
      if (e.seconds) c.upgrade_duration.Observe(*e.seconds);
      return;
    case EventKind::kReload:
      if (e.detail == "done") ++c.reloads[0];
      if (e.detail.rfind("failed", 0) == 0) ++c.reloads[1];
      return;
    case EventKind::kControlRefused:
      for (size_t i = 0; i < kRefusalReasons.size(); ++i) {
        if (e.detail == kRefusalReasons[i]) ++c.refused_peers[i];
      }
      return;
    case EventKind::kDrain:
    case EventKind::kRecycle:  // counted from the supervisor (einhorn_worker_recycles_total)
    case EventKind::kRecycleDone:
    case EventKind::kUpgradeStart:
    case EventKind::kUpgradeProgress:
    case EventKind::kResize:
    case EventKind::kStop:
    case EventKind::kControl:  // counted by CountCommand, with the read-only verbs
    case EventKind::kZygote:
    case EventKind::kOther:
      return;
  }
}

Telemetry::Snapshot Telemetry::Save() const {
  Snapshot s;
  s.counters = counters_;
  s.last_seq = ring_.last_seq();
  s.events = ring_.events();
  return s;
}

void Telemetry::Restore(Snapshot snapshot) {
  counters_ = std::move(snapshot.counters);
  ring_.Restore(snapshot.last_seq, std::move(snapshot.events));
}

}  // namespace einhorn::core
