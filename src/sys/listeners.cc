#include "sys/listeners.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>
#include <vector>

#include "sys/holders.h"
#include "sys/peer.h"
#include "sys/posix.h"
#include "sys/safe_path.h"

namespace einhorn::sys {
namespace {

using core::BindSpec;
using R = core::Result<Listener>;

// The spec as an address without its flags, for messages: "127.0.0.1:8080", "[::1]:0",
// "unix:/run/a.sock".
std::string Describe(const BindSpec& spec) {
  switch (spec.family) {
    case BindSpec::Family::kUnix:
      return "unix:" + spec.path;
    case BindSpec::Family::kInet6:
      return "[" + spec.host + "]:" + std::to_string(spec.port);
    case BindSpec::Family::kInet:
      return spec.host + ":" + std::to_string(spec.port);
  }
  return spec.text;
}

// "held by pid 12 (...); stop it, or choose another port": who has it, and what to do.
std::string InUseAdvice(const std::vector<core::Holder>& holders, const char* thing) {
  return core::HeldBy(holders) + "; stop it, or choose another " + thing;
}

core::Status SetFlag(int fd, int level, int option, const char* name, const std::string& what) {
  const int one = 1;
  if (setsockopt(fd, level, option, &one, sizeof(one)) != 0) {
    return core::Status::Error(PosixError(std::string("setsockopt ") + name + " " + what, errno));
  }
  return core::Status::Ok();
}

// After listen: the spec decides blocking mode, whatever the socket started as.
core::Status ApplyBlocking(int fd, bool nonblock, const std::string& what) {
  const int flags = fcntl(fd, F_GETFL);
  if (flags < 0) return core::Status::Error(PosixError("fcntl F_GETFL " + what, errno));
  const int wanted = nonblock ? (flags | O_NONBLOCK) : (flags & ~O_NONBLOCK);
  if (wanted != flags && fcntl(fd, F_SETFL, wanted) != 0) {
    return core::Status::Error(PosixError("fcntl F_SETFL " + what, errno));
  }
  return core::Status::Ok();
}

std::string FormatSockaddr(const sockaddr_storage& ss) {
  char host[INET6_ADDRSTRLEN] = {0};
  if (ss.ss_family == AF_INET) {
    sockaddr_in sin;
    memcpy(&sin, &ss, sizeof(sin));
    inet_ntop(AF_INET, &sin.sin_addr, host, sizeof(host));
    return std::string(host) + ":" + std::to_string(ntohs(sin.sin_port));
  }
  if (ss.ss_family == AF_INET6) {
    sockaddr_in6 sin6;
    memcpy(&sin6, &ss, sizeof(sin6));
    inet_ntop(AF_INET6, &sin6.sin6_addr, host, sizeof(host));
    return "[" + std::string(host) + "]:" + std::to_string(ntohs(sin6.sin6_port));
  }
  return "?";
}

R OpenInet(const BindSpec& spec, int backlog) {
  const std::string what = Describe(spec);
  addrinfo hints;
  memset(&hints, 0, sizeof(hints));
  hints.ai_family = spec.family == BindSpec::Family::kInet6 ? AF_INET6 : AF_INET;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  const char* node = (spec.host.empty() || spec.host == "*") ? nullptr : spec.host.c_str();
  const std::string service = std::to_string(spec.port);
  addrinfo* found = nullptr;
  const int gai = getaddrinfo(node, service.c_str(), &hints, &found);
  if (gai != 0) {
    return R::Error("resolve " + what + ": " +
                    (gai == EAI_SYSTEM ? ErrnoText(errno) : gai_strerror(gai)));
  }

  // A name may resolve to several addresses; the first that binds wins, and if none does the
  // last error is reported.
  std::string last_error = "resolve " + what + ": no address";
  Listener listener;
  for (const addrinfo* ai = found; ai != nullptr; ai = ai->ai_next) {
    UniqueFd fd(socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol));
    if (fd.get() < 0) {
      last_error = PosixError("socket " + what, errno);
      continue;
    }
    core::Status st = core::Status::Ok();
    if (spec.reuseaddr) st = SetFlag(fd.get(), SOL_SOCKET, SO_REUSEADDR, "SO_REUSEADDR", what);
    if (st.ok() && spec.reuseport) {
      st = SetFlag(fd.get(), SOL_SOCKET, SO_REUSEPORT, "SO_REUSEPORT", what);
    }
    if (st.ok() && ai->ai_family == AF_INET6) {
      st = SetFlag(fd.get(), IPPROTO_IPV6, IPV6_V6ONLY, "IPV6_V6ONLY", what);
    }
    if (!st.ok()) {
      last_error = st.message();
      continue;
    }
    if (bind(fd.get(), ai->ai_addr, ai->ai_addrlen) != 0) {
      const int err = errno;
      last_error = PosixError("bind " + what, err);
      if (err == EADDRINUSE) last_error += ", " + InUseAdvice(PortHolders(spec.port), "port");
      continue;
    }
    if (listen(fd.get(), backlog) != 0) {
      last_error = PosixError("listen " + what, errno);
      continue;
    }
    if (core::Status b = ApplyBlocking(fd.get(), spec.nonblock, what); !b.ok()) {
      last_error = b.message();
      continue;
    }
    sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    if (getsockname(fd.get(), reinterpret_cast<sockaddr*>(&ss), &len) != 0) {
      last_error = PosixError("getsockname " + what, errno);
      continue;
    }
    listener.spec = spec;
    listener.bound = FormatSockaddr(ss);
    listener.fd = fd.release();
    break;
  }
  freeaddrinfo(found);
  if (listener.fd < 0) return R::Error(last_error);
  return listener;
}

// An existing socket file at our path is either a live server (refuse: two masters would
// fight over it) or left over by a crash (EADDRINUSE on bind unless removed). Only a refused
// connection proves it is stale, and it is removed only while the path still names the socket
// that was probed. What is there is first held to safe_path.h's rules (no link; in a directory
// other users can write, only root's or ours).
core::Status ClearStaleSocket(const ParentDir& dir, const sockaddr_un& addr,
                              const std::string& what) {
  auto found = StatEntry(dir);
  if (!found.ok()) return core::Status::Error(PosixError("stat " + what, errno));
  if (!found.value()) return core::Status::Ok();
  const struct stat st = *found.value();
  if (core::Status checked = CheckEntry(dir, st, what); !checked.ok()) return checked;
  if (!S_ISSOCK(st.st_mode)) {
    return core::Status::Error(what + " exists and is not a socket; refusing to replace it");
  }
  // Non-blocking, so a live server with a full backlog answers EAGAIN instead of hanging us.
  UniqueFd probe(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (probe.get() < 0) return core::Status::Error(PosixError("socket " + what, errno));
  if (connect(probe.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof(addr)) == 0) {
    // The listener's pid, as it was when it called listen(): the master serving that socket.
    std::vector<core::Holder> holders;
    if (auto peer = GetPeerCred(probe.get()); peer.ok()) holders = ProcessHolder(peer.value().pid);
    return core::Status::Error(what + " is in use, " + InUseAdvice(holders, "path"));
  }
  const int err = errno;
  switch (err) {
    case ECONNREFUSED: {
      auto now = StatEntry(dir);
      if (!now.ok() || !now.value()) return core::Status::Ok();  // removed meanwhile
      if (now.value()->st_dev != st.st_dev || now.value()->st_ino != st.st_ino) {
        return core::Status::Error(what + " was replaced while being checked; try again");
      }
      if (unlinkat(dir.fd.get(), dir.name.c_str(), 0) != 0 && errno != ENOENT) {
        return core::Status::Error(PosixError("unlink stale socket " + what, errno));
      }
      return core::Status::Ok();
    }
    case ENOENT:  // removed meanwhile
      return core::Status::Ok();
    case EAGAIN:
    case EINPROGRESS:
    case EPROTOTYPE:  // a datagram socket is bound there: also someone's live socket
      return core::Status::Error(what + " is in use, " + InUseAdvice({}, "path"));
    default:
      return core::Status::Error(PosixError("connect to existing " + what, err));
  }
}

R OpenUnix(const BindSpec& spec, int backlog, std::optional<mode_t> mode) {
  const std::string what = Describe(spec);
  sockaddr_un addr;
  memset(&addr, 0, sizeof(addr));
  addr.sun_family = AF_UNIX;
  // Checked here because the kernel (and libuv) would silently use a truncated path.
  if (spec.path.empty()) return R::Error("unix socket path is empty");
  if (spec.path.size() > sizeof(addr.sun_path) - 1) {
    return R::Error(what + ": path is " + std::to_string(spec.path.size()) +
                    " bytes, longer than the " + std::to_string(sizeof(addr.sun_path) - 1) +
                    " a UNIX socket address can hold");
  }
  memcpy(addr.sun_path, spec.path.data(), spec.path.size());

  auto dir = OpenParent(spec.path);
  if (!dir.ok()) return R::Error("bind " + what + ": " + dir.error());
  if (core::Status st = ClearStaleSocket(dir.value(), addr, what); !st.ok()) return R(st);

  UniqueFd fd(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (fd.get() < 0) return R::Error(PosixError("socket " + what, errno));
  // The file gets its mode at bind, so nobody can connect through a wider one even for an
  // instant: the kernel applies both the socket inode's mode (fchmod before bind) and the umask.
  int bound;
  if (mode) {
    if (fchmod(fd.get(), *mode) != 0) return R::Error(PosixError("fchmod " + what, errno));
    const mode_t old_umask = umask(static_cast<mode_t>(~*mode & 0777));
    bound = bind(fd.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof(addr));
    umask(old_umask);
  } else {
    bound = bind(fd.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof(addr));
  }
  if (bound != 0) return R::Error(PosixError("bind " + what, errno));
  Listener listener;
  // The inode is recorded relative to the same directory, so later changes and the removal
  // at exit touch this file only.
  auto made = StatEntry(dir.value());
  if (made.ok() && made.value() && S_ISSOCK(made.value()->st_mode)) {
    listener.owns_path = true;
    listener.path_dev = made.value()->st_dev;
    listener.path_ino = made.value()->st_ino;
  }
  auto fail = [&](const std::string& message) {
    if (listener.owns_path) RemoveIfSame(spec.path, listener.path_dev, listener.path_ino);
    return R::Error(message);
  };
  if (!listener.owns_path) return fail(what + " vanished right after bind");
  if (listen(fd.get(), backlog) != 0) return fail(PosixError("listen " + what, errno));
  if (core::Status b = ApplyBlocking(fd.get(), spec.nonblock, what); !b.ok()) {
    return fail(b.message());
  }
  listener.spec = spec;
  listener.bound = what;
  listener.fd = fd.release();
  return listener;
}

}  // namespace

core::Result<Listener> OpenListener(const BindSpec& spec, int backlog,
                                    std::optional<mode_t> unix_mode) {
  if (spec.family == BindSpec::Family::kUnix) return OpenUnix(spec, backlog, unix_mode);
  return OpenInet(spec, backlog);
}

void CloseListener(Listener& listener) {
  if (listener.fd >= 0) {
    close(listener.fd);
    listener.fd = -1;
  }
  if (listener.owns_path && listener.spec.family == BindSpec::Family::kUnix) {
    RemoveIfSame(listener.spec.path, listener.path_dev, listener.path_ino);
  }
  listener.owns_path = false;
}

}  // namespace einhorn::sys
