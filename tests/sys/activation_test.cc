#include "sys/activation.h"

#include <doctest/doctest.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <string>

namespace einhorn {
namespace {

// The variables for this process, as a service manager would set them.
void Pass(const std::string& fds, const char* names = nullptr) {
  setenv("LISTEN_PID", std::to_string(getpid()).c_str(), 1);
  setenv("LISTEN_FDS", fds.c_str(), 1);
  if (names) {
    setenv("LISTEN_FDNAMES", names, 1);
  } else {
    unsetenv("LISTEN_FDNAMES");
  }
}

bool Unset() {
  return !std::getenv("LISTEN_PID") && !std::getenv("LISTEN_FDS") &&
         !std::getenv("LISTEN_FDNAMES");
}

TEST_CASE("TakeActivatedSockets: bad variables are an error, and are gone afterwards") {
  // An fd number no test process has open: the first one the count would take.
  const int high = fcntl(0, F_DUPFD, 3);
  REQUIRE(high >= 3);
  close(high);

  // 2^31 - 4 fds: an error at the first one that is not open, not two billion of them.
  Pass("2147483644");
  auto taken = sys::TakeActivatedSockets();
  REQUIRE_FALSE(taken.ok());
  CHECK(taken.error().find("from the service manager") != std::string::npos);
  CHECK(Unset());

  Pass("0");
  taken = sys::TakeActivatedSockets();
  REQUIRE_FALSE(taken.ok());
  CHECK(taken.error() == "LISTEN_FDS='0' is not a count of fds (1 or more)");
  CHECK(Unset());

  Pass("2", "one");
  taken = sys::TakeActivatedSockets();
  REQUIRE_FALSE(taken.ok());
  CHECK(taken.error() == "LISTEN_FDNAMES='one' names 1 fds, LISTEN_FDS passes 2");
  CHECK(Unset());

  // Meant for another process: nothing taken, and still removed (a worker must not see them).
  setenv("LISTEN_PID", "1", 1);
  setenv("LISTEN_FDS", "1", 1);
  taken = sys::TakeActivatedSockets();
  REQUIRE_MESSAGE(taken.ok(), taken.error());
  CHECK(taken.value().empty());
  CHECK(Unset());
}

// TakeActivatedSockets in a child whose fd 3 is `fd` (LISTEN_FDS counts from 3, which this
// test process may hold): what it said, as "error: ..." or "NAME BOUND cloexec=0|1".
std::string TakeInChild(int fd, const char* names) {
  int out[2];
  REQUIRE(pipe2(out, O_CLOEXEC) == 0);
  const pid_t pid = fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    if (dup2(fd, 3) != 3) _exit(1);
    Pass("1", names);
    auto taken = sys::TakeActivatedSockets();
    std::string said;
    if (!taken.ok()) {
      said = "error: " + taken.error();
    } else if (taken.value().size() != 1) {
      said = "taken: " + std::to_string(taken.value().size());
    } else {
      said = taken.value()[0].name + " " + taken.value()[0].bound + " cloexec=" +
             std::to_string((fcntl(3, F_GETFD) & FD_CLOEXEC) != 0 ? 1 : 0);
    }
    if (!Unset()) said += " (variables left)";
    if (write(out[1], said.data(), said.size()) < 0) _exit(1);
    _exit(0);
  }
  close(out[1]);
  std::string said;
  char buf[512];
  ssize_t n;
  while ((n = read(out[0], buf, sizeof buf)) > 0) said.append(buf, static_cast<size_t>(n));
  close(out[0]);
  int status = 0;
  REQUIRE(waitpid(pid, &status, 0) == pid);
  CHECK(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 0);
  return said;
}

TEST_CASE("TakeActivatedSockets: only a listening stream socket is taken, close-on-exec") {
  int pair[2];
  REQUIRE(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) == 0);
  CHECK(TakeInChild(pair[0], "web") ==
        "error: fd 3 (web) from the service manager is not a listening stream socket");
  close(pair[0]);
  close(pair[1]);

  const int dgram = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  REQUIRE(dgram >= 0);
  CHECK(TakeInChild(dgram, nullptr) ==
        "error: fd 3 (unknown) from the service manager is not a listening stream socket");
  close(dgram);

  const int file = open("/dev/null", O_RDONLY | O_CLOEXEC);
  REQUIRE(file >= 0);
  CHECK(TakeInChild(file, "web") ==
        "error: fd 3 (web) from the service manager is not a listening stream socket");
  close(file);

  // Bound but not listening.
  const int idle = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  REQUIRE(idle >= 0);
  CHECK(TakeInChild(idle, "web") ==
        "error: fd 3 (web) from the service manager is not a listening stream socket");
  close(idle);

  const int listening = socket(AF_INET, SOCK_STREAM, 0);  // no CLOEXEC: it is set on taking
  REQUIRE(listening >= 0);
  REQUIRE(listen(listening, 4) == 0);
  const std::string said = TakeInChild(listening, "web");
  CHECK(said.rfind("web 0.0.0.0:", 0) == 0);
  CHECK(said.size() > std::string("web 0.0.0.0: cloexec=1").size());
  CHECK(said.substr(said.size() - 10) == " cloexec=1");
  close(listening);
}

}  // namespace
}  // namespace einhorn
