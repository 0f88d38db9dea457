// Who is on the other end of a UNIX socket, and how processes relate: what the command socket
// needs to decide whether a peer may talk to it and whether an ack is a worker's own.
#pragma once

#include <sys/types.h>

#include <string>
#include <utility>
#include <vector>

#include "core/status.h"

namespace einhorn::sys {

struct PeerCred {
  pid_t pid = 0;
  uid_t uid = 0;
  gid_t gid = 0;
};
// SO_PEERCRED: the credentials the peer had when it connected (or created the socketpair).
core::Result<PeerCred> GetPeerCred(int fd);

// pid, its parent, its grandparent, ... up to (not including) pid 1, following ppid links in
// /proc (bounded, so a pid loop cannot hang the master).
std::vector<pid_t> Lineage(pid_t pid);

// A connected AF_UNIX stream pair, both ends CLOEXEC: {master's end, worker's end}.
core::Result<std::pair<int, int>> StreamSocketPair();

// A user or group given by number or by name.
core::Result<uid_t> ResolveUser(const std::string& name_or_id);
core::Result<gid_t> ResolveGroup(const std::string& name_or_id);

}  // namespace einhorn::sys
