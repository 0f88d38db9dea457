// Wording shared by the supervisor's translation units, so its log lines read alike.
#pragma once

#include <string>

#include "core/supervisor.h"

namespace einhorn::core {

std::string Describe(const Worker& w);   // "worker 123 (index 0, generation 1)"
// An event about `w` at `now` (slot, pid and generation filled in).
Event WorkerEvent(EventKind kind, const Worker& w, Time now);

}  // namespace einhorn::core
