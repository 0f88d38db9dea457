// Bad input at startup: one clear line on stderr, exit 2 for usage and 1 for runtime errors,
// nothing half-started and no process left behind.
#include <arpa/inet.h>
#include <doctest/doctest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"

namespace einhorn::test {
namespace {

size_t Lines(const std::string& s) {
  size_t n = 0;
  for (char c : s) n += c == '\n';
  return n;
}

void CheckUsageError(std::vector<std::string> args, const std::string& needle) {
  INFO("args: ", args.size() ? args[0] : "");
  const Finished f = RunToExit(args);
  CHECK(f.status.code == 2);
  CHECK(Lines(f.err) == 1);
  CHECK(f.err.find(needle) != std::string::npos);
}

// As Einhorn 1.1.1 (and its test/integration/startup.rb): the usage on stdout, exit 1.
TEST_CASE("no worker command prints the usage on stdout and exits 1") {
  for (const std::vector<std::string>& args :
       std::vector<std::vector<std::string>>{{}, {"-n", "2", "-b", "127.0.0.1:0"}, {"--"}}) {
    const Finished f = RunToExit(args);
    CHECK(f.status.code == 1);
    CHECK_FALSE(f.status.signaled);
    CHECK(f.out.rfind("## Usage\n", 0) == 0);
    CHECK(f.err.empty());
  }
}

TEST_CASE("usage errors exit 2 with one line") {
  CheckUsageError({"-n", "0", "--", "true"}, "at least 1");
  CheckUsageError({"-n", "-1", "true"}, "number");
  CheckUsageError({"-b", "127.0.0.1", "true"}, "invalid bind '127.0.0.1'");
  CheckUsageError({"-b", "127.0.0.1:80,bogus", "true"}, "unknown flag 'bogus'");
  CheckUsageError({"--frobnicate", "true"}, "--frobnicate");
  CheckUsageError({"--gc-before-fork", "true"}, "works only with -p PATH");
  CheckUsageError({"-m", "soon", "true"}, "invalid ack mode");
  CheckUsageError({"--with-state-fd", "3", "-n", "2", "true"}, "takes no other flag");
  CheckUsageError({"--with-state-fd", "x", "true"}, "not an fd");
  CheckUsageError({"--reexec-as", "\"unclosed", "true"}, "unmatched quote");
  CheckUsageError({"--max-unacked", "0", "true"}, "--max-unacked must be at least 1");
  CheckUsageError({"-d", "/" + std::string(120, 's'), "true"}, "longer than 107");
}

TEST_CASE("help and version") {
  Finished f = RunToExit({"--version"});
  CHECK(f.status.code == 0);
  CHECK(f.out.rfind("einhorn-cpp ", 0) == 0);
  f = RunToExit({"--help"});
  CHECK(f.status.code == 0);
  CHECK(f.out.find("--signal-timeout") != std::string::npos);
}

TEST_CASE("a missing command is a clear runtime error before anything starts") {
  TempDir tmp;
  Finished f = RunToExit({"-b", "unix:" + tmp.File("s.sock"), "--", "/nonexistent/worker"}, 10s,
                         {"TMPDIR=" + tmp.path()});
  CHECK(f.status.code == 1);
  CHECK(f.err.find("/nonexistent/worker") != std::string::npos);
  CHECK_FALSE(FileExists(tmp.File("einhorn.pid")));
  CHECK_FALSE(FileExists(tmp.File("s.sock")));

  f = RunToExit({"--", "no-such-command-einhorn-test"});
  CHECK(f.status.code == 1);
  CHECK(f.err.find("no-such-command-einhorn-test") != std::string::npos);
  CHECK(f.err.find("PATH") != std::string::npos);
}

TEST_CASE("an unwritable pidfile is a runtime error and leaves no socket or process") {
  TempDir tmp;
  const std::string sock = tmp.File("w.sock");
  const Finished f = RunToExit(
      {"-e", "/nonexistent-dir/x.pid", "-b", "unix:" + sock, "--", TEST_WORKER_BIN}, 10s,
      {"TMPDIR=" + tmp.path()});
  CHECK(f.status.code == 1);
  CHECK(f.err.find("/nonexistent-dir/x.pid") != std::string::npos);
  CHECK_FALSE(FileExists(sock));
}

TEST_CASE("a port in use is a runtime error naming the address") {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  REQUIRE(fd >= 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
  REQUIRE(listen(fd, 1) == 0);
  socklen_t len = sizeof a;
  REQUIRE(getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0);
  const std::string spec = "127.0.0.1:" + std::to_string(ntohs(a.sin_port));
  TempDir tmp;
  const Finished f = RunToExit({"-b", spec, "--", TEST_WORKER_BIN}, 10s, {"TMPDIR=" + tmp.path()});
  CHECK(f.status.code == 1);
  CHECK(f.err.find(spec) != std::string::npos);
  CHECK(f.err.find("in use") != std::string::npos);
  CHECK_FALSE(FileExists(tmp.File("einhorn.pid")));
  // It names the holder, this test process, and says what to do (issue 17.5).
  CHECK(f.err.find("Address already in use, held by pid " + std::to_string(getpid()) + " (") !=
        std::string::npos);
  CHECK(f.err.find("; stop it, or choose another port\n") != std::string::npos);

  // Unprivileged, root's /proc/PID/fd is not readable: the holder is unknown, said plainly.
  if (geteuid() == 0) {
    TempDir shared;  // root's lockfile in `tmp` is not nobody's to open
    REQUIRE(chmod(shared.path().c_str(), 01777) == 0);
    const Finished nobody =
        RunProgram({"setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", EINHORN_BIN,
                    "-b", spec, "--", TEST_WORKER_BIN},
                   10s, {"TMPDIR=" + shared.path()});
    CHECK(nobody.status.code == 1);
    CHECK(nobody.err.find("einhorn-cpp: bind " + spec +
                          ": Address already in use, held by another process; stop it, or "
                          "choose another port\n") != std::string::npos);
  } else {
    MESSAGE("skipped the unprivileged case: needs root for setpriv");
  }
  close(fd);
}

// Einhorn's -f lock is held only while a master creates its command socket; a master that
// finds it held says by whom (from /proc/locks) and what to do.
TEST_CASE("a held lockfile names its holder") {
  TempDir tmp;
  const std::string lock = tmp.File("einhorn.lock");
  Process::Options o;
  o.argv = {"flock", "-x", lock, "sleep", "100"};
  Process holder = Process::Start(o);
  REQUIRE(PollUntil([&] { return ReadFile("/proc/locks").find(" FLOCK ") != std::string::npos &&
                                 FileExists(lock); }, 10s));
  // flock(1) takes the lock, then runs sleep as its child with the descriptor: either may be
  // the one /proc/locks names, and the topmost is named first.
  const Finished f = RunToExit({"-n", "1", "--", TEST_WORKER_BIN}, 10s, {"TMPDIR=" + tmp.path()});
  CHECK(f.status.code == 1);
  CHECK(Lines(f.err) == 1);
  CHECK(f.err.find("einhorn-cpp: lockfile " + lock + " is held by pid " +
                   std::to_string(holder.pid()) + " (flock -x " + lock + " sleep 100)") == 0);
  CHECK(f.err.find(", a master starting at this moment; try again, or give this master a "
                   "lockfile of its own (-f PATH, or -c NAME)\n") != std::string::npos);
  CHECK_FALSE(FileExists(tmp.File("einhorn.sock")));
}

}  // namespace
}  // namespace einhorn::test
