// What Linux tells about a listening socket's accept queue and about the master process, for
// `status` and the metrics (core/metrics.h). Reads only; no policy. Each figure is absent where
// the kernel does not expose it (UDP sockets, a kernel without unix_diag, no /proc).
#pragma once

#include <cstdint>
#include <optional>

#include "core/metrics.h"

namespace einhorn::sys {

struct AcceptQueue {
  std::int64_t length = 0;   // connections waiting for accept()
  std::int64_t backlog = 0;  // the limit the kernel applies (listen()'s backlog, capped)
};

// TCP: TCP_INFO on the listening fd (for a socket in LISTEN, tcpi_unacked is the queue's
// length and tcpi_sacked its limit). UNIX stream: NETLINK_SOCK_DIAG's UNIX_DIAG_RQLEN for the
// socket's inode. Anything else (UDP, a socket not listening): nullopt.
std::optional<AcceptQueue> ReadAcceptQueue(int fd);

// The master's resident memory (/proc/self/statm) and open fds (/proc/self/fd).
std::optional<std::uint64_t> ResidentMemoryBytes();
std::optional<std::int64_t> OpenFds();

// TcpExt ListenOverflows and ListenDrops from /proc/net/netstat (the network namespace's).
std::optional<core::HostListenStats> ReadHostListenStats();

}  // namespace einhorn::sys
