#include "sys/safe_path.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/random.h>
#include <unistd.h>

#include <cstring>
#include <utility>

#include "sys/posix.h"

namespace einhorn::sys {
namespace {

int RetryOpenAt(int dirfd, const char* name, int flags, mode_t mode) {
  int fd;
  do {
    fd = openat(dirfd, name, flags, mode);
  } while (fd < 0 && errno == EINTR);
  return fd;
}

// Six random characters for a temp name: a name someone else guessed and put there first is
// skipped (O_EXCL), so they only need to be hard to guess, not secret.
std::string RandomSuffix() {
  static const char kAlphabet[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
  unsigned char bytes[6] = {};
  if (getrandom(bytes, sizeof bytes, GRND_NONBLOCK) != static_cast<ssize_t>(sizeof bytes)) {
    // No entropy yet (early boot): the pid and a counter are still unique, if guessable.
    static unsigned counter = 0;
    const unsigned long v = static_cast<unsigned long>(getpid()) * 7919u + ++counter;
    for (size_t i = 0; i < sizeof bytes; ++i) bytes[i] = static_cast<unsigned char>(v >> (i * 5));
  }
  std::string out;
  for (unsigned char b : bytes) out += kAlphabet[b % (sizeof kAlphabet - 1)];
  return out;
}

}  // namespace

core::Result<ParentDir> OpenParent(const std::string& path) {
  using R = core::Result<ParentDir>;
  ParentDir dir;
  const size_t slash = path.rfind('/');
  if (slash == std::string::npos) {
    dir.path = ".";
    dir.name = path;
  } else {
    dir.path = slash == 0 ? "/" : path.substr(0, slash);
    dir.name = path.substr(slash + 1);
  }
  if (dir.name.empty() || dir.name == "." || dir.name == "..") return R::Error(ErrnoText(EISDIR));
  int fd;
  do {
    fd = open(dir.path.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
  } while (fd < 0 && errno == EINTR);
  if (fd < 0) return R::Error(ErrnoText(errno));
  dir.fd = UniqueFd(fd);
  struct stat st {};
  if (fstat(fd, &st) != 0) return R::Error(ErrnoText(errno));
  // Others can create, rename and (without the sticky bit) remove entries here: every user
  // (like /tmp), or the user who owns it when that is neither root nor us.
  const uid_t self = geteuid();
  dir.shared = (st.st_mode & S_IWOTH) != 0 ||
               (st.st_uid != 0 && st.st_uid != self && (st.st_mode & S_IWUSR) != 0);
  return dir;
}

core::Result<std::optional<struct stat>> StatEntry(const ParentDir& dir) {
  using R = core::Result<std::optional<struct stat>>;
  struct stat st {};
  if (fstatat(dir.fd.get(), dir.name.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0) {
    return std::optional<struct stat>(st);
  }
  if (errno == ENOENT) return std::optional<struct stat>();
  return R::Error(ErrnoText(errno));
}

core::Status CheckEntry(const ParentDir& dir, const struct stat& st, const std::string& what) {
  if (S_ISLNK(st.st_mode)) {
    return core::Status::Error(what + " is a symbolic link; refusing to follow it");
  }
  if (!dir.shared) return core::Status::Ok();
  const uid_t self = geteuid();
  const std::string where = ", in " + dir.path + ", which other users can write";
  if (st.st_uid != 0 && st.st_uid != self) {
    const std::string owners = self == 0 ? "root" : "root or uid " + std::to_string(self);
    return core::Status::Error(what + " is owned by uid " + std::to_string(st.st_uid) +
                               ", not by " + owners + where +
                               "; refusing it (remove it, or use a directory only you can write)");
  }
  if (S_ISREG(st.st_mode) && st.st_nlink > 1) {
    return core::Status::Error(what + " has " + std::to_string(st.st_nlink) + " hard links" +
                               where + "; refusing it (remove it)");
  }
  return core::Status::Ok();
}

core::Result<UniqueFd> OpenEntry(const ParentDir& dir, int flags, mode_t mode,
                               const std::string& what, struct stat* opened,
                               const std::string& verb) {
  using R = core::Result<UniqueFd>;
  // First for the message that says why; the check on the opened file below is what counts.
  auto before = StatEntry(dir);
  if (!before.ok()) return R::Error("cannot " + verb + " " + what + ": " + before.error());
  if (before.value()) {
    if (core::Status st = CheckEntry(dir, *before.value(), what); !st.ok()) return R(st);
  }
  const int fd = RetryOpenAt(dir.fd.get(), dir.name.c_str(),
                             flags | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC, mode);
  if (fd < 0) {
    // A link put there since the check above.
    if (errno == ELOOP) return R::Error(what + " is a symbolic link; refusing to follow it");
    return R::Error(PosixError("cannot " + verb + " " + what, errno));
  }
  UniqueFd owned(fd);
  struct stat st {};
  if (fstat(fd, &st) != 0) return R::Error(PosixError("cannot " + verb + " " + what, errno));
  if (core::Status checked = CheckEntry(dir, st, what); !checked.ok()) return R(checked);
  if (opened) *opened = st;
  return owned;
}

core::Status ReplaceEntry(const ParentDir& dir, const std::string& contents, mode_t mode) {
  std::string tmp;
  int fd = -1;
  for (int attempt = 0; attempt < 100 && fd < 0; ++attempt) {
    tmp = dir.name + "." + RandomSuffix();
    fd = RetryOpenAt(dir.fd.get(), tmp.c_str(),
                     O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_NOCTTY | O_CLOEXEC, mode);
    if (fd < 0 && errno != EEXIST) return core::Status::Error(ErrnoText(errno));
  }
  if (fd < 0) return core::Status::Error(ErrnoText(EEXIST));
  // The umask may have narrowed the mode at creation.
  bool ok = fchmod(fd, mode) == 0 && WriteAll(fd, contents);
  int err = errno;
  if (close(fd) != 0 && ok) {
    ok = false;
    err = errno;
  }
  if (ok && renameat(dir.fd.get(), tmp.c_str(), dir.fd.get(), dir.name.c_str()) != 0) {
    ok = false;
    err = errno;
  }
  if (!ok) {
    unlinkat(dir.fd.get(), tmp.c_str(), 0);
    return core::Status::Error(ErrnoText(err));
  }
  return core::Status::Ok();
}

bool StillSameEntry(const std::string& path, dev_t dev, ino_t ino) {
  auto dir = OpenParent(path);
  if (!dir.ok()) return false;
  auto st = StatEntry(dir.value());
  return st.ok() && st.value() && st.value()->st_dev == dev && st.value()->st_ino == ino;
}

void RemoveIfSame(const std::string& path, dev_t dev, ino_t ino) {
  auto dir = OpenParent(path);
  if (!dir.ok()) return;
  auto st = StatEntry(dir.value());
  if (!st.ok() || !st.value() || st.value()->st_dev != dev || st.value()->st_ino != ino) return;
  unlinkat(dir.value().fd.get(), dir.value().name.c_str(), 0);
}

core::Status ChmodIfSame(const std::string& path, dev_t dev, ino_t ino, mode_t mode) {
  auto dir = OpenParent(path);
  if (!dir.ok()) {
    return core::Status::Error("cannot open the directory of " + path + ": " + dir.error());
  }
  // O_PATH|O_NOFOLLOW opens a link itself, never its target; fstat then says what it is.
  UniqueFd fd(RetryOpenAt(dir.value().fd.get(), dir.value().name.c_str(),
                        O_PATH | O_NOFOLLOW | O_CLOEXEC, 0));
  if (fd.get() < 0) return core::Status::Error(PosixError("cannot open " + path, errno));
  struct stat st {};
  if (fstat(fd.get(), &st) != 0) {
    return core::Status::Error(PosixError("cannot stat " + path, errno));
  }
  if (S_ISLNK(st.st_mode) || st.st_dev != dev || st.st_ino != ino) {
    return core::Status::Error(path + " is no longer the file this master created (" +
                               (S_ISLNK(st.st_mode) ? "a symbolic link" : "another file") +
                               " is there now); its mode is left alone");
  }
  // fchmod does not take an O_PATH descriptor; its /proc link reaches the same inode without
  // resolving the path again.
  const std::string proc = "/proc/self/fd/" + std::to_string(fd.get());
  if (chmod(proc.c_str(), mode) != 0) {
    return core::Status::Error(
        PosixError("cannot change the mode of " + path + " through " + proc, errno));
  }
  return core::Status::Ok();
}

}  // namespace einhorn::sys
