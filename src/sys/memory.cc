#include "sys/memory.h"

#include <dirent.h>
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <string>
#include <unordered_set>

namespace einhorn::sys {
namespace {

// Reads a /proc file into `buf` with one open and (usually) one read: these files are generated
// at read time, so a short read is the end. Returns the length, or -1 (the process is gone,
// ENOENT at open; or ESRCH at read for a zombie's smaps_rollup; errno says which).
ssize_t ReadProc(const char* path, char* buf, size_t size) {
  const int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  size_t len = 0;
  int error = 0;
  while (len + 1 < size) {
    const ssize_t n = read(fd, buf + len, size - 1 - len);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) error = errno;
    if (n <= 0) break;
    len += static_cast<size_t>(n);
  }
  close(fd);
  if (error != 0) {
    errno = error;
    return -1;
  }
  buf[len] = '\0';
  return static_cast<ssize_t>(len);
}

long PageSize() {
  static const long page = sysconf(_SC_PAGESIZE);
  return page > 0 ? page : 4096;
}

// The digits at `p` (spaces first skipped); false when there are none.
bool ParseU64(const char*& p, std::uint64_t* out) {
  while (*p == ' ') ++p;
  if (*p < '0' || *p > '9') return false;
  std::uint64_t v = 0;
  while (*p >= '0' && *p <= '9') v = v * 10 + static_cast<std::uint64_t>(*p++ - '0');
  *out = v;
  return true;
}

bool IsPid(const char* name) {
  if (*name == '\0') return false;
  for (const char* p = name; *p; ++p) {
    if (*p < '0' || *p > '9') return false;
  }
  return true;
}

}  // namespace

std::optional<std::uint64_t> ProcessMemory(pid_t pid, core::MemoryMeasure measure) {
  char path[64];
  if (measure == core::MemoryMeasure::kRss) {
    // "size resident shared text lib data dt", in pages.
    std::snprintf(path, sizeof path, "/proc/%d/statm", static_cast<int>(pid));
    char buf[256];
    if (ReadProc(path, buf, sizeof buf) <= 0) return std::nullopt;
    const char* p = buf;
    std::uint64_t size = 0, resident = 0;
    if (!ParseU64(p, &size) || !ParseU64(p, &resident)) return std::nullopt;
    return resident * static_cast<std::uint64_t>(PageSize());
  }
  // smaps_rollup: a header line, then "Rss:", "Pss:", ... in kB. A zombie's is empty.
  std::snprintf(path, sizeof path, "/proc/%d/smaps_rollup", static_cast<int>(pid));
  char buf[4096];
  const ssize_t n = ReadProc(path, buf, sizeof buf);
  if (n < 0) {
    // A zombie's smaps_rollup opens but its read fails with ESRCH: it holds no memory.
    if (errno == ESRCH) return 0;
    return std::nullopt;
  }
  const char* at = std::strstr(buf, "\nPss:");
  if (at == nullptr) return 0;
  const char* p = at + 5;
  std::uint64_t kb = 0;
  if (!ParseU64(p, &kb)) return 0;
  return kb * 1024;
}

std::optional<std::vector<pid_t>> ProcessChildren(pid_t pid) {
  char path[64];
  std::snprintf(path, sizeof path, "/proc/%d/task", static_cast<int>(pid));
  DIR* dir = opendir(path);
  if (dir == nullptr) return std::nullopt;
  std::vector<pid_t> children;
  bool any_file = false;
  while (const dirent* e = readdir(dir)) {
    if (!IsPid(e->d_name)) continue;
    char file[320];
    std::snprintf(file, sizeof file, "/proc/%d/task/%s/children", static_cast<int>(pid), e->d_name);
    char buf[4096];
    const int fd = open(file, O_RDONLY | O_CLOEXEC);
    if (fd < 0) continue;  // the thread ended since the listing (or no CONFIG_PROC_CHILDREN)
    any_file = true;
    // "pid pid pid " with no newline; a long list takes several reads.
    std::string carry;
    while (true) {
      const ssize_t n = read(fd, buf, sizeof buf);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) break;
      carry.append(buf, static_cast<size_t>(n));
    }
    close(fd);
    const char* p = carry.c_str();
    std::uint64_t child = 0;
    while (ParseU64(p, &child)) children.push_back(static_cast<pid_t>(child));
  }
  closedir(dir);
  // Not one thread's file opened: no CONFIG_PROC_CHILDREN, or the process is gone (the caller
  // tells them apart).
  if (!any_file) return std::nullopt;
  return children;
}

void MemorySampler::ScanProc() {
  by_parent_.clear();
  scanned_ = true;
  used_scan_ = true;
  DIR* dir = opendir("/proc");
  if (dir == nullptr) return;
  while (const dirent* e = readdir(dir)) {
    if (!IsPid(e->d_name)) continue;
    char path[300];
    std::snprintf(path, sizeof path, "/proc/%s/stat", e->d_name);
    char buf[1024];
    if (ReadProc(path, buf, sizeof buf) <= 0) continue;  // gone since the listing
    // "pid (comm) state ppid ...": comm may hold spaces and ')' (a worker may call itself
    // anything), so the fields start after the last ')'.
    const char* close_paren = std::strrchr(buf, ')');
    if (close_paren == nullptr || close_paren[1] != ' ' || close_paren[2] == '\0') continue;
    const char* p = close_paren + 3;  // the state letter
    ++p;
    std::uint64_t ppid = 0;
    if (!ParseU64(p, &ppid)) continue;
    by_parent_[static_cast<pid_t>(ppid)].push_back(static_cast<pid_t>(std::atoi(e->d_name)));
  }
  closedir(dir);
}

std::vector<pid_t> MemorySampler::ChildrenOf(pid_t pid) {
  if (!force_scan_ && !no_children_file_) {
    if (auto children = ProcessChildren(pid)) return *std::move(children);
    // Gone, or no CONFIG_PROC_CHILDREN: the latter is a property of the kernel, learnt once.
    char path[64];
    std::snprintf(path, sizeof path, "/proc/%d/task/%d", static_cast<int>(pid),
                  static_cast<int>(pid));
    if (access(path, F_OK) != 0) return {};
    no_children_file_ = true;
  }
  if (!scanned_) ScanProc();
  auto it = by_parent_.find(pid);
  return it == by_parent_.end() ? std::vector<pid_t>{} : it->second;
}

std::optional<TreeMemory> MemorySampler::Sample(pid_t root) {
  const auto own = ProcessMemory(root, measure_);
  if (!own) return std::nullopt;
  TreeMemory tree;
  tree.bytes = *own;
  tree.processes = 1;
  std::deque<pid_t> queue = {root};
  std::unordered_set<pid_t> visited = {root};  // a reused pid must not make a cycle
  while (!queue.empty()) {
    const pid_t pid = queue.front();
    queue.pop_front();
    for (pid_t child : ChildrenOf(pid)) {
      if (!visited.insert(child).second) continue;
      if (tree.processes >= kMaxTreeProcesses) {
        tree.partial = true;
        return tree;
      }
      const auto bytes = ProcessMemory(child, measure_);
      if (!bytes) continue;  // exited since it was listed
      tree.bytes += *bytes;
      ++tree.processes;
      queue.push_back(child);
    }
  }
  return tree;
}

}  // namespace einhorn::sys
