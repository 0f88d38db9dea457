#include "sys/files.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <utility>

#include "sys/holders.h"
#include "sys/posix.h"
#include "sys/safe_path.h"

namespace einhorn::sys {

core::Result<LockFile> LockFile::Acquire(const std::string& path) {
  using R = core::Result<LockFile>;
  auto dir = OpenParent(path);
  if (!dir.ok()) return R::Error("cannot open lockfile " + path + ": " + dir.error());
  auto opened = OpenEntry(dir.value(), O_RDWR | O_CREAT, 0600, "lockfile " + path);
  if (!opened.ok()) return R(opened.status());
  const int fd = opened.value().release();
  int rc;
  do {
    rc = flock(fd, LOCK_EX | LOCK_NB);
  } while (rc != 0 && errno == EINTR);
  if (rc != 0) {
    const int err = errno;
    if (err == EWOULDBLOCK) {
      // Held only while a master checks and creates its command socket: one starting now.
      const std::string held = core::HeldBy(LockHolders(fd));
      close(fd);
      return R::Error("lockfile " + path + " is " + held +
                      ", a master starting at this moment; try again, or give this master a "
                      "lockfile of its own (-f PATH, or -c NAME)");
    }
    close(fd);
    return R::Error(PosixError("cannot lock lockfile " + path, err));
  }
  return LockFile(fd);
}

LockFile::LockFile(LockFile&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}

LockFile& LockFile::operator=(LockFile&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0) close(fd_);
    fd_ = std::exchange(other.fd_, -1);
  }
  return *this;
}

// Closing the last fd of the open file description releases the flock. The file stays: removing
// it would let a second master lock a fresh inode while a third still waits on the old one.
LockFile::~LockFile() {
  if (fd_ >= 0) close(fd_);
}

core::Status WritePidfile(const std::string& path, pid_t pid) {
  const std::string what = "pidfile " + path;
  auto fail = [&](const std::string& why) {
    return core::Status::Error("cannot write " + what + ": " + why);
  };
  auto dir = OpenParent(path);
  if (!dir.ok()) return fail(dir.error());
  auto existing = StatEntry(dir.value());
  if (!existing.ok()) return fail(existing.error());
  if (existing.value()) {
    if (core::Status st = CheckEntry(dir.value(), *existing.value(), what); !st.ok()) return st;
    // Something that is not a regular file (-e /dev/null to keep no pidfile, a FIFO) is
    // written through, as Einhorn does: the rename below would replace the device node itself.
    if (!S_ISREG(existing.value()->st_mode)) {
      struct stat st {};
      auto fd = OpenEntry(dir.value(), O_WRONLY, 0, what, &st, "write");
      if (!fd.ok()) return fd.status();
      if (S_ISREG(st.st_mode)) return fail("it changed while being written");
      if (!WriteAll(fd.value().get(), std::to_string(pid))) return fail(ErrnoText(errno));
      return core::Status::Ok();
    }
  }
  // A pidfile is meant to be read by anyone (monitoring, init scripts): 0644.
  if (core::Status st = ReplaceEntry(dir.value(), std::to_string(pid), 0644); !st.ok()) {
    return fail(st.message());
  }
  return core::Status::Ok();
}

core::Status CheckPidfile(const std::string& path) {
  const std::string what = "pidfile " + path;
  auto dir = OpenParent(path);
  if (!dir.ok()) return core::Status::Error("cannot write " + what + ": " + dir.error());
  auto existing = StatEntry(dir.value());
  if (!existing.ok()) return core::Status::Error("cannot write " + what + ": " + existing.error());
  if (!existing.value()) return core::Status::Ok();
  return CheckEntry(dir.value(), *existing.value(), what);
}

void RemovePidfile(const std::string& path, pid_t pid) {
  auto dir = OpenParent(path);
  if (!dir.ok()) return;
  // Only a regular file of ours is ours to remove (reading a FIFO could block, /dev/full reads
  // zeros, a link points at someone else's file).
  struct stat st {};
  auto fd = OpenEntry(dir.value(), O_RDONLY, 0, "pidfile " + path, &st);
  if (!fd.ok() || !S_ISREG(st.st_mode)) return;
  char buf[64];
  ssize_t n;
  do {
    n = read(fd.value().get(), buf, sizeof(buf) - 1);
  } while (n < 0 && errno == EINTR);
  if (n <= 0) return;
  std::string contents(buf, static_cast<size_t>(n));
  // Tolerate a trailing newline written by something else that follows our convention.
  while (!contents.empty() && (contents.back() == '\n' || contents.back() == ' ')) {
    contents.pop_back();
  }
  if (contents == std::to_string(pid)) RemoveIfSame(path, st.st_dev, st.st_ino);
}

}  // namespace einhorn::sys
