// Who holds a port, a socket or a lock that a starting master cannot have: the text of /proc
// read into facts, and the facts into the words of a refusal. Pure: sys/holders.h reads /proc.
// Everything here comes from other users' processes: parsers take any bytes, and what they put
// into a message is cleaned and bounded.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace einhorn::core {

// /proc/net/tcp or /proc/net/tcp6: the inodes (non-zero) of the sockets whose local port is
// `port`, whatever their address or state. Malformed lines are skipped.
std::vector<std::uint64_t> SocketInodesOnPort(std::string_view proc_net_tcp, int port);

// /proc/locks: the pids holding a lock (FLOCK, POSIX or OFD; not the waiters, "->") on the
// file (device major:minor, inode). pid -1 (an OFD lock, whose owner is no process) and 0 are
// left out.
std::vector<long> LockHolderPids(std::string_view proc_locks, unsigned major, unsigned minor,
                                 std::uint64_t inode);

// /proc/PID/cmdline: the words joined by spaces, control bytes as '?', cut at `max` bytes
// with "...".
std::string CommandLineText(std::string_view cmdline, size_t max = 120);

// One process found holding the thing; `command` is empty when its command line could not be
// read.
struct Holder {
  long pid = 0;
  std::string command;
};

// "held by pid 12 (einhorn-cpp -n 4 -- app)", "... and 4 other processes", or, when nobody could
// be found (other users' /proc entries are not readable), "held by another process". The first
// holder is the one named: the caller puts the topmost (a master before its workers) first.
std::string HeldBy(const std::vector<Holder>& holders);

}  // namespace einhorn::core
