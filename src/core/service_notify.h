// What the master tells its service manager over systemd's notify protocol (sd_notify):
// READY=1 once the first generation is ready, RELOADING=1 while an upgrade or a master reload
// runs and READY=1 when it ends, STOPPING=1 on shutdown, and a one-line STATUS= whenever it
// changes. Pure: the shell builds the facts after every event and sends what Update returns.
#pragma once

#include <optional>
#include <string>

#include "core/types.h"

namespace einhorn::core {

struct ServiceFacts {
  int target = 0;
  int ready = 0;
  int booting = 0;
  int draining = 0;
  int generation = 1;
  std::optional<int> upgrading_to;  // the new generation while an upgrade runs
  int upgrade_new_ready = 0;
  bool reloading = false;  // a master re-exec is under way
  bool stopping = false;
  std::optional<std::string> last_upgrade_failure;  // the reason, when the last one rolled back
  std::optional<std::string> last_reload_error;
};

// "4/4 ready, generation 3, upgrading to generation 4 (1/4 new ready)", newlines replaced.
std::string ServiceStatusLine(const ServiceFacts& f);

class ServiceNotifier {
 public:
  // `reloaded`: this image replaces one that already told the manager RELOADING=1.
  explicit ServiceNotifier(bool reloaded = false)
      : phase_(reloaded ? Phase::kReloading : Phase::kStarting) {}

  // The message to send now ("KEY=value" lines joined by '\n'), if anything changed.
  // `now` is CLOCK_MONOTONIC, sent as MONOTONIC_USEC with RELOADING=1.
  std::optional<std::string> Update(const ServiceFacts& f, Time now);

 private:
  enum class Phase { kStarting, kReady, kReloading, kStopping };
  Phase phase_;
  std::string status_;
};

}  // namespace einhorn::core
