// The syscalls of a master re-exec (sys/reexec.h) on real fds, signals and processes, and the
// spawn plan's stdout_fd and stderr_fd that captures the upgrade check's output.
#include "sys/reexec.h"

#include <doctest/doctest.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <climits>
#include <string>
#include <thread>

#include "proc.h"
#include "sys/spawn.h"
#include "sys_test_util.h"

namespace einhorn {
namespace {

using namespace std::chrono_literals;
using test::ChildGuard;
using test::TempDir;
using test::WriteFile;

// Bytes of every value, NULs included, longer than ReadWholeFd's 64 KiB buffer.
std::string Pattern(size_t n) {
  std::string s(n, '\0');
  for (size_t i = 0; i < n; ++i) s[i] = static_cast<char>((i * 7 + i / 256) & 0xff);
  return s;
}

bool Cloexec(int fd) { return (fcntl(fd, F_GETFD) & FD_CLOEXEC) != 0; }

std::string FdTarget(int fd) {
  char buf[PATH_MAX];
  const ssize_t n = readlink(("/proc/self/fd/" + std::to_string(fd)).c_str(), buf, sizeof buf - 1);
  return n > 0 ? std::string(buf, static_cast<size_t>(n)) : "";
}

TEST_CASE("reexec: BytesMemfd holds the bytes and ReadWholeFd reads them back from offset 0") {
  const std::string bytes = Pattern(200 * 1024 + 13);
  auto fd = sys::BytesMemfd("einhorn-test-state", bytes);
  REQUIRE_MESSAGE(fd.ok(), fd.error());
  CHECK(Cloexec(fd.value()));
  CHECK(FdTarget(fd.value()).rfind("/memfd:einhorn-test-state", 0) == 0);

  // Written through the fd, so its offset is at the end: ReadWholeFd must not care.
  CHECK(lseek(fd.value(), 0, SEEK_CUR) == static_cast<off_t>(bytes.size()));
  auto back = sys::ReadWholeFd(fd.value(), bytes.size());
  REQUIRE_MESSAGE(back.ok(), back.error());
  CHECK(back.value() == bytes);

  // A copy whose (shared) offset moved elsewhere, as after a read by another process.
  const int copy = dup(fd.value());
  REQUIRE(copy >= 0);
  REQUIRE(lseek(copy, 1000, SEEK_SET) == 1000);
  back = sys::ReadWholeFd(copy, bytes.size() + 1);
  REQUIRE_MESSAGE(back.ok(), back.error());
  CHECK(back.value() == bytes);
  // pread leaves the offset alone.
  CHECK(lseek(copy, 0, SEEK_CUR) == 1000);
  close(copy);
  close(fd.value());

  auto empty = sys::BytesMemfd("einhorn-test-empty", "");
  REQUIRE(empty.ok());
  auto nothing = sys::ReadWholeFd(empty.value(), 0);
  REQUIRE_MESSAGE(nothing.ok(), nothing.error());
  CHECK(nothing.value().empty());
  close(empty.value());
}

TEST_CASE("reexec: ReadWholeFd reads a pipe to EOF") {
  int p[2];
  REQUIRE(pipe2(p, O_CLOEXEC) == 0);
  REQUIRE(write(p[1], "hello\n", 6) == 6);
  close(p[1]);
  auto small = sys::ReadWholeFd(p[0], 1024);
  REQUIRE_MESSAGE(small.ok(), small.error());
  CHECK(small.value() == "hello\n");
  close(p[0]);

  // More than a pipe holds: the writer blocks until the reader catches up.
  const std::string bytes = Pattern(300 * 1024);
  REQUIRE(pipe2(p, O_CLOEXEC) == 0);
  std::thread writer([&] {
    size_t done = 0;
    while (done < bytes.size()) {
      const ssize_t n = write(p[1], bytes.data() + done, bytes.size() - done);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) break;
      done += static_cast<size_t>(n);
    }
    close(p[1]);
  });
  auto big = sys::ReadWholeFd(p[0], bytes.size());
  writer.join();
  close(p[0]);
  REQUIRE_MESSAGE(big.ok(), big.error());
  CHECK(big.value() == bytes);
}

TEST_CASE("reexec: FdBytes maps a sealed memfd and reads anything else") {
  const std::string bytes = Pattern(200 * 1024 + 13);
  auto sealed = sys::BytesMemfd("einhorn-test-sealed", bytes, /*sealed=*/true);
  REQUIRE_MESSAGE(sealed.ok(), sealed.error());
  // Nobody can change what the mapping shows any more.
  CHECK(write(sealed.value(), "x", 1) == -1);
  CHECK(errno == EPERM);
  CHECK(ftruncate(sealed.value(), 10) == -1);
  auto mapped = sys::FdBytes::Of(sealed.value(), bytes.size());
  REQUIRE_MESSAGE(mapped.ok(), mapped.error());
  CHECK(mapped.value().mapped());
  CHECK(mapped.value().view() == bytes);
  // Its limit holds as ReadWholeFd's does, with the same words.
  auto over = sys::FdBytes::Of(sealed.value(), bytes.size() - 1);
  REQUIRE_FALSE(over.ok());
  CHECK(over.error() == "fd " + std::to_string(sealed.value()) + " holds more than " +
                            std::to_string(bytes.size() - 1) + " bytes");
  close(sealed.value());
  // The mapping outlives the fd; moved, it is still one mapping; released, it is nothing.
  sys::FdBytes moved = std::move(mapped.value());
  CHECK(moved.view() == bytes);
  moved.Release();
  CHECK(moved.view().empty());

  // Unsealed (an image from before the seals, or someone else's file): read, not mapped.
  auto plain = sys::BytesMemfd("einhorn-test-plain", bytes);
  REQUIRE(plain.ok());
  auto read = sys::FdBytes::Of(plain.value(), bytes.size());
  REQUIRE_MESSAGE(read.ok(), read.error());
  CHECK_FALSE(read.value().mapped());
  CHECK(read.value().view() == bytes);
  CHECK_FALSE(sys::FdBytes::Of(plain.value(), bytes.size() - 1).ok());
  close(plain.value());

  // A pipe (Ruby Einhorn's state) is read to EOF.
  int p[2];
  REQUIRE(pipe2(p, O_CLOEXEC) == 0);
  REQUIRE(write(p[1], "---\nstate\n", 10) == 10);
  close(p[1]);
  auto piped = sys::FdBytes::Of(p[0], 1024);
  close(p[0]);
  REQUIRE_MESSAGE(piped.ok(), piped.error());
  CHECK_FALSE(piped.value().mapped());
  CHECK(piped.value().view() == "---\nstate\n");

  // Sealed and empty: nothing to map, and nothing is what it holds.
  auto empty = sys::BytesMemfd("einhorn-test-sealed-empty", "", /*sealed=*/true);
  REQUIRE(empty.ok());
  auto none = sys::FdBytes::Of(empty.value(), 0);
  REQUIRE_MESSAGE(none.ok(), none.error());
  CHECK(none.value().view().empty());
  close(empty.value());
}

TEST_CASE("reexec: ReadWholeFd reads a file that says it is empty but is not") {
  // /proc files are regular files of length 0 that hold text.
  const int fd = open("/proc/self/status", O_RDONLY | O_CLOEXEC);
  REQUIRE(fd >= 0);
  auto text = sys::ReadWholeFd(fd, 1 << 20);
  close(fd);
  REQUIRE_MESSAGE(text.ok(), text.error());
  CHECK(text.value().find("\nPid:\t" + std::to_string(getpid()) + "\n") != std::string::npos);
}

TEST_CASE("reexec: ReadWholeFd refuses more than max_bytes and names a bad fd") {
  const std::string bytes(100, 'x');
  auto fd = sys::BytesMemfd("einhorn-test-cap", bytes);
  REQUIRE(fd.ok());
  auto exact = sys::ReadWholeFd(fd.value(), 100);
  REQUIRE_MESSAGE(exact.ok(), exact.error());
  CHECK(exact.value() == bytes);
  auto over = sys::ReadWholeFd(fd.value(), 99);
  REQUIRE_FALSE(over.ok());
  CHECK(over.error() == "fd " + std::to_string(fd.value()) + " holds more than 99 bytes");
  close(fd.value());

  int p[2];
  REQUIRE(pipe2(p, O_CLOEXEC) == 0);
  REQUIRE(write(p[1], bytes.data(), bytes.size()) == 100);
  close(p[1]);
  over = sys::ReadWholeFd(p[0], 10);
  REQUIRE_FALSE(over.ok());
  CHECK(over.error().find("holds more than 10 bytes") != std::string::npos);
  close(p[0]);

  // p[0] is closed now.
  auto bad = sys::ReadWholeFd(p[0], 10);
  REQUIRE_FALSE(bad.ok());
  CHECK(bad.error() == "reading fd " + std::to_string(p[0]) + ": Bad file descriptor");
}

TEST_CASE("reexec: SetCloexec turns FD_CLOEXEC on and off and nothing else") {
  const int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
  REQUIRE(fd >= 0);
  const int status_flags = fcntl(fd, F_GETFL);
  CHECK(Cloexec(fd));
  CHECK(sys::SetCloexec(fd, false).ok());
  CHECK_FALSE(Cloexec(fd));
  CHECK(sys::SetCloexec(fd, false).ok());  // idempotent
  CHECK_FALSE(Cloexec(fd));
  CHECK(sys::SetCloexec(fd, true).ok());
  CHECK(Cloexec(fd));
  CHECK(fcntl(fd, F_GETFL) == status_flags);
  close(fd);

  const core::Status bad = sys::SetCloexec(fd, true);
  REQUIRE_FALSE(bad.ok());
  CHECK(bad.message().find("fd " + std::to_string(fd)) != std::string::npos);
  CHECK(bad.message().find("Bad file descriptor") != std::string::npos);
}

TEST_CASE("reexec: ExecImage returns an error naming the path when execve fails") {
  const core::Status missing =
      sys::ExecImage("/nonexistent-dir/einhorn-cpp", {"einhorn-cpp", "--version"}, {"A=b"});
  REQUIRE_FALSE(missing.ok());
  CHECK(missing.message() == "execve /nonexistent-dir/einhorn-cpp: No such file or directory");

  // Not executable by anyone: refused even for root.
  TempDir dir;
  const std::string plain = dir.File("not-executable");
  WriteFile(plain, "#!/bin/sh\nexit 0\n", 0644);
  const core::Status denied = sys::ExecImage(plain, {plain}, {});
  REQUIRE_FALSE(denied.ok());
  CHECK(denied.message() == "execve " + plain + ": Permission denied");
}

TEST_CASE("reexec: SelfPath resolves argv[0] like a shell, else /proc/self/exe") {
  char exe[PATH_MAX];
  const ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
  REQUIRE(n > 0);
  const std::string self(exe, static_cast<size_t>(n));

  // An absolute path is kept as it is (a symlink is not resolved: it is followed at exec).
  CHECK(sys::SelfPath(TEST_WORKER_BIN, "") == TEST_WORKER_BIN);
  TempDir dir;
  const std::string link = dir.File("current-einhorn");
  REQUIRE(symlink(TEST_WORKER_BIN, link.c_str()) == 0);
  CHECK(sys::SelfPath(link, "") == link);

  // A bare name is looked up in PATH.
  const std::string bin = dir.File("einhorn-cpp-self-test");
  WriteFile(bin, "#!/bin/sh\nexit 0\n", 0755);
  CHECK(sys::SelfPath("einhorn-cpp-self-test", "/nonexistent-dir:" + dir.path()) == bin);
  CHECK(sys::SelfPath("current-einhorn", dir.path()) == link);

  // Nothing to resolve: the running binary.
  CHECK(sys::SelfPath("einhorn-cpp-self-test", "/nonexistent-dir") == self);
  CHECK(sys::SelfPath("", "/usr/bin:/bin") == self);
}

volatile sig_atomic_t got_usr1 = 0;
void OnUsr1(int) { got_usr1 = 1; }

bool Blocked(int sig) {
  sigset_t now;
  sigemptyset(&now);
  sigprocmask(SIG_BLOCK, nullptr, &now);
  return sigismember(&now, sig) == 1;
}

TEST_CASE("reexec: BlockSignals holds signals back until RestoreSignalMask") {
  REQUIRE_FALSE(Blocked(SIGUSR1));
  REQUIRE_FALSE(Blocked(SIGUSR2));
  struct sigaction action {};
  struct sigaction old_action {};
  action.sa_handler = OnUsr1;
  sigemptyset(&action.sa_mask);
  REQUIRE(sigaction(SIGUSR1, &action, &old_action) == 0);
  got_usr1 = 0;

  const sys::SignalMask before = sys::BlockSignals({SIGUSR1});
  CHECK(Blocked(SIGUSR1));
  CHECK_FALSE(Blocked(SIGUSR2));
  REQUIRE(kill(getpid(), SIGUSR1) == 0);
  sigset_t pending;
  sigemptyset(&pending);
  REQUIRE(sigpending(&pending) == 0);
  CHECK(sigismember(&pending, SIGUSR1) == 1);
  CHECK(got_usr1 == 0);

  // Nested: the mask returned is the one just before, USR1 included.
  const sys::SignalMask with_usr1 = sys::BlockSignals({SIGUSR2});
  CHECK(Blocked(SIGUSR2));
  sys::RestoreSignalMask(with_usr1);
  CHECK(Blocked(SIGUSR1));
  CHECK_FALSE(Blocked(SIGUSR2));
  CHECK(got_usr1 == 0);

  // The pending signal is delivered as the mask is restored.
  sys::RestoreSignalMask(before);
  CHECK_FALSE(Blocked(SIGUSR1));
  CHECK(got_usr1 == 1);
  sigaction(SIGUSR1, &old_action, nullptr);
}

TEST_CASE("spawn: one fd as stdout_fd and stderr_fd becomes the child's stdout and stderr, and nothing else") {
  auto out = sys::BytesMemfd("einhorn-test-output", "");
  REQUIRE(out.ok());
  sys::SpawnPlan plan;
  plan.path = "/bin/sh";
  plan.argv = {"sh", "-c", "echo out; echo err >&2; ls /proc/$$/fd"};
  plan.env = {"PATH=/usr/bin:/bin"};
  plan.stdout_fd = out.value();
  plan.stderr_fd = out.value();
  auto pid = sys::Spawn(plan);
  REQUIRE_MESSAGE(pid.ok(), pid.error());
  ChildGuard child(pid.value());
  const std::optional<int> status = child.Wait(10s);
  REQUIRE(status.has_value());
  CHECK(WIFEXITED(*status));
  CHECK(WEXITSTATUS(*status) == 0);
  auto said = sys::ReadWholeFd(out.value(), 4096);
  REQUIRE_MESSAGE(said.ok(), said.error());
  CHECK(said.value() == "out\nerr\n0\n1\n2\n");
  // The parent's copy is untouched.
  CHECK(Cloexec(out.value()));
  close(out.value());

  // An exec failure is reported as usual and the output stays empty.
  auto empty = sys::BytesMemfd("einhorn-test-output", "");
  REQUIRE(empty.ok());
  plan.path = "/nonexistent-dir/sh";
  plan.stdout_fd = empty.value();
  plan.stderr_fd = empty.value();
  auto failed = sys::Spawn(plan);
  REQUIRE_FALSE(failed.ok());
  CHECK(failed.error() == "execve /nonexistent-dir/sh: No such file or directory");
  auto nothing = sys::ReadWholeFd(empty.value(), 4096);
  REQUIRE(nothing.ok());
  CHECK(nothing.value().empty());
  close(empty.value());
}

TEST_CASE("spawn: stdout_fd and stderr_fd apart, as --worker-output's pipes") {
  int out[2];
  int err[2];
  REQUIRE(pipe2(out, O_CLOEXEC) == 0);
  REQUIRE(pipe2(err, O_CLOEXEC) == 0);
  sys::SpawnPlan plan;
  plan.path = "/bin/sh";
  // No pipeline: the shell would hold the pipe's fds while ls looks.
  plan.argv = {"sh", "-c", "echo to-out; echo to-err >&2; ls /proc/$$/fd"};
  plan.env = {"PATH=/usr/bin:/bin"};
  plan.stdout_fd = out[1];
  plan.stderr_fd = err[1];
  auto pid = sys::Spawn(plan);
  REQUIRE_MESSAGE(pid.ok(), pid.error());
  close(out[1]);
  close(err[1]);
  ChildGuard child(pid.value());
  REQUIRE(child.Wait(10s).has_value());
  // The write ends were closed here and exited there: both pipes are at EOF.
  auto said_out = sys::ReadWholeFd(out[0], 4096);
  auto said_err = sys::ReadWholeFd(err[0], 4096);
  REQUIRE(said_out.ok());
  REQUIRE(said_err.ok());
  CHECK(said_out.value() == "to-out\n0\n1\n2\n");
  CHECK(said_err.value() == "to-err\n");
  close(out[0]);
  close(err[0]);
}

TEST_CASE("reexec: RunsAs is this process's binary, through symlinks, and nothing else") {
  char self[PATH_MAX] = {0};
  REQUIRE(readlink("/proc/self/exe", self, sizeof self - 1) > 0);
  CHECK(sys::RunsAs(self));
  CHECK(sys::RunsAs("/proc/self/exe"));
  test::TempDir dir;
  REQUIRE(symlink(self, dir.File("link").c_str()) == 0);
  CHECK(sys::RunsAs(dir.File("link")));
  // A script that would exec us is another program.
  test::WriteFile(dir.File("wrapper"), std::string("#!/bin/sh\nexec ") + self + " \"$@\"\n", 0755);
  CHECK_FALSE(sys::RunsAs(dir.File("wrapper")));
  CHECK_FALSE(sys::RunsAs("/bin/sh"));
  CHECK_FALSE(sys::RunsAs(""));
  CHECK_FALSE(sys::RunsAs(dir.File("missing")));
  REQUIRE(symlink(dir.File("missing").c_str(), dir.File("dangling").c_str()) == 0);
  CHECK_FALSE(sys::RunsAs(dir.File("dangling")));
}

}  // namespace
}  // namespace einhorn
