// What the e2e tests ask a running master over its command socket, shared by the test files.
#pragma once

#include <optional>
#include <string>

#include "core/pool_status.h"
#include "harness.h"

namespace einhorn::test {

// The master's command socket: MasterRun gives it a TMPDIR of its own, so the default path.
std::string Sock(const MasterRun& m);
// `status`, parsed; nullopt if the master cannot be reached or answers something else.
std::optional<core::PoolStatus> Status(const MasterRun& m);

}  // namespace einhorn::test
