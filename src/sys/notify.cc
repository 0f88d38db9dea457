#include "sys/notify.h"

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>

#include "core/systemd_env.h"
#include "sys/posix.h"
#include "sys/zygote_io.h"

namespace einhorn::sys {

bool ServiceManagerListens() {
  const char* s = std::getenv("NOTIFY_SOCKET");
  return s != nullptr && *s != '\0';
}

bool NotifyServiceManager(const std::string& message) {
  // As sd_notify(0, ...): NOTIFY_SOCKET stays set, for a re-exec'd image; a new socket for
  // each message, a blocking send.
  sockaddr_un a{};
  const std::optional<std::string> path =
      core::NotifySocketPath(std::getenv("NOTIFY_SOCKET"), sizeof a.sun_path);
  if (!path) return false;
  a.sun_family = AF_UNIX;
  memcpy(a.sun_path, path->data(), path->size());
  const int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  const auto len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + path->size());
  ssize_t sent;
  do {
    sent = sendto(fd, message.data(), message.size(), MSG_NOSIGNAL,
                  reinterpret_cast<const sockaddr*>(&a), len);
  } while (sent < 0 && errno == EINTR);
  close(fd);
  return sent >= 0;
}

std::optional<std::uint64_t> WatchdogMicroseconds() {
  return core::ParseWatchdog(std::getenv("WATCHDOG_USEC"), std::getenv("WATCHDOG_PID"), getpid());
}

core::Result<WorkerNotifySocket> OpenWorkerNotifySocket() {
  using R = core::Result<WorkerNotifySocket>;
  static std::mt19937_64 rng{std::random_device{}()};
  const int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) return R::Error(PosixError("socket(AF_UNIX, SOCK_DGRAM)", errno));
  const int one = 1;
  if (setsockopt(fd, SOL_SOCKET, SO_PASSCRED, &one, sizeof one) != 0) {
    const int err = errno;
    close(fd);
    return R::Error(PosixError("setsockopt(SO_PASSCRED)", err));
  }
  char name[80];
  std::snprintf(name, sizeof name, "einhorn-cpp/%d/%016llx", static_cast<int>(getpid()),
                static_cast<unsigned long long>(rng()));
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  const size_t len = strlen(name);
  memcpy(a.sun_path + 1, name, len);  // sun_path[0] = '\0': the abstract namespace
  const auto addrlen = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + 1 + len);
  if (bind(fd, reinterpret_cast<sockaddr*>(&a), addrlen) != 0) {
    const int err = errno;
    close(fd);
    return R::Error(PosixError(std::string("bind @") + name, err));
  }
  return WorkerNotifySocket{fd, std::string("@") + name};
}

std::optional<NotifyDatagram> ReadNotifyDatagram(int fd) {
  // systemd caps its own datagrams far below this; a longer one is cut, never a problem.
  char buf[4096];
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(ucred)) + CMSG_SPACE(sizeof(int) * 16)];
  for (;;) {
    iovec iov{buf, sizeof buf};
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control;
    msg.msg_controllen = sizeof control;
    const ssize_t n = recvmsg(fd, &msg, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
    if (n < 0) {
      if (errno == EINTR) continue;
      return std::nullopt;
    }
    NotifyDatagram d;
    d.bytes.assign(buf, static_cast<size_t>(n));
    for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
      if (c->cmsg_level != SOL_SOCKET) continue;
      if (c->cmsg_type == SCM_CREDENTIALS) {
        ucred cred;
        memcpy(&cred, CMSG_DATA(c), sizeof cred);
        d.sender = cred.pid;
        d.uid = cred.uid;
      }
    }
    // A worker may send fds (FDSTORE=1); we keep none of them.
    for (const int passed : PassedFds(msg)) close(passed);
    return d;
  }
}

}  // namespace einhorn::sys
