#include "sys/activation.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "core/systemd_env.h"
#include "sys/posix.h"
#include "sys/reexec.h"

namespace einhorn::sys {
namespace {

// Reads back what the socket is bound to, as a spec and as text.
core::Status Describe(int fd, ActivatedSocket* out) {
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  if (getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0) {
    return core::Status::Error(PosixError("getsockname of fd " + std::to_string(fd), errno));
  }
  char host[INET6_ADDRSTRLEN] = {0};
  core::BindSpec& a = out->address;
  if (ss.ss_family == AF_INET) {
    const auto* sin = reinterpret_cast<const sockaddr_in*>(&ss);
    inet_ntop(AF_INET, &sin->sin_addr, host, sizeof host);
    a.family = core::BindSpec::Family::kInet;
    a.host = host;
    a.port = ntohs(sin->sin_port);
    out->bound = a.host + ":" + std::to_string(a.port);
  } else if (ss.ss_family == AF_INET6) {
    const auto* sin6 = reinterpret_cast<const sockaddr_in6*>(&ss);
    inet_ntop(AF_INET6, &sin6->sin6_addr, host, sizeof host);
    a.family = core::BindSpec::Family::kInet6;
    a.host = host;
    a.port = ntohs(sin6->sin6_port);
    out->bound = "[" + a.host + "]:" + std::to_string(a.port);
  } else if (ss.ss_family == AF_UNIX) {
    const auto* sun = reinterpret_cast<const sockaddr_un*>(&ss);
    const size_t max = len > offsetof(sockaddr_un, sun_path) ? len - offsetof(sockaddr_un, sun_path)
                                                             : 0;
    a.family = core::BindSpec::Family::kUnix;
    a.path = std::string(sun->sun_path, strnlen(sun->sun_path, max));
    out->bound = "unix:" + a.path;
  } else {
    return core::Status::Error("fd " + std::to_string(fd) + " is not an IP or UNIX socket");
  }
  return core::Status::Ok();
}

bool SameAddress(const sockaddr* a, const sockaddr_storage& b) {
  if (a->sa_family != b.ss_family) return false;
  if (a->sa_family == AF_INET) {
    const auto* x = reinterpret_cast<const sockaddr_in*>(a);
    const auto* y = reinterpret_cast<const sockaddr_in*>(&b);
    return x->sin_port == y->sin_port && x->sin_addr.s_addr == y->sin_addr.s_addr;
  }
  if (a->sa_family == AF_INET6) {
    const auto* x = reinterpret_cast<const sockaddr_in6*>(a);
    const auto* y = reinterpret_cast<const sockaddr_in6*>(&b);
    return x->sin6_port == y->sin6_port &&
           memcmp(&x->sin6_addr, &y->sin6_addr, sizeof x->sin6_addr) == 0;
  }
  return false;
}

// sd_is_socket(fd, AF_UNSPEC, SOCK_STREAM, 1).
bool IsListeningStream(int fd) {
  struct stat st {};
  if (fstat(fd, &st) != 0 || !S_ISSOCK(st.st_mode)) return false;
  int type = 0;
  int listening = 0;
  socklen_t len = sizeof type;
  if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) != 0 || type != SOCK_STREAM) return false;
  len = sizeof listening;
  return getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &len) == 0 && listening != 0;
}

}  // namespace

core::Result<std::vector<ActivatedSocket>> TakeActivatedSockets() {
  using R = core::Result<std::vector<ActivatedSocket>>;
  auto passed = core::ParseListenFds(std::getenv("LISTEN_PID"), std::getenv("LISTEN_FDS"),
                                     std::getenv("LISTEN_FDNAMES"), getpid());
  // As sd_listen_fds(1, ...): gone from the environment whatever they said, so that neither a
  // worker nor a re-exec'd image (the same pid) takes them for its own.
  unsetenv("LISTEN_PID");
  unsetenv("LISTEN_FDS");
  unsetenv("LISTEN_FDNAMES");
  if (!passed.ok()) return R::Error(passed.error());
  std::vector<ActivatedSocket> out;
  for (int i = 0; i < passed.value().count; ++i) {
    ActivatedSocket s;
    s.fd = core::kListenFdsStart + i;
    s.name = passed.value().Name(i);
    const std::string which = "fd " + std::to_string(s.fd) + " (" + s.name + ")";
    // The first bad fd ends it: LISTEN_FDS=2147483644 is not two billion errors.
    if (core::Status st = SetCloexec(s.fd, true); !st.ok()) {
      return R::Error(which + " from the service manager: " + st.message());
    }
    if (!IsListeningStream(s.fd)) {
      return R::Error(which + " from the service manager is not a listening stream socket");
    }
    if (core::Status st = Describe(s.fd, &s); !st.ok()) return R::Error(st.message());
    out.push_back(std::move(s));
  }
  return out;
}

core::Result<ActivatedSocket> DescribeInheritedSocket(int fd) {
  using R = core::Result<ActivatedSocket>;
  int listening = 0;
  socklen_t len = sizeof listening;
  if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &len) != 0) {
    return R::Error(PosixError("fd " + std::to_string(fd), errno));
  }
  if (!listening) return R::Error("fd " + std::to_string(fd) + " is not a listening socket");
  ActivatedSocket a;
  a.fd = fd;
  a.name = "inherited";
  if (core::Status st = Describe(fd, &a); !st.ok()) return R::Error(st.message());
  return a;
}

bool SocketMatches(const ActivatedSocket& socket, const core::BindSpec& spec) {
  if (spec.family != socket.address.family) return false;
  if (spec.family == core::BindSpec::Family::kUnix) return spec.path == socket.address.path;
  if (spec.port != socket.address.port) return false;
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  if (getsockname(socket.fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0) return false;
  addrinfo hints{};
  hints.ai_family = spec.family == core::BindSpec::Family::kInet6 ? AF_INET6 : AF_INET;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  const char* node = (spec.host.empty() || spec.host == "*") ? nullptr : spec.host.c_str();
  addrinfo* found = nullptr;
  if (getaddrinfo(node, std::to_string(spec.port).c_str(), &hints, &found) != 0) return false;
  bool match = false;
  for (const addrinfo* ai = found; ai != nullptr && !match; ai = ai->ai_next) {
    match = SameAddress(ai->ai_addr, ss);
  }
  freeaddrinfo(found);
  return match;
}

core::Result<Listener> AdoptActivated(const ActivatedSocket& socket,
                                      const std::optional<core::BindSpec>& spec) {
  Listener l;
  l.fd = socket.fd;
  l.bound = socket.bound;
  l.owns_path = false;
  if (spec) {
    l.spec = *spec;
    const int flags = fcntl(socket.fd, F_GETFL);
    const int want = spec->nonblock ? (flags | O_NONBLOCK) : (flags & ~O_NONBLOCK);
    if (flags < 0 || fcntl(socket.fd, F_SETFL, want) != 0) {
      return core::Result<Listener>::Error(PosixError("fcntl(F_SETFL) on fd " +
                                                 std::to_string(socket.fd), errno));
    }
  } else {
    l.spec = socket.address;
    // LISTEN_FDNAMES in the workers: the name the service manager gave it.
    l.spec.text = socket.name;
  }
  // The fd stays where systemd put it; CLOEXEC like every master fd (spawn passes it on).
  fcntl(socket.fd, F_SETFD, FD_CLOEXEC);
  return l;
}

}  // namespace einhorn::sys
