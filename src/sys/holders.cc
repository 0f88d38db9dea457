#include "sys/holders.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <algorithm>
#include <set>
#include <string>

#include "sys/posix.h"

namespace einhorn::sys {
namespace {

// Reads at most `max` bytes of a /proc file ("" when it cannot be read).
std::string ReadProc(const std::string& path, size_t max = 4 << 20) {
  const UniqueFd fd(open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
  if (!fd.valid()) return {};
  std::string out;
  char buf[8192];
  while (out.size() < max) {
    const ssize_t n = read(fd.get(), buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  return out;
}

bool IsPid(const char* name) {
  if (*name == '\0') return false;
  for (const char* c = name; *c; ++c) {
    if (*c < '0' || *c > '9') return false;
  }
  return true;
}

long ParentOf(long pid) {
  const std::string stat = ReadProc("/proc/" + std::to_string(pid) + "/stat", 4096);
  const size_t paren = stat.rfind(')');
  if (paren == std::string::npos || paren + 4 > stat.size()) return 0;
  // ") S PPID ..."
  const size_t start = stat.find(' ', paren + 2);
  if (start == std::string::npos) return 0;
  try {
    return std::stol(stat.substr(start + 1));
  } catch (...) {
    return 0;
  }
}

// Topmost first, then by pid; each with its command line.
std::vector<core::Holder> Describe(std::set<long> pids) {
  std::vector<long> roots, rest;
  for (long pid : pids) {
    (pids.count(ParentOf(pid)) ? rest : roots).push_back(pid);
  }
  std::vector<core::Holder> out;
  for (const std::vector<long>* group : {&roots, &rest}) {
    for (long pid : *group) {
      out.push_back({pid, core::CommandLineText(
                              ReadProc("/proc/" + std::to_string(pid) + "/cmdline", 4096))});
    }
  }
  return out;
}

// Every process with one of `inodes` open as a socket (bounded: a host with a million fds
// costs no more than this).
std::set<long> SocketOwners(const std::vector<std::uint64_t>& inodes) {
  std::set<long> pids;
  if (inodes.empty()) return pids;
  std::set<std::string> wanted;
  for (std::uint64_t i : inodes) wanted.insert("socket:[" + std::to_string(i) + "]");
  DIR* proc = opendir("/proc");
  if (proc == nullptr) return pids;
  size_t looked = 0;
  while (const dirent* p = readdir(proc)) {
    if (!IsPid(p->d_name)) continue;
    const std::string fd_dir = std::string("/proc/") + p->d_name + "/fd";
    DIR* fds = opendir(fd_dir.c_str());
    if (fds == nullptr) continue;  // another user's process, or gone
    while (const dirent* f = readdir(fds)) {
      if (++looked > 1000000) break;
      if (!IsPid(f->d_name)) continue;
      char target[64];
      const ssize_t n = readlinkat(dirfd(fds), f->d_name, target, sizeof target - 1);
      if (n <= 0) continue;
      if (wanted.count(std::string(target, static_cast<size_t>(n)))) {
        pids.insert(std::stol(p->d_name));
        break;
      }
    }
    closedir(fds);
    if (looked > 1000000) break;
  }
  closedir(proc);
  return pids;
}

}  // namespace

std::vector<core::Holder> PortHolders(int port) {
  std::vector<std::uint64_t> inodes;
  for (const char* table : {"/proc/net/tcp", "/proc/net/tcp6"}) {
    for (std::uint64_t i : core::SocketInodesOnPort(ReadProc(table), port)) inodes.push_back(i);
  }
  return Describe(SocketOwners(inodes));
}

std::vector<core::Holder> LockHolders(int fd) {
  struct stat st {};
  if (fstat(fd, &st) != 0) return {};
  std::set<long> pids;
  for (long pid : core::LockHolderPids(ReadProc("/proc/locks"), major(st.st_dev), minor(st.st_dev),
                                       st.st_ino)) {
    // The pid that took the lock may have exited, leaving it to a process that inherited the
    // descriptor: only a live one is named.
    if (access(("/proc/" + std::to_string(pid)).c_str(), F_OK) == 0) {
      pids.insert(pid);
    }
  }
  return Describe(pids);
}

std::vector<core::Holder> ProcessHolder(pid_t pid) {
  if (pid <= 0) return {};
  return Describe({static_cast<long>(pid)});
}

}  // namespace einhorn::sys
