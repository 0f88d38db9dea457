#include "sys/sock_stats.h"

#include <dirent.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <linux/sock_diag.h>
#include <linux/unix_diag.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string>

namespace einhorn::sys {
namespace {

constexpr int kTcpListen = 10;  // TCP_LISTEN in the kernel's enum, as tcpi_state reports it

int SocketOption(int fd, int level, int name) {
  int value = 0;
  socklen_t len = sizeof value;
  if (getsockopt(fd, level, name, &value, &len) != 0) return -1;
  return value;
}

std::optional<AcceptQueue> TcpQueue(int fd) {
  tcp_info info{};
  socklen_t len = sizeof info;
  if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &info, &len) != 0) return std::nullopt;
  if (info.tcpi_state != kTcpListen) return std::nullopt;
  return AcceptQueue{static_cast<std::int64_t>(info.tcpi_unacked),
                     static_cast<std::int64_t>(info.tcpi_sacked)};
}

// One request for the socket with this inode; the answer carries its queue in
// UNIX_DIAG_RQLEN (for a listening socket: pending connections and the backlog).
std::optional<AcceptQueue> UnixQueue(int fd) {
  struct stat st {};
  if (fstat(fd, &st) != 0) return std::nullopt;
  const int nl = socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
  if (nl < 0) return std::nullopt;
  struct {
    nlmsghdr header;
    unix_diag_req request;
  } message{};
  message.header.nlmsg_len = sizeof message;
  message.header.nlmsg_type = SOCK_DIAG_BY_FAMILY;
  message.header.nlmsg_flags = NLM_F_REQUEST;
  message.request.sdiag_family = AF_UNIX;
  message.request.udiag_states = 1U << kTcpListen;
  message.request.udiag_ino = static_cast<__u32>(st.st_ino);
  message.request.udiag_show = UDIAG_SHOW_RQLEN;
  message.request.udiag_cookie[0] = ~0U;  // INET_DIAG_NOCOOKIE: any socket with that inode
  message.request.udiag_cookie[1] = ~0U;
  sockaddr_nl kernel{};
  kernel.nl_family = AF_NETLINK;
  std::optional<AcceptQueue> out;
  // A short timeout: the master's loop waits for this answer.
  timeval timeout{0, 100'000};
  setsockopt(nl, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
  if (sendto(nl, &message, sizeof message, 0, reinterpret_cast<sockaddr*>(&kernel),
             sizeof kernel) == static_cast<ssize_t>(sizeof message)) {
    alignas(nlmsghdr) char buf[8192];
    const ssize_t n = recv(nl, buf, sizeof buf, 0);
    if (n > 0) {
      auto* h = reinterpret_cast<nlmsghdr*>(buf);
      int left = static_cast<int>(n);
      for (; NLMSG_OK(h, left); h = NLMSG_NEXT(h, left)) {
        if (h->nlmsg_type != SOCK_DIAG_BY_FAMILY) break;  // NLMSG_ERROR: no such socket
        auto* reply = static_cast<unix_diag_msg*>(NLMSG_DATA(h));
        if (reply->udiag_ino != st.st_ino) continue;
        int attr_len = static_cast<int>(h->nlmsg_len - NLMSG_LENGTH(sizeof *reply));
        for (auto* a = reinterpret_cast<rtattr*>(reply + 1); RTA_OK(a, attr_len);
             a = RTA_NEXT(a, attr_len)) {
          if (a->rta_type != UNIX_DIAG_RQLEN ||
              RTA_PAYLOAD(a) < sizeof(unix_diag_rqlen)) {
            continue;
          }
          unix_diag_rqlen rq{};
          std::memcpy(&rq, RTA_DATA(a), sizeof rq);
          out = AcceptQueue{rq.udiag_rqueue, rq.udiag_wqueue};
        }
      }
    }
  }
  close(nl);
  return out;
}

std::optional<std::string> ReadSmallFile(const char* path, size_t limit) {
  FILE* f = std::fopen(path, "re");
  if (f == nullptr) return std::nullopt;
  std::string text;
  char buf[4096];
  size_t n = 0;
  while ((n = std::fread(buf, 1, sizeof buf, f)) > 0 && text.size() < limit) text.append(buf, n);
  std::fclose(f);
  return text;
}

}  // namespace

std::optional<AcceptQueue> ReadAcceptQueue(int fd) {
  if (SocketOption(fd, SOL_SOCKET, SO_ACCEPTCONN) != 1) return std::nullopt;
  const int domain = SocketOption(fd, SOL_SOCKET, SO_DOMAIN);
  if (SocketOption(fd, SOL_SOCKET, SO_TYPE) != SOCK_STREAM) return std::nullopt;
  if (domain == AF_INET || domain == AF_INET6) return TcpQueue(fd);
  if (domain == AF_UNIX) return UnixQueue(fd);
  return std::nullopt;
}

std::optional<std::uint64_t> ResidentMemoryBytes() {
  const auto statm = ReadSmallFile("/proc/self/statm", 4096);
  if (!statm) return std::nullopt;
  unsigned long long size = 0, resident = 0;
  if (std::sscanf(statm->c_str(), "%llu %llu", &size, &resident) != 2) return std::nullopt;
  const long page = sysconf(_SC_PAGESIZE);
  if (page <= 0) return std::nullopt;
  return static_cast<std::uint64_t>(resident) * static_cast<std::uint64_t>(page);
}

std::optional<std::int64_t> OpenFds() {
  DIR* dir = opendir("/proc/self/fd");
  if (dir == nullptr) return std::nullopt;
  std::int64_t n = 0;
  while (const dirent* e = readdir(dir)) {
    if (e->d_name[0] != '.') ++n;
  }
  closedir(dir);
  return n - 1;  // the directory's own fd
}

std::optional<core::HostListenStats> ReadHostListenStats() {
  const auto text = ReadSmallFile("/proc/net/netstat", 1 << 20);
  if (!text) return std::nullopt;
  return core::ParseProcNetstat(*text);
}

}  // namespace einhorn::sys
