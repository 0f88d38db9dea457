// The command socket with real clients' bytes: Einhorn's replies, resizing, and the master's
// resilience to hostile peers.
#include <doctest/doctest.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <random>
#include <thread>

#include "control_client.h"
#include "core/pool_status.h"
#include "harness.h"

namespace einhorn::test {
namespace {

std::string Sock(const MasterRun& m) { return m.dir().File("einhorn.sock"); }

bool WaitForSocket(const MasterRun& m) {
  return PollUntil([&] { return ControlClient(Sock(m)).connected(); }, 10s);
}

core::PoolStatus Status(const MasterRun& m) {
  ControlClient c(Sock(m));
  REQUIRE(c.connected());
  auto reply = c.Ask("{\"id\": 1, \"command\": \"status\"}\n");
  REQUIRE(reply.has_value());
  auto status = core::PoolStatusFromYaml(reply->message);
  REQUIRE(status.ok());
  return status.value();
}

size_t LiveChildren(const MasterRun& m) {
  size_t n = 0;
  for (pid_t c : ChildrenOf(m.pid())) n += ProcessAlive(c) ? 1 : 0;
  return n;
}

TEST_CASE("Einhorn's clients' literal bytes get Einhorn's replies") {
  MasterRun m({"-n", "1", "-m", "0", "-c", "web"}, {TEST_WORKER_BIN});
  const std::string sock = m.dir().File("einhorn-web.sock");  // -c names the default socket
  REQUIRE(PollUntil([&] { return ControlClient(sock).connected(); }, 10s));
  ControlClient c(sock);
  REQUIRE(c.connected());

  auto r = c.Ask("{\"command\":\"ehlo\",\"user\":\"tester\"}\n");
  REQUIRE(r);
  CHECK(r->message.rfind("Welcome, tester! You are speaking to Einhorn Master Process " +
                             std::to_string(m.pid()) + " (web).\n",
                         0) == 0);
  CHECK_FALSE(r->request_id.has_value());

  // einhornsh: block YAML with ---, an integer id, empty args.
  r = c.Ask("---%0Aid: 1%0Acommand: inc%0Aargs: []%0A\n");
  REQUIRE(r);
  CHECK(r->message == "Incrementing number of workers from 1 -> 2");
  REQUIRE(r->request_id.has_value());
  CHECK(r->request_id->kind == core::wire::Id::Kind::kInt);
  CHECK(r->request_id->text == "1");
  CHECK_FALSE(r->wait);

  // Old-style (no id): only a message comes back.
  const std::string raw_line = [&] {
    c.Send("command: dec\n");
    return c.ReadLine(10s).value_or("");
  }();
  CHECK(raw_line == "---%0Amessage: \"Decrementing number of workers from 2 -> 1\"%0A");

  r = c.Ask("{\"id\":6,\"command\":\"set_workers\",\"args\":[\"0\"]}\n");
  REQUIRE(r);
  CHECK(r->message.rfind("Invalid count: '0'. Must be an integer in [1,", 0) == 0);
  CHECK(r->error);
  CHECK(r->request_id->text == "6");

  r = c.Ask("{\"id\":\"abc\",\"command\":\"signal\",\"args\":[]}\n");
  REQUIRE(r);
  CHECK(r->message.empty());
  CHECK(r->request_id->kind == core::wire::Id::Kind::kString);
  CHECK(r->request_id->text == "abc");

  r = c.Ask("not: valid: yaml: [\n");
  REQUIRE(r);
  CHECK(r->message == "Could not parse command");
  r = c.Ask("{\"id\": 3}\n");
  REQUIRE(r);
  CHECK(r->message == "No \"command\" parameter provided; not sure what you want me to do.");
  r = c.Ask("{\"id\": 4, \"command\": \"frobnicate\"}\n");
  REQUIRE(r);
  // Einhorn's text: the verb list right after the name (no "You are speaking to" preamble).
  CHECK(r->message.rfind("Unrecognized command: \"frobnicate\"\n\nconfig: ", 0) == 0);
  r = c.Ask("{\"id\": 5, \"command\": \"dec\"}\n");
  REQUIRE(r);
  CHECK(r->message == "Can't decrease number of workers (already at 1).  Run kill " +
                          std::to_string(m.pid()) + " if you really want to kill einhorn.");
  r = c.Ask("{\"command\": \"die\"}\n");
  REQUIRE(r);
  CHECK(r->message == "No args provided");
  r = c.Ask("{\"command\": \"quieter\"}\n");
  REQUIRE(r);
  CHECK(r->message == "Verbosity set to 2");
  r = c.Ask("{\"command\": \"louder\"}\n");
  REQUIRE(r);
  CHECK(r->message == "Verbosity set to 1");
  r = c.Ask("{\"command\": \"help\"}\n");
  REQUIRE(r);
  CHECK(r->message.find("\nset_workers: ") != std::string::npos);

  // A request split over two writes, then two requests in one write.
  c.Send("{\"id\": 8, \"comm");
  c.Send("and\": \"state\"}\n");
  r = c.ReadReply(10s);
  REQUIRE(r);
  CHECK(r->request_id->text == "8");
  c.Send("{\"id\": 9, \"command\": \"help\"}\n{\"id\": 10, \"command\": \"help\"}\n");
  CHECK(c.ReadReply(10s)->request_id->text == "9");
  CHECK(c.ReadReply(10s)->request_id->text == "10");
}

// The master reads what a client sent with its connection as it accepts it (issue 20: libuv
// would read it a turn later, after a slice of spawns). Stopped while the clients connect and
// write, it finds their bytes already there when it accepts them, so that first read is the one
// tested: a request longer than it, two requests in it, half a request, a client that shuts its
// side at once.
TEST_CASE("what a client sent with its connection is read as it is accepted, whole") {
  MasterRun m({"-n", "1", "-m", "0"}, {TEST_WORKER_BIN});
  REQUIRE(WaitForSocket(m));
  const std::string long_id(6000, 'x');  // longer than the first read (4 KiB)
  REQUIRE(kill(m.pid(), SIGSTOP) == 0);
  ControlClient two(Sock(m)), long_one(Sock(m)), half(Sock(m)), shut(Sock(m));
  REQUIRE((two.connected() && long_one.connected() && half.connected() && shut.connected()));
  two.Send("{\"id\": 1, \"command\": \"help\"}\n{\"id\": 2, \"command\": \"inc\"}\n");
  long_one.Send("{\"id\": \"" + long_id + "\", \"command\": \"status\"}\n");
  half.Send("{\"id\": 3, \"comm");
  shut.Send("{\"id\": 4, \"command\": \"status\"}\n");
  shutdown(shut.fd(), SHUT_WR);
  REQUIRE(kill(m.pid(), SIGCONT) == 0);

  auto r = two.ReadReply(10s);
  REQUIRE(r);
  CHECK(r->request_id->text == "1");
  r = two.ReadReply(10s);
  REQUIRE(r);
  CHECK(r->request_id->text == "2");
  CHECK(r->message == "Incrementing number of workers from 1 -> 2");
  r = long_one.ReadReply(10s);
  REQUIRE(r);
  CHECK(r->request_id->text == long_id);
  CHECK_FALSE(r->error);
  half.Send("and\": \"state\"}\n");
  r = half.ReadReply(10s);
  REQUIRE(r);
  CHECK(r->request_id->text == "3");
  r = shut.ReadReply(10s);
  REQUIRE(r);
  CHECK(r->request_id->text == "4");
  CHECK(shut.WaitEof(10s));
  CHECK(Status(m).target == 2);
}

TEST_CASE("inc, dec and set_workers change the pool and status agrees") {
  MasterRun m({"-n", "2", "-m", "0.1"}, {TEST_WORKER_BIN});
  REQUIRE(WaitForSocket(m));
  ControlClient c(Sock(m));
  auto r = c.Ask("{\"id\":1,\"command\":\"set_workers\",\"args\":[\"5\"]}\n");
  REQUIRE(r);
  CHECK(r->message == "Altering worker count, 2 -> 5. Will spin up additional workers.");
  REQUIRE(PollUntil([&] { return Status(m).ready == 5; }, 10s));
  core::PoolStatus st = Status(m);
  CHECK(st.target == 5);
  CHECK(st.workers.size() == 5);
  CHECK(LiveChildren(m) == 5);
  for (int i = 0; i < 5; ++i) CHECK(st.workers[static_cast<size_t>(i)].slot == i);

  r = c.Ask("{\"id\":2,\"command\":\"set_workers\",\"args\":[\"5\"]}\n");
  CHECK(r->message.empty());  // as Einhorn, when nothing changes
  r = c.Ask("{\"id\":3,\"command\":\"set_workers\",\"args\":[\"3\"]}\n");
  CHECK(r->message == "Altering worker count, 5 -> 3. Will gracefully terminate workers.");
  // Gone from /proc before the master has reaped them: wait for its view too.
  REQUIRE(PollUntil([&] { return LiveChildren(m) == 3 && Status(m).draining == 0; }, 10s));
  st = Status(m);
  CHECK(st.target == 3);
  CHECK(st.ready == 3);
  CHECK(st.draining == 0);

  CHECK(c.Ask("{\"id\":4,\"command\":\"inc\"}\n")->message ==
        "Incrementing number of workers from 3 -> 4");
  REQUIRE(PollUntil([&] { return Status(m).ready == 4 && LiveChildren(m) == 4; }, 10s));
  // SIGTTIN and SIGTTOU resize too.
  m.process().Signal(SIGTTOU);
  REQUIRE(PollUntil([&] { return Status(m).target == 3 && LiveChildren(m) == 3; }, 10s));
  m.process().Signal(SIGTTIN);
  REQUIRE(PollUntil([&] { return Status(m).ready == 4; }, 10s));
  CHECK(m.LogHas("control: inc from SIGTTIN"));
}

TEST_CASE("die drains the workers and the master exits 0 and the socket is removed") {
  MasterRun m({"-n", "2", "-m", "0"}, {TEST_WORKER_BIN, "--report", "{reports}"});
  REQUIRE(m.WaitForWorkers(2));
  ControlClient c(Sock(m));
  auto r = c.Ask("{\"id\":1,\"command\":\"die\",\"args\":[\"TERM\"]}\n");
  REQUIRE(r);
  CHECK(r->message == "Einhorn is going down! ");
  const auto status = m.process().WaitExit(10s);
  REQUIRE(status.has_value());
  CHECK(status->code == 0);
  for (const auto& [pid, report] : m.Reports()) {
    CHECK(m.SignalsOf(pid) == std::vector<std::string>{"TERM"});
  }
  CHECK_FALSE(FileExists(Sock(m)));
}

TEST_CASE("the command socket is 0600 whatever the umask, and a live one is not replaced") {
  const mode_t old = umask(0);
  MasterRun m({"-n", "1", "-m", "0"}, {TEST_WORKER_BIN});
  umask(old);
  REQUIRE(WaitForSocket(m));
  struct stat st {};
  REQUIRE(stat(Sock(m).c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0600);
  const Finished second = RunToExit({"-f", m.dir().File("other.lock"), "-e",
                                     m.dir().File("other.pid"), "--", TEST_WORKER_BIN},
                                    10s, {"TMPDIR=" + m.dir().path()});
  CHECK(second.status.code == 1);
  CHECK(second.err.find("command socket") != std::string::npos);
  CHECK(second.err.find("in use") != std::string::npos);
  CHECK(m.process().running());
}


TEST_CASE("a peer with another uid is refused unless allowed") {
  if (getuid() != 0) {
    MESSAGE("skipped: needs root to act as another user");
    return;
  }
  auto attempt = [](const std::string& path) {
    return AsNobody([&] {
      ControlClient c(path);
      if (!c.connected()) return 10;
      auto r = c.Ask("{\"id\":1,\"command\":\"inc\"}\n", 5s);
      if (!r) return 11;
      if (r->error && r->message.find("Permission denied") != std::string::npos) {
        return c.WaitEof(5s) ? 0 : 12;
      }
      return r->message.rfind("Incrementing", 0) == 0 ? 1 : 13;
    });
  };
  {
    MasterRun m({"-n", "1", "-m", "0"}, {TEST_WORKER_BIN});
    REQUIRE(WaitForSocket(m));
    // Past the file mode, so that the credential check is what refuses.
    chmod(m.dir().path().c_str(), 0755);
    chmod(Sock(m).c_str(), 0666);
    CHECK(attempt(Sock(m)) == 0);
    CHECK(m.WaitForLog("command socket: refused uid 65534"));
    CHECK(Status(m).target == 1);
  }
  {
    MasterRun m({"-n", "1", "-m", "0", "--control-allow-uid", "nobody"}, {TEST_WORKER_BIN});
    REQUIRE(WaitForSocket(m));
    chmod(m.dir().path().c_str(), 0755);
    // The master opens the socket's mode itself once other users are allowed.
    struct stat st {};
    REQUIRE(stat(Sock(m).c_str(), &st) == 0);
    CHECK((st.st_mode & 0777) == 0666);
    CHECK(attempt(Sock(m)) == 1);
    CHECK(m.WaitForLog("control: inc from uid 65534"));
  }
}

TEST_CASE("garbage, huge lines and 200 concurrent clients leave the master serving") {
  MasterRun m({"-n", "2", "-m", "0"}, {TEST_WORKER_BIN, "--report", "{reports}"});
  REQUIRE(m.WaitForWorkers(2));
  const auto workers_before = m.LiveWorkers();

  {
    auto c = std::make_unique<ControlClient>(Sock(m));
    std::mt19937 rng(7);
    const std::string alphabet = "{}[]&*!|>-:,'\"%#\\ \t\r0aZ\x01\xff";
    const std::vector<std::string> hostile = {
        "a: &a [*a, *a]", "&x a: *x", std::string(5000, '[') + std::string(5000, ']'),
        "a: 1\n--- \nb: 2", "!!python/object:os.system {}", "%", "%%%0", "\x00\x01\x02",
        "{\"command\": {\"nested\": 1}}", "{\"command\": \"worker:ack\", \"pid\": \"1\"}"};
    size_t replies = 0;
    for (int i = 0; i < 1000; ++i) {
      std::string line;
      if (i < static_cast<int>(hostile.size())) {
        line = hostile[static_cast<size_t>(i)];
      } else {
        const size_t len = rng() % 60;
        for (size_t k = 0; k < len; ++k) line += alphabet[rng() % alphabet.size()];
      }
      for (char& ch : line) {
        if (ch == '\n') ch = ' ';
      }
      // worker:ack and worker:ping get no reply and close the connection: reconnect then.
      if (c->Send(line + "\n") && c->ReadReply(5s)) {
        ++replies;
      } else {
        c = std::make_unique<ControlClient>(Sock(m));
        REQUIRE(c->connected());
      }
    }
    CHECK(replies > 990);
  }
  {
    ControlClient c(Sock(m));
    // The master stops reading after 64 KiB, so this send may fail half-way; the reply is
    // waiting for us all the same.
    c.Send(std::string(1 << 20, 'x'));
    auto r = c.ReadReply(10s);
    REQUIRE(r);
    CHECK(r->message.rfind("Line too long", 0) == 0);
    CHECK(c.WaitEof(10s));
  }
  {
    std::vector<std::unique_ptr<ControlClient>> clients;
    for (int i = 0; i < 200; ++i) clients.push_back(std::make_unique<ControlClient>(Sock(m)));
    size_t ok = 0;
    for (auto& c : clients) {
      if (!c->connected()) continue;
      auto r = c->Ask("{\"id\":1,\"command\":\"status\"}\n");
      ok += r && !r->error;
    }
    CHECK(ok == 200);
  }
  CHECK(m.process().running());
  CHECK(m.LiveWorkers() == workers_before);
  for (const auto& [pid, report] : workers_before) CHECK(m.SignalsOf(pid).empty());
  CHECK(Status(m).ready == 2);
}

// Issue 14 item 12 / issue 15 item 5: Einhorn listens with SOMAXCONN, so 200 clients that
// connect at once all get in. A UNIX connect on a full backlog fails at once (EAGAIN) instead of
// waiting, so the backlog must hold the whole burst: the master is stopped while the clients
// connect, as if the burst came between two turns of its loop.
TEST_CASE("a burst of 200 clients connecting at once is accepted, and every one is answered") {
  MasterRun m({"-n", "1", "-m", "0"}, {TEST_WORKER_BIN});
  REQUIRE(WaitForSocket(m));
  REQUIRE(m.process().Signal(SIGSTOP));
  REQUIRE(PollUntil([&] { return ProcessState(m.pid()) == 'T'; }, 5s));
  sockaddr_un addr {};
  addr.sun_family = AF_UNIX;
  const std::string path = Sock(m);
  REQUIRE(path.size() < sizeof addr.sun_path);
  std::memcpy(addr.sun_path, path.c_str(), path.size());
  std::vector<int> fds;
  std::vector<int> errors;
  for (int i = 0; i < 200; ++i) {
    const int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    REQUIRE(fd >= 0);
    if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0) {
      fds.push_back(fd);
    } else {
      errors.push_back(errno);
      close(fd);
    }
  }
  REQUIRE(m.process().Signal(SIGCONT));
  CHECK_MESSAGE(errors.empty(), errors.size(), " connects failed, the first after ", fds.size(),
                ": ", std::string(std::strerror(errors.empty() ? 0 : errors.front())));
  const std::string ehlo = "{\"command\":\"ehlo\",\"user\":\"burst\"}\n";
  for (int fd : fds) {
    REQUIRE(send(fd, ehlo.data(), ehlo.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(ehlo.size()));
  }
  size_t answered = 0;
  const auto deadline = std::chrono::steady_clock::now() + 20s;
  std::vector<std::string> got(fds.size());
  std::vector<bool> done(fds.size(), false);
  while (answered < fds.size() && std::chrono::steady_clock::now() < deadline) {
    std::vector<pollfd> polls;
    std::vector<size_t> which;
    for (size_t i = 0; i < fds.size(); ++i) {
      if (done[i]) continue;
      polls.push_back(pollfd{fds[i], POLLIN, 0});
      which.push_back(i);
    }
    if (poll(polls.data(), polls.size(), 100) <= 0) continue;
    for (size_t k = 0; k < polls.size(); ++k) {
      if (!(polls[k].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      const size_t i = which[k];
      char buf[512];
      const ssize_t n = read(fds[i], buf, sizeof buf);
      if (n > 0) got[i].append(buf, static_cast<size_t>(n));
      if (n <= 0 || got[i].find('\n') != std::string::npos) {
        done[i] = true;
        answered += got[i].find("Welcome, burst!") != std::string::npos ? 1 : 0;
      }
    }
  }
  for (int fd : fds) close(fd);
  CHECK(answered == 200);
  CHECK(m.process().running());
}

}  // namespace
}  // namespace einhorn::test
