// Bad input at startup: one clear line on stderr, exit 2 for usage and 1 for runtime errors,
// nothing half-started and no process left behind.
#include <arpa/inet.h>
#include <doctest/doctest.h>
#include <netinet/in.h>
#include <sys/socket.h>
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
  CheckUsageError({"-p", "x.rb", "true"}, "Ruby-only");
  CheckUsageError({"--gc-before-fork", "true"}, "Ruby-only");
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
  close(fd);
  CHECK(f.status.code == 1);
  CHECK(f.err.find(spec) != std::string::npos);
  CHECK(f.err.find("in use") != std::string::npos);
  CHECK_FALSE(FileExists(tmp.File("einhorn.pid")));
}

}  // namespace
}  // namespace einhorn::test
