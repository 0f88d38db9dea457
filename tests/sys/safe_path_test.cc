// sys/safe_path.h and its users (pidfile, lockfile, UNIX listeners) against what another local
// user can put at a path: symlinks, FIFOs, hard links and files they own, in a directory every
// user can write (1777, like /tmp) and in one only root can. Ownership cases need root (files
// are handed to nobody, 65534, with lchown) and are skipped otherwise.
#include "sys/safe_path.h"

#include <doctest/doctest.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <string>

#include "core/bind_spec.h"
#include "proc.h"
#include "sys/files.h"
#include "sys/listeners.h"

namespace einhorn {
namespace {

using test::TempDir;
constexpr uid_t kNobody = 65534;

struct stat Lstat(const std::string& path) {
  struct stat st {};
  REQUIRE(lstat(path.c_str(), &st) == 0);
  return st;
}

// TempDir/shared (1777) and TempDir/private (0755, root's or ours).
struct Dirs {
  Dirs() {
    REQUIRE(mkdir(shared.c_str(), 0777) == 0);
    REQUIRE(chmod(shared.c_str(), 01777) == 0);
    REQUIRE(mkdir(priv.c_str(), 0755) == 0);
  }
  TempDir base;
  std::string shared = base.File("shared");
  std::string priv = base.File("private");
};

bool Root() {
  if (geteuid() == 0) return true;
  MESSAGE("skipped: needs root to hand files to another user");
  return false;
}

core::BindSpec Unix(const std::string& path) {
  core::BindSpec spec;
  spec.family = core::BindSpec::Family::kUnix;
  spec.path = path;
  spec.text = "unix:" + path;
  return spec;
}

// A socket file nobody listens on any more.
void MakeStaleSocket(const std::string& path) {
  const int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  REQUIRE(fd >= 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, path.c_str(), path.size());
  REQUIRE(bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
  close(fd);
}

TEST_CASE("safe_path: which directories count as writable by other users") {
  Dirs d;
  auto shared = sys::OpenParent(d.shared + "/x");
  REQUIRE(shared.ok());
  CHECK(shared.value().shared);
  CHECK(shared.value().name == "x");
  CHECK(shared.value().path == d.shared);
  auto priv = sys::OpenParent(d.priv + "/x");
  REQUIRE(priv.ok());
  CHECK_FALSE(priv.value().shared);
  CHECK(sys::OpenParent("/x").value().path == "/");
  CHECK(sys::OpenParent("x").value().path == ".");
  CHECK(sys::OpenParent(d.priv + "/").error() == "Is a directory");
  CHECK(sys::OpenParent(d.priv + "/..").error() == "Is a directory");
  CHECK(sys::OpenParent(d.priv + "/no/x").error() == "No such file or directory");
  if (Root()) {
    // A directory another user owns (and so can write) is as good as theirs.
    const std::string theirs = d.base.File("theirs");
    REQUIRE(mkdir(theirs.c_str(), 0755) == 0);
    REQUIRE(chown(theirs.c_str(), kNobody, kNobody) == 0);
    CHECK(sys::OpenParent(theirs + "/x").value().shared);
  }
}

TEST_CASE("safe_path: a symbolic link is refused everywhere, and its target is left alone") {
  Dirs d;
  const std::string target = d.base.File("target");
  test::WriteFile(target, "root's", 0600);
  for (const std::string& dir : {d.shared, d.priv}) {
    INFO(dir);
    const std::string link = dir + "/einhorn.lock";
    REQUIRE(symlink(target.c_str(), link.c_str()) == 0);
    auto lock = sys::LockFile::Acquire(link);
    REQUIRE_FALSE(lock.ok());
    CHECK(lock.error() == "lockfile " + link + " is a symbolic link; refusing to follow it");

    const std::string pid = dir + "/einhorn.pid";
    REQUIRE(symlink(target.c_str(), pid.c_str()) == 0);
    CHECK(sys::CheckPidfile(pid).message() ==
          "pidfile " + pid + " is a symbolic link; refusing to follow it");
    CHECK(sys::WritePidfile(pid, 42).message() ==
          "pidfile " + pid + " is a symbolic link; refusing to follow it");
    // A link to a file that holds our pid is not ours to remove either.
    test::WriteFile(target, "42", 0600);
    sys::RemovePidfile(pid, 42);
    CHECK(S_ISLNK(Lstat(pid).st_mode));
    CHECK(test::ReadFile(target) == "42");
    test::WriteFile(target, "root's", 0600);

    const std::string sock = dir + "/einhorn.sock";
    REQUIRE(symlink(target.c_str(), sock.c_str()) == 0);
    auto listener = sys::OpenListener(Unix(sock), 4);
    REQUIRE_FALSE(listener.ok());
    CHECK(listener.error() == "unix:" + sock + " is a symbolic link; refusing to follow it");
  }
  CHECK(test::ReadFile(target) == "root's");
  CHECK((Lstat(target).st_mode & 07777) == 0600);
}

TEST_CASE("safe_path: another user's file is refused where other users can write, not elsewhere") {
  if (!Root()) return;
  Dirs d;
  const std::string why = ", not by root, in " + d.shared +
                          ", which other users can write; refusing it (remove it, or use a "
                          "directory only you can write)";
  const std::string lock = d.shared + "/einhorn.lock";
  test::WriteFile(lock, "", 0600);
  REQUIRE(lchown(lock.c_str(), kNobody, kNobody) == 0);
  auto refused = sys::LockFile::Acquire(lock);
  REQUIRE_FALSE(refused.ok());
  CHECK(refused.error() == "lockfile " + lock + " is owned by uid 65534" + why);

  const std::string pid = d.shared + "/einhorn.pid";
  test::WriteFile(pid, "1", 0644);
  REQUIRE(lchown(pid.c_str(), kNobody, kNobody) == 0);
  CHECK(sys::WritePidfile(pid, 42).message() == "pidfile " + pid + " is owned by uid 65534" + why);
  CHECK(test::ReadFile(pid) == "1");
  sys::RemovePidfile(pid, 1);  // even holding that pid: theirs
  CHECK(test::FileExists(pid));

  const std::string sock = d.shared + "/einhorn.sock";
  MakeStaleSocket(sock);
  REQUIRE(lchown(sock.c_str(), kNobody, kNobody) == 0);
  auto listener = sys::OpenListener(Unix(sock), 4);
  REQUIRE_FALSE(listener.ok());
  CHECK(listener.error() == "unix:" + sock + " is owned by uid 65534" + why);
  CHECK(S_ISSOCK(Lstat(sock).st_mode));

  // In a directory only root can write, whoever owns the files, the administrator put them
  // there: used as before.
  const std::string plock = d.priv + "/einhorn.lock";
  test::WriteFile(plock, "", 0600);
  REQUIRE(lchown(plock.c_str(), kNobody, kNobody) == 0);
  CHECK(sys::LockFile::Acquire(plock).ok());
  const std::string ppid = d.priv + "/einhorn.pid";
  test::WriteFile(ppid, "1", 0644);
  REQUIRE(lchown(ppid.c_str(), kNobody, kNobody) == 0);
  CHECK(sys::WritePidfile(ppid, 42).ok());
  CHECK(test::ReadFile(ppid) == "42");
}

TEST_CASE("safe_path: a hard link to someone else's file is refused where others can write") {
  Dirs d;
  const std::string target = d.base.File("target");
  test::WriteFile(target, "root's", 0600);
  const std::string pid = d.shared + "/einhorn.pid";
  REQUIRE(link(target.c_str(), pid.c_str()) == 0);
  CHECK(sys::WritePidfile(pid, 42).message() ==
        "pidfile " + pid + " has 2 hard links, in " + d.shared +
            ", which other users can write; refusing it (remove it)");
  const std::string lock = d.shared + "/einhorn.lock";
  REQUIRE(link(target.c_str(), lock.c_str()) == 0);
  CHECK_FALSE(sys::LockFile::Acquire(lock).ok());
  CHECK(test::ReadFile(target) == "root's");
}

TEST_CASE("safe_path: our own files in a shared directory work, with their modes") {
  Dirs d;
  const mode_t old = umask(077);
  const std::string pid = d.shared + "/einhorn.pid";
  CHECK(sys::WritePidfile(pid, 42).ok());
  CHECK(test::ReadFile(pid) == "42");
  CHECK((Lstat(pid).st_mode & 07777) == 0644);  // whatever the umask
  CHECK(sys::WritePidfile(pid, 43).ok());
  CHECK(test::ReadFile(pid) == "43");
  sys::RemovePidfile(pid, 43);
  CHECK_FALSE(test::FileExists(pid));
  {
    auto lock = sys::LockFile::Acquire(d.shared + "/einhorn.lock");
    CHECK(lock.ok());
  }
  // A stale socket of ours is replaced, and the new one gets exactly the mode asked for.
  const std::string sock = d.shared + "/einhorn.sock";
  MakeStaleSocket(sock);
  umask(0);
  auto l = sys::OpenListener(Unix(sock), 4, 0600);
  REQUIRE_MESSAGE(l.ok(), l.error());
  CHECK((Lstat(sock).st_mode & 0777) == 0600);
  sys::CloseListener(l.value());
  umask(077);
  l = sys::OpenListener(Unix(sock), 4, 0666);
  REQUIRE_MESSAGE(l.ok(), l.error());
  CHECK((Lstat(sock).st_mode & 0777) == 0666);
  sys::CloseListener(l.value());
  CHECK_FALSE(test::FileExists(sock));
  umask(old);
}

TEST_CASE("safe_path: a FIFO never hangs an open") {
  Dirs d;
  const std::string fifo = d.priv + "/f";
  REQUIRE(mkfifo(fifo.c_str(), 0600) == 0);
  auto dir = sys::OpenParent(fifo);
  REQUIRE(dir.ok());
  // O_WRONLY without a reader would block forever; O_RDONLY too, without a writer.
  auto w = sys::OpenEntry(dir.value(), O_WRONLY, 0, "fifo " + fifo);
  REQUIRE_FALSE(w.ok());
  CHECK(w.error() == "cannot open fifo " + fifo + ": No such device or address");
  auto r = sys::OpenEntry(dir.value(), O_RDONLY, 0, "fifo " + fifo);
  CHECK(r.ok());
  sys::RemovePidfile(fifo, 42);  // not a regular file: left
  CHECK(test::FileExists(fifo));
}

TEST_CASE("safe_path: chmod and removal go to the recorded inode only") {
  Dirs d;
  const std::string target = d.base.File("target");
  test::WriteFile(target, "root's", 0600);
  const std::string sock = d.shared + "/ctl.sock";
  auto l = sys::OpenListener(Unix(sock), 4, 0600);
  REQUIRE(l.ok());
  sys::Listener listener = l.value();
  CHECK(sys::StillSameEntry(sock, listener.path_dev, listener.path_ino));
  REQUIRE(sys::ChmodIfSame(sock, listener.path_dev, listener.path_ino, 0666).ok());
  CHECK((Lstat(sock).st_mode & 0777) == 0666);

  // Swapped for a link to a root file: neither its mode nor the link changes.
  const std::string moved = d.shared + "/moved.sock";
  REQUIRE(rename(sock.c_str(), moved.c_str()) == 0);
  REQUIRE(symlink(target.c_str(), sock.c_str()) == 0);
  CHECK_FALSE(sys::StillSameEntry(sock, listener.path_dev, listener.path_ino));
  const core::Status st = sys::ChmodIfSame(sock, listener.path_dev, listener.path_ino, 0666);
  CHECK(st.message() == sock +
                            " is no longer the file this master created (a symbolic link is "
                            "there now); its mode is left alone");
  CHECK((Lstat(target).st_mode & 07777) == 0600);
  sys::CloseListener(listener);  // removes nothing: the path is not our socket any more
  CHECK(S_ISLNK(Lstat(sock).st_mode));
  CHECK(test::ReadFile(target) == "root's");
  CHECK(S_ISSOCK(Lstat(moved).st_mode));

  // Another file put there: refused as well.
  REQUIRE(unlink(sock.c_str()) == 0);
  test::WriteFile(sock, "theirs", 0600);
  CHECK(sys::ChmodIfSame(sock, listener.path_dev, listener.path_ino, 0666).message() ==
        sock + " is no longer the file this master created (another file is there now); its "
               "mode is left alone");
  CHECK((Lstat(sock).st_mode & 07777) == 0600);
}

}  // namespace
}  // namespace einhorn
