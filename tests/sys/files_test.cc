// sys::LockFile, WritePidfile, RemovePidfile on a real filesystem.
#include "sys/files.h"

#include <dirent.h>
#include <doctest/doctest.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <string>
#include <vector>

#include "core/holders.h"
#include "proc.h"
#include "sys_test_util.h"

namespace einhorn {
namespace {

using namespace std::chrono_literals;
using test::TempDir;

// Tries to take the lock from a forked process (a lock held through a forked fd would be
// shared, so the child opens its own): exit 0 when the expected refusal came, 1 otherwise.
int AcquireInChild(const std::string& path, const std::string& expected_error) {
  const pid_t pid = fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    core::Result<sys::LockFile> r = sys::LockFile::Acquire(path);
    if (expected_error.empty()) _exit(r.ok() ? 0 : 1);
    _exit(!r.ok() && r.error() == expected_error ? 0 : 1);
  }
  test::ChildGuard child(pid);
  std::optional<int> status = child.Wait(10s);
  REQUIRE(status.has_value());
  REQUIRE(WIFEXITED(*status));
  return WEXITSTATUS(*status);
}

std::vector<std::string> ListDir(const std::string& path) {
  std::vector<std::string> names;
  DIR* dir = opendir(path.c_str());
  REQUIRE(dir != nullptr);
  while (dirent* e = readdir(dir)) {
    const std::string name = e->d_name;
    if (name != "." && name != "..") names.push_back(name);
  }
  closedir(dir);
  return names;
}

TEST_CASE("lockfile: a second master is refused while the first holds it") {
  TempDir dir;
  const std::string path = dir.File("einhorn.lock");
  // The refusal names the holder, this process, found in /proc/locks (issue 17.5).
  const std::string held =
      "lockfile " + path + " is held by pid " + std::to_string(getpid()) + " (" +
      core::CommandLineText(test::ReadFile("/proc/self/cmdline")) +
      "), a master starting at this moment; try again, or give this master a lockfile of its "
      "own (-f PATH, or -c NAME)";
  {
    core::Result<sys::LockFile> lock = sys::LockFile::Acquire(path);
    REQUIRE_MESSAGE(lock.ok(), lock.error());
    CHECK((fcntl(lock.value().fd(), F_GETFD) & FD_CLOEXEC) != 0);
    struct stat st;
    REQUIRE(stat(path.c_str(), &st) == 0);
    CHECK((st.st_mode & 0777) == 0600);
    CHECK(AcquireInChild(path, held) == 0);

    // Moving the lock keeps it held.
    sys::LockFile moved = std::move(lock).value();
    CHECK(moved.fd() >= 0);
    CHECK(AcquireInChild(path, held) == 0);
  }
  // Released with the last owner.
  CHECK(AcquireInChild(path, "") == 0);
  CHECK(test::FileExists(path));
}

TEST_CASE("lockfile: an unusable path names the path and errno") {
  TempDir dir;
  const std::string path = dir.File("missing/einhorn.lock");
  core::Result<sys::LockFile> lock = sys::LockFile::Acquire(path);
  REQUIRE_FALSE(lock.ok());
  CHECK(lock.error() == "cannot open lockfile " + path + ": No such file or directory");
}

TEST_CASE("pidfile: decimal pid, no newline, mode 0644, no temp file left") {
  TempDir dir;
  const std::string path = dir.File("einhorn.pid");
  REQUIRE(sys::WritePidfile(path, 12345).ok());
  CHECK(test::ReadFile(path) == "12345");
  struct stat st;
  REQUIRE(stat(path.c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0644);
  // Overwrites an existing one atomically.
  REQUIRE(sys::WritePidfile(path, 7).ok());
  CHECK(test::ReadFile(path) == "7");
  CHECK(ListDir(dir.path()) == std::vector<std::string>{"einhorn.pid"});
}

TEST_CASE("pidfile: errors name the path and errno") {
  TempDir dir;
  SUBCASE("missing directory") {
    const std::string path = dir.File("no/such/x.pid");
    core::Status st = sys::WritePidfile(path, 1);
    REQUIRE_FALSE(st.ok());
    CHECK(st.message() == "cannot write pidfile " + path + ": No such file or directory");
  }
  SUBCASE("a file where a directory should be") {
    test::WriteFile(dir.File("file"), "");
    const std::string path = dir.File("file/x.pid");
    core::Status st = sys::WritePidfile(path, 1);
    REQUIRE_FALSE(st.ok());
    CHECK(st.message() == "cannot write pidfile " + path + ": Not a directory");
  }
  SUBCASE("unwritable directory") {
    if (geteuid() == 0) {
      MESSAGE("skipping the permission case: root ignores directory modes");
      return;
    }
    REQUIRE(mkdir(dir.File("ro").c_str(), 0500) == 0);
    const std::string path = dir.File("ro/x.pid");
    core::Status st = sys::WritePidfile(path, 1);
    REQUIRE_FALSE(st.ok());
    CHECK(st.message() == "cannot write pidfile " + path + ": Permission denied");
  }
}

TEST_CASE("pidfile: removed only while it still holds our pid") {
  TempDir dir;
  const std::string path = dir.File("einhorn.pid");
  REQUIRE(sys::WritePidfile(path, 42).ok());
  sys::RemovePidfile(path, 43);
  CHECK(test::FileExists(path));
  sys::RemovePidfile(path, 42);
  CHECK_FALSE(test::FileExists(path));
  sys::RemovePidfile(path, 42);  // already gone: no-op
}

// A FIFO stands in for /dev/null (`-e /dev/null`, no pidfile wanted): replacing that device
// node, as a rename would as root, breaks the whole machine, so it is not used here.
TEST_CASE("pidfile: a path that is not a regular file is written through, never replaced") {
  TempDir dir;
  const std::string path = dir.File("pid.fifo");
  REQUIRE(mkfifo(path.c_str(), 0600) == 0);
  const int reader = open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  REQUIRE(reader >= 0);
  REQUIRE(sys::WritePidfile(path, 42).ok());
  char buf[16] = {};
  CHECK(read(reader, buf, sizeof buf) == 2);
  CHECK(std::string(buf) == "42");
  struct stat st;
  REQUIRE(stat(path.c_str(), &st) == 0);
  CHECK(S_ISFIFO(st.st_mode));
  CHECK(ListDir(dir.path()) == std::vector<std::string>{"pid.fifo"});
  // Even while it reads as our pid, it is not ours to remove.
  const int writer = open(path.c_str(), O_WRONLY | O_NONBLOCK | O_CLOEXEC);
  REQUIRE(writer >= 0);
  REQUIRE(write(writer, "42", 2) == 2);
  sys::RemovePidfile(path, 42);
  CHECK(test::FileExists(path));
  close(writer);
  close(reader);
  // No reader: a clear error instead of blocking the master's start.
  core::Status st2 = sys::WritePidfile(path, 1);
  REQUIRE_FALSE(st2.ok());
  CHECK(st2.message() == "cannot write pidfile " + path + ": No such device or address");
}

}  // namespace
}  // namespace einhorn
