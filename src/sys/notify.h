// The master's side of systemd's notify protocol (sd_notify(3), sd_watchdog_enabled(3)), as
// libsystemd speaks it (core/systemd_env.h reads the variables).
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include <sys/types.h>

#include "core/status.h"

namespace einhorn::sys {

// NOTIFY_SOCKET is set: a service manager listens.
bool ServiceManagerListens();
// Sends one datagram of "KEY=value" lines; false if it could not be sent (logged by the caller).
bool NotifyServiceManager(const std::string& message);
// WATCHDOG_USEC when the manager expects WATCHDOG=1 from this pid, else nullopt.
std::optional<std::uint64_t> WatchdogMicroseconds();

// -m notify: a worker's own NOTIFY_SOCKET, a datagram socket in the abstract namespace (no
// file to clean up; a random name, and the sender of every datagram is checked anyway),
// non-blocking, CLOEXEC, with SO_PASSCRED so each datagram says who sent it.
struct WorkerNotifySocket {
  int fd = -1;
  std::string address;  // for NOTIFY_SOCKET: "@einhorn-cpp/<master pid>/<random>"
};
core::Result<WorkerNotifySocket> OpenWorkerNotifySocket();

struct NotifyDatagram {
  pid_t sender = 0;  // from SCM_CREDENTIALS; 0 when the kernel gave none
  uid_t uid = static_cast<uid_t>(-1);  // the sender's, from SCM_CREDENTIALS
  std::string bytes;
};
// The next datagram waiting on a non-blocking socket; nullopt when none is left.
std::optional<NotifyDatagram> ReadNotifyDatagram(int fd);

}  // namespace einhorn::sys
