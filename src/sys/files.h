// The pidfile (-e) and the lockfile (-f). Both are opened through sys/safe_path.h: never
// through a symbolic link, and in a directory other users can write (the default $TMPDIR) only
// when root or the master's own uid owns them.
#pragma once

#include <sys/types.h>

#include <string>

#include "core/status.h"

namespace einhorn::sys {

// As Einhorn: the lock is held only while the command socket is checked and created, then
// released; the file is never deleted. It keeps two masters starting at the same moment from
// both deciding that a socket is stale; "another master already serves this socket" is the
// live-socket check's job (sys::OpenListener), so masters with different -d may share the
// default lockfile.
class LockFile {
 public:
  // Opens (creating with mode 0600; see safe_path.h for what is refused) and takes a
  // non-blocking exclusive flock. The error says that another master holds it, naming the
  // path.
  static core::Result<LockFile> Acquire(const std::string& path);
  LockFile(LockFile&& other) noexcept;
  LockFile& operator=(LockFile&& other) noexcept;
  LockFile(const LockFile&) = delete;
  LockFile& operator=(const LockFile&) = delete;
  ~LockFile();  // releases the lock
  int fd() const { return fd_; }

 private:
  explicit LockFile(int fd) : fd_(fd) {}
  int fd_ = -1;
};

// Writes the pid in decimal with no trailing newline, as Einhorn does (write to a temp file in
// the same directory, then rename, so readers never see a partial file). A path that exists and
// is not a regular file (-e /dev/null, a FIFO with a reader) is written through instead, never
// replaced; a FIFO without a reader is an error, not a hang. A symbolic link, or a file that
// another user owns in a directory other users can write, is refused.
core::Status WritePidfile(const std::string& path, pid_t pid);
// What WritePidfile would refuse about the file there now, so a master can refuse before it
// has created anything (WritePidfile checks again: that check is the one that counts).
core::Status CheckPidfile(const std::string& path);
// Removes the pidfile only if it is a regular file of ours that still holds `pid` (another
// master may have replaced it); never through a link.
void RemovePidfile(const std::string& path, pid_t pid);

}  // namespace einhorn::sys
