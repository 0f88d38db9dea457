// What the master remembers about what it did: the event ring (events.h) and the counters
// behind the metrics (metrics.h), both fed by the same Record call, so `einhornctl events`
// and `einhornctl metrics` always agree. Carried across a master re-exec in the state
// (core/state.h), so an upgrade (which re-execs the master first) keeps its history.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/events.h"
#include "core/metrics.h"

namespace einhorn::core {

class Telemetry {
 public:
  explicit Telemetry(size_t capacity = EventRing::kDefaultCapacity) : ring_(capacity) {}

  // Counts the event and keeps it in the ring; returns its sequence number. The caller has
  // stamped its times (mono by the core, wall_ns by the shell).
  std::uint64_t Record(Event event);
  // One request on the command socket (every verb, read-only ones included, which the ring
  // does not keep); "invalid" for a line that is not a request.
  void CountCommand(std::string_view verb);

  const Counters& counters() const { return counters_; }
  const EventRing& ring() const { return ring_; }

  // The re-exec state.
  struct Snapshot {
    Counters counters;
    std::uint64_t last_seq = 0;
    std::vector<Event> events;
    bool operator==(const Snapshot&) const = default;
  };
  Snapshot Save() const;
  void Restore(Snapshot snapshot);

 private:
  void Count(const Event& e);

  EventRing ring_;
  Counters counters_;
};

}  // namespace einhorn::core
