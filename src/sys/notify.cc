#include "sys/notify.h"

#include <systemd/sd-daemon.h>

#include <cstdlib>

namespace einhorn::sys {

bool ServiceManagerListens() {
  const char* s = std::getenv("NOTIFY_SOCKET");
  return s != nullptr && *s != '\0';
}

bool NotifyServiceManager(const std::string& message) {
  // unset_environment 0: a re-exec'd image must still find the socket.
  return sd_notify(0, message.c_str()) > 0;
}

std::optional<std::uint64_t> WatchdogMicroseconds() {
  std::uint64_t usec = 0;
  if (sd_watchdog_enabled(0, &usec) <= 0 || usec == 0) return std::nullopt;
  return usec;
}

}  // namespace einhorn::sys
