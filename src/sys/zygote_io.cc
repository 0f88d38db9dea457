#include "sys/zygote_io.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>
#include <vector>

#include "sys/posix.h"

namespace einhorn::sys {

core::Result<std::pair<int, int>> SeqpacketPair() {
  int fds[2];
  if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, fds) != 0) {
    return core::Result<std::pair<int, int>>::Error(PosixError("socketpair", errno));
  }
  return std::make_pair(fds[0], fds[1]);
}

core::Status SendPacket(int fd, std::string_view bytes, std::span<const int> fds) {
  if (fds.empty() || fds.size() > kMaxPacketFds) {
    return core::Status::Error("sendmsg to the zygote: " + std::to_string(fds.size()) +
                               " fds (1 to " + std::to_string(kMaxPacketFds) + ")");
  }
  msghdr msg{};
  iovec iov{const_cast<char*>(bytes.data()), bytes.size()};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * kMaxPacketFds)] = {};
  msg.msg_control = control;
  msg.msg_controllen = CMSG_SPACE(sizeof(int) * fds.size());
  cmsghdr* c = CMSG_FIRSTHDR(&msg);
  c->cmsg_level = SOL_SOCKET;
  c->cmsg_type = SCM_RIGHTS;
  c->cmsg_len = CMSG_LEN(sizeof(int) * fds.size());
  std::memcpy(CMSG_DATA(c), fds.data(), sizeof(int) * fds.size());
  for (;;) {
    const ssize_t n = sendmsg(fd, &msg, MSG_NOSIGNAL);
    if (n >= 0) return core::Status::Ok();
    if (errno == EINTR) continue;
    return core::Status::Error(PosixError("sendmsg to the zygote", errno));
  }
}

std::vector<int> PassedFds(const msghdr& msg) {
  std::vector<int> fds;
  for (const cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr;
       c = CMSG_NXTHDR(const_cast<msghdr*>(&msg), const_cast<cmsghdr*>(c))) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
    const size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    for (size_t i = 0; i < count; ++i) {
      int fd;
      std::memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof fd);
      fds.push_back(fd);
    }
  }
  return fds;
}

Received ReceivePacket(int fd, size_t max_bytes, int timeout_ms) {
  Received r;
  pollfd p{fd, POLLIN, 0};
  int ready;
  do {
    ready = poll(&p, 1, timeout_ms);
  } while (ready < 0 && errno == EINTR);
  if (ready < 0) {
    r.kind = Received::Kind::kError;
    r.error = ErrnoText(errno);
    return r;
  }
  if (ready == 0) return r;  // kNothing
  std::vector<char> buf(max_bytes + 1);
  msghdr msg{};
  iovec iov{buf.data(), buf.size()};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * 16)] = {};
  msg.msg_control = control;
  msg.msg_controllen = sizeof control;
  ssize_t n;
  do {
    n = recvmsg(fd, &msg, MSG_DONTWAIT | MSG_TRUNC | MSG_CMSG_CLOEXEC);
  } while (n < 0 && errno == EINTR);
  // A zygote has no business sending fds: close whatever came.
  for (const int got : PassedFds(msg)) close(got);
  if (n < 0) {
    if (errno == EAGAIN || errno == EWOULDBLOCK) return r;
    r.kind = Received::Kind::kError;
    r.error = ErrnoText(errno);
    return r;
  }
  if (n == 0) {
    // A zero-length packet and EOF read the same; a peer that hung up also has POLLHUP.
    r.kind = (p.revents & POLLHUP) != 0 ? Received::Kind::kEof : Received::Kind::kPacket;
    return r;
  }
  if (static_cast<size_t>(n) > max_bytes) {
    r.kind = Received::Kind::kTooBig;
    r.error = std::to_string(n) + " bytes";
    return r;
  }
  r.kind = Received::Kind::kPacket;
  r.bytes.assign(buf.data(), static_cast<size_t>(n));
  return r;
}

std::optional<pid_t> ParentOf(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  if (!in || !std::getline(in, line)) return std::nullopt;
  // "pid (comm) state ppid ...": comm may hold spaces and parentheses; the last ')' ends it.
  const size_t close_paren = line.rfind(')');
  if (close_paren == std::string::npos) return std::nullopt;
  std::istringstream rest(line.substr(close_paren + 1));
  std::string state;
  long ppid = 0;
  if (!(rest >> state >> ppid)) return std::nullopt;
  return static_cast<pid_t>(ppid);
}

}  // namespace einhorn::sys
