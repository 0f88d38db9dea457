// The pidfile (-e) and the lockfile (-f).
#pragma once

#include <sys/types.h>

#include <string>

#include "core/status.h"

namespace einhorn::sys {

// Held for the master's whole life: a second master with the same lockfile is refused.
// (Einhorn holds it only while creating the command socket; holding it longer is what its
// users expect "refuses a second master" to mean.)
class LockFile {
 public:
  // Opens (creating with mode 0600) and takes a non-blocking exclusive flock. The error says
  // that another master holds it, naming the path.
  static core::Result<LockFile> Acquire(const std::string& path);
  LockFile(LockFile&& other) noexcept;
  LockFile& operator=(LockFile&& other) noexcept;
  LockFile(const LockFile&) = delete;
  LockFile& operator=(const LockFile&) = delete;
  ~LockFile();
  int fd() const { return fd_; }
  // The lock a re-exec'd master inherited (the flock belongs to the open file, not the image).
  static LockFile Adopt(int fd) { return LockFile(fd); }

 private:
  explicit LockFile(int fd) : fd_(fd) {}
  int fd_ = -1;
};

// Writes the pid in decimal with no trailing newline, as Einhorn does (write to a temp file in
// the same directory, then rename, so readers never see a partial file). A path that exists and
// is not a regular file (/dev/null, a FIFO) is written through instead, never replaced.
core::Status WritePidfile(const std::string& path, pid_t pid);
// Removes the pidfile only if it is a regular file that still holds `pid` (another master may
// have replaced it).
void RemovePidfile(const std::string& path, pid_t pid);

}  // namespace einhorn::sys
