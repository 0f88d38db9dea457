#include "sys/peer.h"

#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <fstream>
#include <optional>
#include <vector>

#include "sys/posix.h"

namespace einhorn::sys {
namespace {

pid_t ParentOf(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string stat((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  // The command name may contain spaces and parentheses: the fields resume after the last ')'.
  const size_t close = stat.rfind(')');
  if (close == std::string::npos) return 0;
  char state = 0;
  int ppid = 0;
  if (std::sscanf(stat.c_str() + close + 1, " %c %d", &state, &ppid) != 2) return 0;
  return ppid;
}

bool AllDigits(const std::string& s) {
  return !s.empty() && s.size() < 11 &&
         s.find_first_not_of("0123456789") == std::string::npos;
}

}  // namespace

core::Result<PeerCred> GetPeerCred(int fd) {
  ucred cred{};
  socklen_t len = sizeof cred;
  if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) {
    return core::Result<PeerCred>::Error(PosixError("SO_PEERCRED", errno));
  }
  return PeerCred{cred.pid, cred.uid, cred.gid};
}

std::vector<pid_t> Lineage(pid_t pid) {
  std::vector<pid_t> chain;
  for (int depth = 0; depth < 64 && pid > 1; ++depth) {
    chain.push_back(pid);
    pid = ParentOf(pid);
  }
  return chain;
}

core::Result<std::pair<int, int>> StreamSocketPair() {
  int fds[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0) {
    return core::Result<std::pair<int, int>>::Error(PosixError("socketpair", errno));
  }
  return std::make_pair(fds[0], fds[1]);
}

// A numeric id as given; (uid_t)-1 means "no id" to the kernel, and larger numbers would wrap.
std::optional<unsigned long> NumericId(const std::string& text) {
  if (!AllDigits(text)) return std::nullopt;
  const unsigned long v = std::stoul(text);
  if (v >= 0xffffffffUL) return std::nullopt;
  return v;
}

core::Result<uid_t> ResolveUser(const std::string& name_or_id) {
  if (AllDigits(name_or_id)) {
    const auto id = NumericId(name_or_id);
    if (!id) return core::Result<uid_t>::Error("user id out of range: " + name_or_id);
    return static_cast<uid_t>(*id);
  }
  std::vector<char> buf(16384);
  passwd pw{};
  passwd* found = nullptr;
  if (getpwnam_r(name_or_id.c_str(), &pw, buf.data(), buf.size(), &found) != 0 || !found) {
    return core::Result<uid_t>::Error("unknown user '" + name_or_id + "'");
  }
  return found->pw_uid;
}

core::Result<gid_t> ResolveGroup(const std::string& name_or_id) {
  if (AllDigits(name_or_id)) {
    const auto id = NumericId(name_or_id);
    if (!id) return core::Result<gid_t>::Error("group id out of range: " + name_or_id);
    return static_cast<gid_t>(*id);
  }
  std::vector<char> buf(16384);
  group gr{};
  group* found = nullptr;
  if (getgrnam_r(name_or_id.c_str(), &gr, buf.data(), buf.size(), &found) != 0 || !found) {
    return core::Result<gid_t>::Error("unknown group '" + name_or_id + "'");
  }
  return found->gr_gid;
}

}  // namespace einhorn::sys
