// Listening sockets for -b specs, opened once in the master with plain socket(2) (never libuv)
// and CLOEXEC set; the spawn plan clears CLOEXEC in each child only.
#pragma once

#include <sys/types.h>

#include <optional>
#include <string>

#include "core/bind_spec.h"
#include "core/status.h"

namespace einhorn::sys {

struct Listener {
  core::BindSpec spec;
  int fd = -1;
  std::string bound;  // the real address: "127.0.0.1:41234", "[::1]:8080", "unix:/run/a.sock"
  // The socket file we created (kUnix only), so CloseListener never unlinks a file that
  // someone else put at the same path since.
  bool owns_path = false;
  dev_t path_dev = 0;
  ino_t path_ino = 0;
};

// Resolves the host (getaddrinfo; "*" is the IPv4 wildcard), applies the flags (r: SO_REUSEADDR,
// reuseport: SO_REUSEPORT before bind; n: O_NONBLOCK after listen), binds and listens with
// `backlog`. IPv6 sockets are IPV6_V6ONLY, so [::]:P and 0.0.0.0:P can both be bound.
// UNIX paths: longer than sun_path is an error; an existing socket file is replaced
// only if nothing answers on it; any other existing file is an error, and so are a symbolic
// link and, in a directory other users can write, a file neither root nor we own
// (sys/safe_path.h). `unix_mode` gives the socket file exactly that mode from the moment it
// exists (the umask's otherwise). Port 0 is resolved.
core::Result<Listener> OpenListener(const core::BindSpec& spec, int backlog,
                                    std::optional<mode_t> unix_mode = std::nullopt);

// Closes the fd and, for UNIX sockets, unlinks the path if it is still our socket (same inode,
// never through a link).
void CloseListener(Listener& listener);

}  // namespace einhorn::sys
