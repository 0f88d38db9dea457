#include "sys/stand_in.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <span>
#include <vector>

#include "sys/zygote_io.h"

namespace einhorn::sys {
namespace {

using Clock = std::chrono::steady_clock;

// Every message starts with this byte: a SEQPACKET message of length 0 would read as EOF.
constexpr char kConnectionTag = 'C';
constexpr size_t kMaxMessage = 1 + 64 * 1024;

int MsUntil(Clock::time_point deadline) {
  const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
  return left.count() <= 0 ? 0 : static_cast<int>(std::min<long long>(left.count(), 1 << 30));
}

bool WaitFor(int fd, short events, Clock::time_point deadline) {
  for (;;) {
    pollfd p{fd, events, 0};
    const int r = poll(&p, 1, MsUntil(deadline));
    if (r > 0) return true;
    if (r == 0 || errno != EINTR) return false;
  }
}

// What the client has sent within read_wait: up to its first line, or max_read bytes.
std::string ReadRequest(int fd, const StandInLimits& limits) {
  std::string bytes;
  const Clock::time_point deadline = Clock::now() + limits.read_wait;
  char buf[4096];
  while (bytes.size() < limits.max_read && bytes.find('\n') == std::string::npos) {
    const size_t want = std::min(sizeof buf, limits.max_read - bytes.size());
    const ssize_t n = recv(fd, buf, want, MSG_DONTWAIT);
    if (n > 0) {
      bytes.append(buf, static_cast<size_t>(n));
      continue;
    }
    if (n == 0) break;  // EOF: the new image sees it too
    if (errno == EINTR) continue;
    if (errno != EAGAIN && errno != EWOULDBLOCK) break;
    if (!WaitFor(fd, POLLIN, deadline)) break;
  }
  return bytes;
}

bool WriteWithin(int fd, std::string_view data, Clock::time_point deadline) {
  while (!data.empty()) {
    const ssize_t n = send(fd, data.data(), data.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
    if (n > 0) {
      data.remove_prefix(static_cast<size_t>(n));
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) return false;
    if (!WaitFor(fd, POLLOUT, deadline)) return false;
  }
  return true;
}

// One connection: answered, then handed over (the client may send more on it); or handed
// over as it is. Closed here either way: the new image holds its own copy.
void Serve(int fd, int channel, const StandInAnswer& answer, const StandInLimits& limits) {
  const std::string bytes = ReadRequest(fd, limits);
  const size_t line_end = bytes.find('\n');
  if (line_end != std::string::npos && line_end + 1 == bytes.size()) {
    if (const std::optional<std::string> reply = answer(fd, bytes)) {
      if (WriteWithin(fd, *reply, Clock::now() + limits.write_wait)) SendHanded(channel, fd, {});
      close(fd);
      return;
    }
  }
  SendHanded(channel, fd, bytes);
  close(fd);
}

[[noreturn]] void Run(int listen_fd, int channel, const StandInAnswer& answer,
                      const StandInLimits& limits) {
  const Clock::time_point give_up = Clock::now() + limits.give_up;
  // A new image that never reads its channel must not hold the stand-in forever.
  const timeval send_limit{1, 0};
  setsockopt(channel, SOL_SOCKET, SO_SNDTIMEO, &send_limit, sizeof send_limit);
  for (;;) {
    pollfd p[2] = {{channel, POLLIN, 0}, {listen_fd, POLLIN, 0}};
    const int r = poll(p, 2, MsUntil(give_up));
    if (r == 0) break;
    if (r < 0) {
      if (errno == EINTR) continue;
      break;
    }
    if (p[0].revents != 0) break;  // the master's word, or its end is gone
    if ((p[1].revents & (POLLERR | POLLHUP | POLLNVAL)) != 0) break;
    if ((p[1].revents & POLLIN) == 0) continue;
    const int fd = accept4(listen_fd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd >= 0) {
      Serve(fd, channel, answer, limits);
    } else if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR &&
               errno != ECONNABORTED) {
      break;  // out of fds, or worse: the new image serves the queue once it is up
    }
  }
  close(channel);  // after every connection handed over: the new image reads them, then EOF
  _exit(0);
}

}  // namespace

core::Result<StandIn> StartStandIn(int listen_fd, const StandInAnswer& answer,
                                   const StandInLimits& limits) {
  auto pair = SeqpacketPair();
  if (!pair.ok()) return core::Result<StandIn>::Error("stand-in: " + pair.error());
  const int sv[2] = {pair.value().first, pair.value().second};
  const pid_t master = getpid();
  const pid_t pid = fork();
  if (pid < 0) {
    const int err = errno;
    close(sv[0]);
    close(sv[1]);
    return core::Result<StandIn>::Error(PosixError("stand-in fork", err));
  }
  if (pid == 0) {
    close(sv[0]);
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != master) _exit(0);  // the master died before the line above
    Run(listen_fd, sv[1], answer, limits);
  }
  close(sv[1]);
  StandIn s;
  s.pid = pid;
  s.channel.reset(sv[0]);
  return s;
}

void StopStandIn(int channel) { shutdown(channel, SHUT_WR); }

void WaitForHanded(int channel, std::chrono::nanoseconds limit) {
  WaitFor(channel, POLLIN,
          Clock::now() + std::chrono::duration_cast<Clock::duration>(limit));
}

bool IsHandOverChannel(int fd) {
  int type = 0;
  int domain = 0;
  socklen_t len = sizeof type;
  if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) != 0) return false;
  len = sizeof domain;
  if (getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &len) != 0) return false;
  return type == SOCK_SEQPACKET && domain == AF_UNIX;
}

bool SendHanded(int channel, int fd, std::string_view bytes) {
  std::string message(1, kConnectionTag);
  message.append(bytes.substr(0, kMaxMessage - 1));
  return SendPacket(channel, message, std::span<const int>(&fd, 1)).ok();
}

HandOverRead ReceiveHanded(int channel, HandedConnection* out) {
  for (;;) {
    std::string buf(kMaxMessage, '\0');
    iovec iov{buf.data(), buf.size()};
    // Room for more fds than a well-formed message carries, so that extras are seen (and
    // closed) rather than silently truncated.
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * 8)] = {};
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control;
    msg.msg_controllen = sizeof control;
    const ssize_t n = recvmsg(channel, &msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return HandOverRead::kNone;
    if (n <= 0) return HandOverRead::kEnd;
    const std::vector<int> fds = PassedFds(msg);
    const bool well_formed = fds.size() == 1 && buf[0] == kConnectionTag &&
                             (msg.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) == 0;
    if (!well_formed) {
      for (int fd : fds) close(fd);
      continue;
    }
    out->fd.reset(fds.front());
    out->bytes.assign(buf.data() + 1, static_cast<size_t>(n) - 1);
    return HandOverRead::kConnection;
  }
}

}  // namespace einhorn::sys
