// Socket activation in: listening sockets handed to the master by its service manager
// (LISTEN_FDS, LISTEN_PID, LISTEN_FDNAMES; read as sd_listen_fds_with_names does, by
// core/systemd_env.h).
// The master adopts them instead of binding its own: matched to a -b spec by address, or, if
// no -b matches, passed on to the workers as they are, under their LISTEN_FDNAMES name.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "core/bind_spec.h"
#include "core/status.h"
#include "sys/listeners.h"

namespace einhorn::sys {

struct ActivatedSocket {
  int fd = -1;
  std::string name;   // its LISTEN_FDNAMES entry ("unknown" when none was given)
  core::BindSpec address;  // family, host/port or path, read back with getsockname
  std::string bound;       // "127.0.0.1:8080", "[::1]:8080", "unix:/run/app.sock"
};

// The sockets passed to this process (LISTEN_PID is ours), and removes LISTEN_* from the
// environment. Anything that is not a listening stream socket is an error naming its fd.
core::Result<std::vector<ActivatedSocket>> TakeActivatedSockets();

// An inherited fd described as TakeActivatedSockets would (name "inherited"): an error if it
// is not a listening stream socket of the IP or UNIX family. For fds a Ruby Einhorn master
// left open across its exec into us.
core::Result<ActivatedSocket> DescribeInheritedSocket(int fd);

// Whether `socket` is what `spec` would bind: the same path, or the same port and address
// (a host name is resolved; `*` and an empty host are the wildcard address).
bool SocketMatches(const ActivatedSocket& socket, const core::BindSpec& spec);

// The listener the master uses for an adopted socket: the -b spec it matched (its
// blocking flag applied) or, unmatched, a spec named after the socket. The service manager
// owns a UNIX socket's path: it is never unlinked by us.
core::Result<Listener> AdoptActivated(const ActivatedSocket& socket,
                                      const std::optional<core::BindSpec>& spec);

}  // namespace einhorn::sys
