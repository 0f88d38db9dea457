// The master's side of systemd's notify protocol, through libsystemd (sd_notify(3),
// sd_watchdog_enabled(3)).
#pragma once

#include <cstdint>
#include <optional>
#include <string>

namespace einhorn::sys {

// NOTIFY_SOCKET is set: a service manager listens.
bool ServiceManagerListens();
// Sends one datagram of "KEY=value" lines; false if it could not be sent (logged by the caller).
bool NotifyServiceManager(const std::string& message);
// WATCHDOG_USEC when the manager expects WATCHDOG=1 from this pid, else nullopt.
std::optional<std::uint64_t> WatchdogMicroseconds();

}  // namespace einhorn::sys
