// systemd's environment protocol, read as libsystemd 252 reads it (sd_listen_fds(3),
// sd_watchdog_enabled(3), sd_notify(3)): the variables a service manager sets for the process
// it starts. The protocol is stable and documented for reimplementation; libsystemd itself,
// with the six libraries it loads (gcrypt, lzma, zstd, lz4, cap, gpg-error), cost every start
// of the master about 0.35 ms, inside a reload's silence too.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "core/status.h"

namespace einhorn::core {

// The fds passed from SD_LISTEN_FDS_START (3) on, with their LISTEN_FDNAMES names ("unknown"
// each when that is unset). Nothing (count 0) when LISTEN_PID or LISTEN_FDS is unset or
// LISTEN_PID names another process; an error when a variable is malformed, LISTEN_FDS is not
// a positive count, or LISTEN_FDNAMES does not name each fd. A null pointer is an unset
// variable.
struct ListenFds {
  int count = 0;
  std::vector<std::string> names;  // LISTEN_FDNAMES, one per fd; empty when it is unset
  // The name of the i-th fd (from 0). Not a vector of "unknown": LISTEN_FDS may say 2^31.
  std::string Name(int i) const {
    return names.empty() ? "unknown" : names[static_cast<std::size_t>(i)];
  }
};
inline constexpr int kListenFdsStart = 3;
Result<ListenFds> ParseListenFds(const char* listen_pid, const char* listen_fds,
                                 const char* listen_fdnames, std::int64_t self_pid);

// WATCHDOG_USEC when the manager expects WATCHDOG=1 from `self_pid` (WATCHDOG_PID unset or
// ours); nothing when unset, malformed, 0 or infinite (2^64-1).
std::optional<std::uint64_t> ParseWatchdog(const char* watchdog_usec, const char* watchdog_pid,
                                           std::int64_t self_pid);

// NOTIFY_SOCKET as the bytes of a UNIX socket address's sun_path, and their length for the
// address: an absolute path (with its NUL), or "@name" in the abstract namespace (a leading
// NUL, no trailing one). Nothing when unset, empty, of another form, or longer than
// `max_path` (sizeof sun_path).
std::optional<std::string> NotifySocketPath(const char* notify_socket, std::size_t max_path);

}  // namespace einhorn::core
