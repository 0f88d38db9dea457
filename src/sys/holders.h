// Who holds what a starting master could not have: a TCP port, a UNIX socket, a lockfile.
// Best effort, from /proc as this user may read it: another user's /proc/PID/fd is unreadable
// to an unprivileged master, and its holders are then simply not found (core::HeldBy says
// "another process"). Only for error messages: nothing here decides anything.
#pragma once

#include <sys/types.h>

#include <vector>

#include "core/holders.h"

namespace einhorn::sys {

// The processes with a socket bound to TCP `port` (IPv4 or IPv6) open, topmost first (a
// process whose parent is not among them, e.g. a master before its workers).
std::vector<core::Holder> PortHolders(int port);

// The processes holding a lock on the file open at `fd` (from /proc/locks), topmost first.
std::vector<core::Holder> LockHolders(int fd);

// `pid` and its command line (empty when unreadable); pid <= 0 gives an empty list.
std::vector<core::Holder> ProcessHolder(pid_t pid);

}  // namespace einhorn::sys
