// The example workers in other languages (examples/{python,ruby,node,shell}) under the real
// master with -m manual: each acks, the HTTP ones answer on the inherited socket, a drained
// worker finishes the request (or job) in hand and exits 0, and SIGTERM stops them at once.
// An example whose interpreter is not installed is skipped with a message (CI installs them).
#include <arpa/inet.h>
#include <dirent.h>
#include <doctest/doctest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <set>
#include <sstream>
#include <thread>

#include "control_client.h"
#include "harness.h"
#include "pool_query.h"

namespace einhorn::test {
namespace {

// The absolute path of `name` found in PATH, as the master will find it; nullopt if missing.
// The pool as the master reports it, once it has exactly n ready workers.
std::optional<core::PoolStatus> WaitReady(const MasterRun& m, int n) {
  std::optional<core::PoolStatus> st;
  const bool ok = PollUntil(
      [&] {
        st = Status(m);
        return st && st->ready == n && static_cast<int>(st->workers.size()) == n;
      },
      15s);
  if (!ok) return std::nullopt;
  return st;
}

std::set<pid_t> Pids(const core::PoolStatus& st) {
  std::set<pid_t> pids;
  for (const auto& w : st.workers) pids.insert(w.pid);
  return pids;
}

// How the master logged the end of worker `pid` ("exit 0", "signal 15"), or "" if not yet.
std::string ExitOf(const MasterRun& m, pid_t pid) {
  std::istringstream log(m.Log());
  const std::string who = "worker " + std::to_string(pid) + " (";
  const std::string what = " exited with ";
  std::string line;
  while (std::getline(log, line)) {
    const size_t at = line.find(who);
    const size_t ex = line.find(what);
    if (at == std::string::npos || ex == std::string::npos || ex < at) continue;
    const size_t from = ex + what.size();
    return line.substr(from, line.find(" after", from) - from);
  }
  return "";
}

std::string WaitExitOf(const MasterRun& m, pid_t pid) {
  std::string how;
  PollUntil([&] { return !(how = ExitOf(m, pid)).empty(); }, 10s);
  return how;
}

// "hello from <pid>\n" -> pid; 0 for anything else.
pid_t HelloPid(const std::string& body) {
  const std::string prefix = "hello from ";
  if (body.rfind(prefix, 0) != 0 || body.back() != '\n') return 0;
  return static_cast<pid_t>(std::atol(body.c_str() + prefix.size()));
}

// A client connection whose request the test sends in two parts, so that a worker holds it
// half-read ("in flight") as long as the test wants.
class SlowRequest {
 public:
  explicit SlowRequest(int port) {
    fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    REQUIRE(fd_ >= 0);
    timeval tv{10, 0};
    setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd_, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<uint16_t>(port));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
    socklen_t len = sizeof a;
    REQUIRE(getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len) == 0);
    local_port_ = ntohs(a.sin_port);
    Send("GET / HTTP/1.0\r\nHost: localhost\r\n");
  }
  ~SlowRequest() { close(fd_); }
  SlowRequest(const SlowRequest&) = delete;
  SlowRequest& operator=(const SlowRequest&) = delete;

  int local_port() const { return local_port_; }
  // Ends the request and reads the whole response (the worker closes the connection).
  std::string Finish() {
    Send("\r\n");
    std::string response;
    char buf[4096];
    ssize_t n;
    while ((n = read(fd_, buf, sizeof buf)) > 0) response.append(buf, static_cast<size_t>(n));
    return response;
  }

 private:
  void Send(const std::string& s) {
    REQUIRE(send(fd_, s.data(), s.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(s.size()));
  }
  int fd_ = -1;
  int local_port_ = 0;
};

// The inode of the server side of the loopback connection from client port `from` to `port`,
// or 0 while no process has accepted it yet (a connection in the backlog has no inode).
unsigned long AcceptedInode(int port, int from) {
  std::ifstream tcp("/proc/net/tcp");
  std::string line;
  std::getline(tcp, line);  // header
  while (std::getline(tcp, line)) {
    std::istringstream fields(line);
    std::string slot, local, remote, state, queues, timer, retransmits, uid, timeout;
    unsigned long inode = 0;
    fields >> slot >> local >> remote >> state >> queues >> timer >> retransmits >> uid >>
        timeout >> inode;
    auto port_of = [](const std::string& address) {
      return std::stoi(address.substr(address.find(':') + 1), nullptr, 16);
    };
    if (local.find(':') == std::string::npos || remote.find(':') == std::string::npos) continue;
    if (port_of(local) == port && port_of(remote) == from) return inode;
  }
  return 0;
}

// Which of `pids` holds the socket with that inode, or 0.
pid_t HolderOf(unsigned long inode, const std::set<pid_t>& pids) {
  const std::string target = "socket:[" + std::to_string(inode) + "]";
  for (pid_t pid : pids) {
    const std::string dir = "/proc/" + std::to_string(pid) + "/fd";
    DIR* d = opendir(dir.c_str());
    if (d == nullptr) continue;
    bool found = false;
    while (dirent* e = readdir(d)) {
      char link[64] = {};
      const std::string path = dir + "/" + e->d_name;
      const ssize_t n = readlink(path.c_str(), link, sizeof link - 1);
      if (n > 0 && target == link) found = true;
    }
    closedir(d);
    if (found) return pid;
  }
  return 0;
}

// The whole story for one HTTP example, `interpreter script`.
void CheckHttpExample(const std::string& interpreter_name, const std::string& script,
                      const std::string& ack_mode = "manual") {
  const auto interpreter = LookUpInPath(interpreter_name);
  if (!interpreter) {
    MESSAGE("skipped: " << interpreter_name << " is not installed (it is in CI)");
    return;
  }
  MasterRun m({"-n", "2", "-m", ack_mode, "-b", "127.0.0.1:0"}, {*interpreter, script});

  // Ready means acked: under -m manual or notify, nothing else makes a worker ready.
  const auto st = WaitReady(m, 2);
  REQUIRE_MESSAGE(st.has_value(), m.Log());
  const std::set<pid_t> workers = Pids(*st);
  const auto port = m.Port();
  REQUIRE(port.has_value());

  // Real requests to the master's port: only a worker accepting on the inherited socket can
  // answer them.
  for (int i = 0; i < 5; ++i) {
    const std::string raw = HttpGetRaw("127.0.0.1", *port, 5s);
    CHECK(raw.rfind("HTTP/1.", 0) == 0);
    CHECK(raw.find(" 200 OK\r\n") != std::string::npos);
    CHECK(raw.find("Content-Length: ") != std::string::npos);
    const std::string body = raw.substr(raw.find("\r\n\r\n") + 4);
    CHECK_MESSAGE(workers.count(HelloPid(body)) == 1, body);
  }

  // A request in flight: accepted by a worker, half sent.
  SlowRequest slow(*port);
  pid_t holder = 0;
  REQUIRE(PollUntil(
      [&] {
        const unsigned long inode = AcceptedInode(*port, slow.local_port());
        return inode != 0 && (holder = HolderOf(inode, workers)) != 0;
      },
      5s));

  // Drain that worker, as `dec` or an upgrade would, and give it a moment to act on the signal
  // so that the request really completes during the drain (the test passes either way).
  REQUIRE(kill(holder, SIGUSR2) == 0);
  std::this_thread::sleep_for(300ms);
  const std::string raw = slow.Finish();
  CHECK(raw.find(" 200 OK\r\n") != std::string::npos);
  CHECK_MESSAGE(
      raw.find("\r\n\r\nhello from " + std::to_string(holder) + "\n") != std::string::npos, raw);
  CHECK(WaitExitOf(m, holder) == "exit 0");

  // The master replaces it in its slot; the newcomer acks and serves too.
  const auto after = WaitReady(m, 2);
  REQUIRE(after.has_value());
  CHECK(Pids(*after).count(holder) == 0);
  CHECK(Pids(*after).count(HelloPid(HttpGet("127.0.0.1", *port, 5s))) == 1);

  // SIGTERM to the master reaches every worker, which exits 0 at once.
  REQUIRE(m.process().Signal(SIGTERM));
  const auto status = m.process().WaitExit(10s);
  REQUIRE(status.has_value());
  CHECK(status->code == 0);
  for (pid_t pid : Pids(*after)) CHECK(ExitOf(m, pid) == "exit 0");
}

TEST_CASE("examples: the Python worker acks, serves, drains on USR2 and stops on TERM") {
  CheckHttpExample("python3", EXAMPLES_DIR "/python/worker.py");
}

TEST_CASE("examples: the Python worker under -m notify says READY=1 on its NOTIFY_SOCKET") {
  CheckHttpExample("python3", EXAMPLES_DIR "/python/worker.py", "notify");
}

TEST_CASE("examples: the Ruby worker acks, serves, drains on USR2 and stops on TERM") {
  CheckHttpExample("ruby", EXAMPLES_DIR "/ruby/worker.rb");
}

TEST_CASE("examples: the Node.js worker acks, serves, drains on USR2 and stops on TERM") {
  CheckHttpExample("node", EXAMPLES_DIR "/node/worker.js");
}

// The shell example is a job loop, not an HTTP server (sh cannot accept on a socket), so
// this checks the ack, the drain and the stop only.
TEST_CASE("examples: the shell worker acks, finishes its job on dec and stops on TERM") {
  const auto sh = LookUpInPath("sh");
  REQUIRE(sh.has_value());
  std::string ctl_dir = EINHORNCTL_BIN;
  ctl_dir.erase(ctl_dir.rfind('/'));
  const char* path = std::getenv("PATH");
  MasterRun m(
      {"-n", "2", "-m", "manual"}, {*sh, EXAMPLES_DIR "/shell/worker.sh"},
      {"PATH=" + ctl_dir + ":" + (path != nullptr ? path : "/usr/bin:/bin"), "JOB_SECONDS=1"});
  const auto st = WaitReady(m, 2);
  REQUIRE_MESSAGE(st.has_value(), m.Log());

  // `dec` drains the worker in the highest slot with SIGUSR2.
  pid_t victim = 0;
  for (const auto& w : st->workers) {
    if (w.slot == 1) victim = w.pid;
  }
  REQUIRE(victim != 0);
  // Once its first job is done, the next one is in hand.
  REQUIRE(m.WaitForLog("worker " + std::to_string(victim) + ": job 1 done", 5s));
  {
    ControlClient c(Sock(m));
    const auto reply = c.Ask("{\"id\": 1, \"command\": \"dec\"}\n");
    REQUIRE(reply.has_value());
    CHECK_FALSE(reply->error);
  }
  CHECK(WaitExitOf(m, victim) == "exit 0");
  // It said which job was in hand when the signal came, finished that one, and took no other.
  const std::string log = m.Log();
  const std::string said = "worker " + std::to_string(victim) + ": draining: finishing job ";
  const size_t draining = log.find(said);
  REQUIRE_MESSAGE(draining != std::string::npos, log);
  const int job = std::atoi(log.c_str() + draining + said.size());
  const std::string me = "worker " + std::to_string(victim) + ": ";
  CHECK(log.find(me + "job " + std::to_string(job) + " done") != std::string::npos);
  CHECK(log.find(me + "drained after " + std::to_string(job) + " jobs") != std::string::npos);

  const auto after = WaitReady(m, 1);
  REQUIRE(after.has_value());
  const pid_t survivor = after->workers.at(0).pid;

  // SIGTERM: the job in hand is abandoned, the worker exits 0 at once.
  REQUIRE(m.process().Signal(SIGTERM));
  const auto status = m.process().WaitExit(10s);
  REQUIRE(status.has_value());
  CHECK(status->code == 0);
  CHECK(ExitOf(m, survivor) == "exit 0");
  CHECK(m.LogHas("worker " + std::to_string(survivor) + ": stopped"));
}

}  // namespace
}  // namespace einhorn::test
