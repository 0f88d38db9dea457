#include "sys/files.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <utility>

namespace einhorn::sys {
namespace {

std::string ErrnoText(int err) { return std::strerror(err); }

bool WriteAll(int fd, const std::string& data) {
  size_t done = 0;
  while (done < data.size()) {
    const ssize_t n = write(fd, data.data() + done, data.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    done += static_cast<size_t>(n);
  }
  return true;
}

}  // namespace

core::Result<LockFile> LockFile::Acquire(const std::string& path) {
  using R = core::Result<LockFile>;
  int fd;
  do {
    fd = open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  } while (fd < 0 && errno == EINTR);
  if (fd < 0) return R::Error("cannot open lockfile " + path + ": " + ErrnoText(errno));
  int rc;
  do {
    rc = flock(fd, LOCK_EX | LOCK_NB);
  } while (rc != 0 && errno == EINTR);
  if (rc != 0) {
    const int err = errno;
    close(fd);
    if (err == EWOULDBLOCK) {
      return R::Error("lockfile " + path + " is held by another einhorn-cpp master");
    }
    return R::Error("cannot lock lockfile " + path + ": " + ErrnoText(err));
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
  auto fail = [&](int err) {
    return core::Status::Error("cannot write pidfile " + path + ": " + ErrnoText(err));
  };
  // Something that is not a regular file (-e /dev/null to keep no pidfile, a FIFO) is written
  // through, as Einhorn does: the rename below would replace the device node itself.
  struct stat st {};
  if (stat(path.c_str(), &st) == 0 && !S_ISREG(st.st_mode)) {
    const int fd = open(path.c_str(), O_WRONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (fd < 0) return fail(errno);
    const bool written = WriteAll(fd, std::to_string(pid));
    const int err = errno;
    close(fd);
    return written ? core::Status::Ok() : fail(err);
  }
  // mkstemp in the same directory, so rename(2) is atomic (same filesystem).
  std::string tmp = path + ".XXXXXX";
  const int fd = mkostemp(tmp.data(), O_CLOEXEC);
  if (fd < 0) return fail(errno);
  // mkstemp creates 0600; a pidfile is meant to be read by anyone (monitoring, init scripts).
  const bool written = fchmod(fd, 0644) == 0 && WriteAll(fd, std::to_string(pid));
  int err = errno;
  if (close(fd) != 0 && written) {
    err = errno;
    unlink(tmp.c_str());
    return fail(err);
  }
  if (!written) {
    unlink(tmp.c_str());
    return fail(err);
  }
  if (rename(tmp.c_str(), path.c_str()) != 0) {
    err = errno;
    unlink(tmp.c_str());
    return fail(err);
  }
  return core::Status::Ok();
}

void RemovePidfile(const std::string& path, pid_t pid) {
  // Only a regular file is ours to remove (reading a FIFO could block, /dev/full reads zeros).
  struct stat st {};
  if (stat(path.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) return;
  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return;
  char buf[64];
  ssize_t n;
  do {
    n = read(fd, buf, sizeof(buf) - 1);
  } while (n < 0 && errno == EINTR);
  close(fd);
  if (n <= 0) return;
  std::string contents(buf, static_cast<size_t>(n));
  // Tolerate a trailing newline written by something else that follows our convention.
  while (!contents.empty() && (contents.back() == '\n' || contents.back() == ' ')) {
    contents.pop_back();
  }
  if (contents == std::to_string(pid)) unlink(path.c_str());
}

}  // namespace einhorn::sys
