// The test support library itself: if these helpers lie, every e2e test lies with them.
#include <doctest/doctest.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <stdexcept>
#include <string>

#include "proc.h"
#include "sys/listeners.h"
#include "sys_test_util.h"

namespace einhorn {
namespace {

using namespace std::chrono_literals;
using test::Process;
using test::ReadFile;
using test::TempDir;

TEST_CASE("support: TempDir is created and removed with its contents") {
  std::string path;
  {
    TempDir dir;
    path = dir.path();
    struct stat st;
    REQUIRE(stat(path.c_str(), &st) == 0);
    CHECK(S_ISDIR(st.st_mode));
    REQUIRE(mkdir(dir.File("sub").c_str(), 0755) == 0);
    test::WriteFile(dir.File("sub/f"), "x");
    CHECK(ReadFile(dir.File("sub/f")) == "x");
  }
  CHECK_FALSE(test::FileExists(path));
}

TEST_CASE("support: Process runs in its own group, redirects output and reports the exit") {
  TempDir dir;
  Process::Options o;
  o.argv = {"sh", "-c", "echo out; echo err >&2; echo \"$A ${B-unset}\"; exit 7"};
  o.extra_env = {"A=1"};
  o.unset_env = {"B"};
  o.stdout_path = dir.File("out");
  o.stderr_path = dir.File("err");
  setenv("B", "inherited", 1);
  Process p = Process::Start(o);
  unsetenv("B");
  CHECK(p.pid() > 0);
  std::optional<core::ExitStatus> st = p.WaitExit(10s);
  REQUIRE(st.has_value());
  CHECK_FALSE(st->signaled);
  CHECK(st->code == 7);
  CHECK_FALSE(p.running());
  CHECK(ReadFile(dir.File("out")) == "out\n1 unset\n");
  CHECK(ReadFile(dir.File("err")) == "err\n");
  CHECK(p.WaitExit(0ms)->code == 7);  // cached
}

TEST_CASE("support: Process with a shared stdout/stderr file and a full env override") {
  TempDir dir;
  Process::Options o;
  o.argv = {"/bin/sh", "-c", "echo one; echo two >&2; echo \"${HOME-nohome}\""};
  o.env = std::vector<std::string>{"PATH=/usr/bin:/bin"};
  o.stdout_path = dir.File("log");
  o.stderr_path = dir.File("log");
  Process p = Process::Start(o);
  REQUIRE(p.WaitExit(10s).has_value());
  CHECK(ReadFile(dir.File("log")) == "one\ntwo\nnohome\n");
}

TEST_CASE("support: Process own process group, signals, WaitExit timeout") {
  Process p = Process::Start({"sleep", "30"});
  CHECK(getpgid(p.pid()) == p.pid());
  CHECK_FALSE(p.WaitExit(20ms).has_value());
  CHECK(p.running());
  CHECK(test::ProcessAlive(p.pid()));
  CHECK(p.Signal(SIGTERM));
  std::optional<core::ExitStatus> st = p.WaitExit(10s);
  REQUIRE(st.has_value());
  CHECK(st->signaled);
  CHECK(st->code == SIGTERM);
  CHECK_FALSE(p.Signal(SIGTERM));  // reaped: never signals a recycled pid
}

TEST_CASE("support: Process start failure throws") {
  CHECK_THROWS_AS(Process::Start({"/nonexistent/binary"}), std::runtime_error);
  CHECK_THROWS_AS(Process::Start({"no-such-program-in-path-x"}), std::runtime_error);
  Process::Options o;
  o.argv = {"true"};
  o.cwd = "/nonexistent";
  CHECK_THROWS_AS(Process::Start(o), std::runtime_error);
}

TEST_CASE("support: Process passes fds at 3.. and LISTEN_PID") {
  TempDir dir;
  const int fd = open(dir.File("passed").c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  REQUIRE(fd >= 0);
  Process::Options o;
  o.argv = {"sh", "-c", "echo \"$LISTEN_PID $$\"; readlink /proc/$$/fd/3; ls /proc/$$/fd"};
  o.pass_fds = {fd};
  o.set_listen_pid = true;
  o.stdout_path = dir.File("out");
  Process p = Process::Start(o);
  REQUIRE(p.WaitExit(10s).has_value());
  close(fd);
  const std::string pid = std::to_string(p.pid());
  CHECK(ReadFile(dir.File("out")) ==
        pid + " " + pid + "\n" + dir.File("passed") + "\n0\n1\n2\n3\n");
}

TEST_CASE("support: destroying a Process kills descendants in other process groups") {
  TempDir dir;
  const std::string pidfile = dir.File("grandchild");
  pid_t grandchild = -1;
  pid_t child = -1;
  {
    Process::Options o;
    o.argv = {"sh", "-c", "setsid sleep 30 & echo $! > \"$1\"; wait", "sh", pidfile};
    Process p = Process::Start(o);
    child = p.pid();
    REQUIRE(test::PollUntil([&] { return !ReadFile(pidfile).empty(); }, 10s));
    grandchild = std::stoi(ReadFile(pidfile));
    REQUIRE(test::PollUntil([&] { return getpgid(grandchild) == grandchild; }, 10s));
    CHECK(test::ChildrenOf(child) == std::vector<pid_t>{grandchild});
    CHECK(test::DescendantsOf(getpid()) == std::vector<pid_t>{child, grandchild});
    CHECK(test::ProcessAlive(grandchild));
  }
  CHECK(test::PollUntil([&] { return !test::ProcessAlive(grandchild); }, 10s));
  CHECK_FALSE(test::ProcessAlive(child));
}

TEST_CASE("support: ProcessAlive is false for zombies and unknown pids") {
  const pid_t pid = fork();
  REQUIRE(pid >= 0);
  if (pid == 0) _exit(0);
  test::ChildGuard guard(pid);
  CHECK(test::PollUntil([&] { return test::ProcessState(pid) == 'Z'; }, 10s));
  CHECK_FALSE(test::ProcessAlive(pid));
  CHECK(test::ProcessAlive(getpid()));
  CHECK_FALSE(test::ProcessAlive(-1));
}

TEST_CASE("support: PollUntil") {
  int calls = 0;
  CHECK(test::PollUntil([&] { return ++calls == 3; }, 10s, 1ms));
  CHECK(calls == 3);
  CHECK_FALSE(test::PollUntil([] { return false; }, 20ms));
}

// Serves one HTTP/1.0 request from a forked child on `fd`.
pid_t ServeOnce(int fd, const std::string& response) {
  const pid_t pid = fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    const int c = accept(fd, nullptr, nullptr);
    if (c < 0) _exit(1);
    std::string request;
    char buf[512];
    while (request.find("\r\n\r\n") == std::string::npos) {
      const ssize_t n = read(c, buf, sizeof(buf));
      if (n <= 0) _exit(2);
      request.append(buf, static_cast<size_t>(n));
    }
    if (request.rfind("GET / HTTP/1.0\r\n", 0) != 0) _exit(3);
    if (write(c, response.data(), response.size()) != static_cast<ssize_t>(response.size())) {
      _exit(4);
    }
    close(c);
    _exit(0);
  }
  return pid;
}

TEST_CASE("support: HttpGet over TCP and UNIX sockets") {
  const std::string response = "HTTP/1.0 200 OK\r\nContent-Length: 6\r\n\r\nhello\n";
  SUBCASE("tcp") {
    core::BindSpec spec;
    spec.host = "127.0.0.1";
    core::Result<sys::Listener> l = sys::OpenListener(spec, 8);
    REQUIRE(l.ok());
    sys::Listener listener = l.value();
    const int port = std::stoi(listener.bound.substr(listener.bound.rfind(':') + 1));
    test::ChildGuard server(ServeOnce(listener.fd, response));
    CHECK(test::HttpGet("127.0.0.1", port, 10s) == "hello\n");
    CHECK(server.Wait(10s) == std::optional<int>(0));
    test::ChildGuard raw_server(ServeOnce(listener.fd, response));
    CHECK(test::HttpGetRaw("127.0.0.1", port, 10s) == response);
    sys::CloseListener(listener);
    CHECK(test::HttpGet("127.0.0.1", port, 1s).empty());  // refused
  }
  SUBCASE("unix") {
    TempDir dir;
    core::BindSpec spec;
    spec.family = core::BindSpec::Family::kUnix;
    spec.path = dir.File("http.sock");
    core::Result<sys::Listener> l = sys::OpenListener(spec, 8);
    REQUIRE(l.ok());
    sys::Listener listener = l.value();
    test::ChildGuard server(ServeOnce(listener.fd, response));
    CHECK(test::HttpGetUnix(spec.path, 10s) == "hello\n");
    sys::CloseListener(listener);
    CHECK(test::HttpGetUnix(spec.path, 1s).empty());  // gone
  }
  SUBCASE("a server that never answers times out") {
    core::BindSpec spec;
    spec.host = "127.0.0.1";
    core::Result<sys::Listener> l = sys::OpenListener(spec, 8);
    REQUIRE(l.ok());
    sys::Listener listener = l.value();
    const int port = std::stoi(listener.bound.substr(listener.bound.rfind(':') + 1));
    CHECK(test::HttpGet("127.0.0.1", port, 100ms).empty());  // queued, never accepted
    sys::CloseListener(listener);
  }
}

}  // namespace
}  // namespace einhorn
