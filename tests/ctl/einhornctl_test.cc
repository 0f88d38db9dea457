// The einhornctl binary against a fake master on a real UNIX socket: exit codes, output,
// socket discovery, acks over a path and over EINHORN_SOCK_FD, streamed upgrades, and the
// interactive shell.
#include <doctest/doctest.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "fake_master.h"
#include "proc.h"

namespace einhorn::test {
namespace {

using namespace std::chrono_literals;
using core::wire::Request;

struct Ran {
  int code = -1;  // exit code; -1 if killed by a signal
  std::string out;
  std::string err;
};

// A private directory (also $TMPDIR) holding the master's socket and einhornctl's output.
class Bench {
 public:
  std::string Sock() const { return dir_.File("m.sock"); }
  const TempDir& dir() const { return dir_; }

  Ran Run(std::vector<std::string> args, std::vector<std::string> env = {},
          std::vector<int> fds = {}) {
    args.insert(args.begin(), EINHORNCTL_BIN);
    return RunArgv(std::move(args), std::move(env), std::move(fds));
  }

  Ran RunArgv(std::vector<std::string> argv, std::vector<std::string> env = {},
              std::vector<int> fds = {}, const std::string& stdin_path = "/dev/null") {
    Process::Options o;
    o.argv = std::move(argv);
    o.extra_env = {"TMPDIR=" + dir_.path(), "USER=tester"};
    o.extra_env.insert(o.extra_env.end(), env.begin(), env.end());
    // Hermetic even when the tests themselves run under einhorn.
    o.unset_env = {"EINHORN_SOCK_PATH", "EINHORN_SOCK_FD"};
    o.stdin_path = stdin_path;
    o.stdout_path = dir_.File("out");
    o.stderr_path = dir_.File("err");
    o.pass_fds = std::move(fds);
    Process p = Process::Start(o);
    const std::optional<core::ExitStatus> st = p.WaitExit(30s);
    REQUIRE_MESSAGE(st.has_value(), "einhornctl did not exit");
    Ran r;
    r.code = st->signaled ? -1 : st->code;
    r.out = ReadFile(dir_.File("out"));
    r.err = ReadFile(dir_.File("err"));
    return r;
  }

 private:
  TempDir dir_;
};

bool Has(const std::string& text, const std::string& needle) {
  return text.find(needle) != std::string::npos;
}

TEST_CASE("einhornctl: status prints the summary and the table") {
  Bench b;
  FakeMaster m(b.Sock(), EinhornLike());
  const Ran r = b.Run({"-d", b.Sock(), "status"});
  CHECK_MESSAGE(r.code == 0, r.err);
  CHECK(r.out.rfind("target 2 | generation 1 | ready 2/2 | booting 0 | draining 0 (master 4242",
                    0) == 0);
  CHECK(Has(r.out, "SLOT  INDEX  PID "));
  CHECK(Has(r.out, "5000"));
  REQUIRE(m.requests().size() == 1);
  CHECK(m.requests()[0].command == "status");
  CHECK(m.requests()[0].id->text == "1");
}

TEST_CASE("einhornctl: --json output parses") {
  Bench b;
  FakeMaster m(b.Sock(), EinhornLike());
  Ran r = b.Run({"status", "--json", "-d", b.Sock()});
  REQUIRE_MESSAGE(r.code == 0, r.err);
  nlohmann::json j = nlohmann::json::parse(r.out);
  CHECK(j["master_pid"] == 4242);
  CHECK(j["counts"]["ready"] == 2);
  CHECK(j["workers"][1]["pid"] == 5001);

  r = b.Run({"--json", "-d", b.Sock(), "inc", "2"});
  REQUIRE_MESSAGE(r.code == 0, r.err);
  j = nlohmann::json::parse(r.out);
  CHECK(j["error"] == false);
  CHECK(j["messages"] == nlohmann::json::array({"Incrementing number of workers from 2 -> 3",
                                                "Incrementing number of workers from 3 -> 4"}));
}

TEST_CASE("einhornctl: inc, dec and a refusal (exit 1)") {
  Bench b;
  FakeMaster m(b.Sock(), EinhornLike());
  Ran r = b.Run({"-d", b.Sock(), "inc"});
  CHECK(r.code == 0);
  CHECK(r.out == "Incrementing number of workers from 2 -> 3\n");
  r = b.Run({"-d", b.Sock(), "dec", "5"});
  CHECK(r.code == 1);
  CHECK(r.out ==
        "Decrementing number of workers from 3 -> 2\nDecrementing number of workers from 2 -> 1\n");
  CHECK(Has(r.err, "Can't decrease number of workers (already at 1)."));
  r = b.Run({"-d", b.Sock(), "--json", "dec"});
  CHECK(r.code == 1);
  CHECK(nlohmann::json::parse(r.out)["error"] == true);
  // One connection per run.
  CHECK(m.connections() == 3);
}

TEST_CASE("einhornctl: the exact request bytes") {
  Bench b;
  FakeMaster m(b.Sock(), EinhornLike());
  CHECK(b.Run({"-d", b.Sock(), "signal", "HUP"}).code == 0);
  CHECK(b.Run({"-d", b.Sock(), "die"}).code == 0);
  const std::vector<Request> reqs = m.requests();
  // `signal` asks for the pool first, to say whom the signal reached (Einhorn's reply is empty).
  REQUIRE(reqs.size() == 3);
  CHECK(reqs[0].command == "status");
  CHECK(reqs[1].command == "signal");
  CHECK(reqs[1].args == std::vector<std::string>{"HUP"});
  CHECK(reqs[2].command == "die");
  // Einhorn answers a `die` without args with "No args provided".
  CHECK(reqs[2].args_state == Request::ArgsState::kList);
  CHECK(reqs[2].args.empty());
}

TEST_CASE("einhornctl: usage errors exit 2") {
  Bench b;
  CHECK(b.Run({"frobnicate"}).code == 2);
  CHECK(b.Run({"inc", "0"}).code == 2);
  CHECK(b.Run({"-d", "x", "-c", "y", "status"}).code == 2);
  const Ran none = b.Run({});  // stdin is /dev/null, not a terminal
  CHECK(none.code == 2);
  CHECK(Has(none.err, "COMMAND is required"));
  const Ran up = b.Run({"upgrade", "--wait-timeout", "5"});
  CHECK(up.code == 2);
  CHECK(Has(up.err, "--wait"));
  CHECK(b.Run({"upgrade", "--wait", "--wait-timeout", "-3"}).code == 2);
  CHECK(b.Run({"reload", "now"}).code == 2);
  const Ran help = b.Run({"--help"});
  CHECK(help.code == 0);
  CHECK(Has(help.out, "set"));
}

TEST_CASE("einhornctl: no master exits 3 naming the path") {
  Bench b;
  const Ran r = b.Run({"status"});
  CHECK(r.code == 3);
  CHECK(r.err == "einhornctl: no master at " + b.dir().path() +
                     "/einhorn.sock (no such socket; is einhorn-cpp running? use -d PATH or -c "
                     "NAME)\n");
  CHECK(r.out.empty());
}

TEST_CASE("einhornctl: a master that stops answering exits 3 after --timeout") {
  Bench b;
  FakeMaster m(b.Sock(), [](const Request&) {
    Answer a;
    a.silent = true;
    return a;
  });
  const auto start = std::chrono::steady_clock::now();
  const Ran r = b.Run({"-d", b.Sock(), "--timeout", "0.3", "inc"});
  CHECK(r.code == 3);
  CHECK(Has(r.err, "no reply from the master within 0.3s"));
  CHECK(std::chrono::steady_clock::now() - start < 20s);
}

TEST_CASE("einhornctl: a master that hangs up exits 3") {
  Bench b;
  FakeMaster m(b.Sock(), [](const Request&) {
    Answer a;
    a.close = true;
    return a;
  });
  const Ran r = b.Run({"-d", b.Sock(), "inc"});
  CHECK(r.code == 3);
  CHECK(Has(r.err, "closed the connection"));
}

TEST_CASE("einhornctl: -c NAME and EINHORN_SOCK_PATH find the socket") {
  Bench b;
  FakeMaster web(b.dir().File("einhorn-web.sock"), EinhornLike());
  CHECK(b.Run({"-c", "web", "inc"}).code == 0);
  CHECK(web.requests().size() == 1);
  CHECK(b.Run({"inc"}, {"EINHORN_SOCK_PATH=" + b.dir().File("einhorn-web.sock")}).code == 0);
  CHECK(web.requests().size() == 2);
  FakeMaster plain(b.dir().File("einhorn.sock"), EinhornLike());
  CHECK(b.Run({"inc"}).code == 0);
  CHECK(plain.requests().size() == 1);
}

TEST_CASE("einhornctl: set --wait polls until the pool is ready") {
  Bench b;
  auto polls = std::make_shared<std::atomic<int>>(0);
  FakeMaster m(b.Sock(), [polls](const Request& r) {
    if (r.command == "set_workers")
      return Say("Altering worker count, 2 -> 3. Will spin up additional workers.");
    return StatusAnswer(++*polls < 4 ? MakeStatus(3, 1, 2) : MakeStatus(3, 3, 0));
  });
  const Ran r = b.Run({"-d", b.Sock(), "set", "3", "--wait"});
  CHECK_MESSAGE(r.code == 0, r.err);
  CHECK(polls->load() == 4);
  CHECK(r.out ==
        "Altering worker count, 2 -> 3. Will spin up additional workers.\n"
        "ready 3/3, booting 0, told to drain: 0 running, 0 exited\n");
  CHECK(m.requests().at(0).args == std::vector<std::string>{"3"});
}

TEST_CASE("einhornctl: set --wait times out with exit 4") {
  Bench b;
  FakeMaster m(b.Sock(), [](const Request& r) {
    if (r.command == "set_workers") return Say("Altering");
    return StatusAnswer(MakeStatus(3, 1, 2));
  });
  const Ran r = b.Run({"-d", b.Sock(), "set", "3", "--wait", "--timeout", "0.3"});
  CHECK(r.code == 4);
  CHECK(r.err ==
        "einhornctl: timed out after 0.3s: ready 1/3, booting 2, told to drain: 0 running, 0 "
        "exited\n");
}

TEST_CASE("einhornctl: ack over the socket path, EOF is the answer") {
  Bench b;
  FakeMaster m(b.Sock(), EinhornLike());
  Ran r = b.Run({"-d", b.Sock(), "ack"});
  CHECK_MESSAGE(r.code == 0, r.err);
  r = b.Run({"-d", b.Sock(), "ack", "31337"});
  CHECK_MESSAGE(r.code == 0, r.err);
  const std::vector<Request> reqs = m.requests();
  REQUIRE(reqs.size() == 2);
  CHECK(reqs[0].command == "worker:ack");
  CHECK(reqs[0].pid == ::getpid());  // einhornctl's parent: here the test, usually the worker
  CHECK_FALSE(reqs[0].id.has_value());
  CHECK(reqs[1].pid == 31337);
  CHECK(m.lines().at(1) == "{\"command\":\"worker:ack\",\"pid\":31337}");
}

TEST_CASE("einhornctl: ack on EINHORN_SOCK_FD (einhorn -g)") {
  int sv[2];
  REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
  Bench b;
  // No master at any path: the fd is the only way through.
  const Ran r = b.Run({"ack", "4321"}, {"EINHORN_SOCK_FD=3"}, {sv[1]});
  ::close(sv[1]);
  CHECK_MESSAGE(r.code == 0, r.err);
  std::string got;
  PollUntil(
      [&] {
        pollfd p{sv[0], POLLIN, 0};
        if (::poll(&p, 1, 0) <= 0) return false;
        char buf[256];
        const ssize_t n = ::read(sv[0], buf, sizeof buf);
        if (n <= 0) return true;  // EOF: einhornctl is gone
        got.append(buf, static_cast<size_t>(n));
        return !got.empty() && got.back() == '\n';
      },
      10s);
  ::close(sv[0]);
  CHECK(got == "{\"command\":\"worker:ack\",\"pid\":4321}\n");

  // -d wins over the fd.
  FakeMaster m(b.Sock(), EinhornLike());
  const Ran d = b.Run({"-d", b.Sock(), "ack", "5"}, {"EINHORN_SOCK_FD=3"});
  CHECK_MESSAGE(d.code == 0, d.err);
  CHECK(m.requests().size() == 1);

  // A stale number is a clear error, not a write to a random fd.
  const Ran bad = b.Run({"ack"}, {"EINHORN_SOCK_FD=9"});
  CHECK(bad.code == 3);
  CHECK(Has(bad.err, "EINHORN_SOCK_FD=9 is not an open file descriptor"));
}

TEST_CASE("einhornctl: raw streams every message") {
  Bench b;
  FakeMaster m(b.Sock(), [](const Request& r) {
    if (r.command == "upgrade") {
      return Stream(
          {"Upgrading smoothly, as commanded", "===> Launched 12388 (index: 3)", "Upgrade done"});
    }
    return Refuse("no");
  });
  const Ran r = b.Run({"-d", b.Sock(), "raw", "upgrade"});
  CHECK(r.code == 0);
  CHECK(r.out ==
        "Upgrading smoothly, as commanded\n===> Launched 12388 (index: 3)\nUpgrade done\n");
}

// A master whose upgrades end as `end`, `pause` apart; its status shows one generation-2
// worker and no old one (upgrade --wait asks once the upgrade is done).
Script Upgrades(UpgradeEnd end, std::chrono::milliseconds pause = {}) {
  return [end, pause](const Request& r) {
    if (r.command == "status") {
      core::PoolStatus s = MakeStatus(1, 1, 0);
      s.generation = 2;
      for (core::WorkerStatus& w : s.workers) w.generation = 2;
      return StatusAnswer(s);
    }
    if (r.command != "upgrade" && r.command != "upgrade_fleet") return Refuse("no");
    Answer a = UpgradeAnswer(r.command, 1, end);
    a.pause = pause;
    return a;
  };
}

TEST_CASE("einhornctl: upgrade --wait streams until Upgrade done and exits 0") {
  Bench b;
  // 500 ms between messages: more than --timeout, which only bounds the first reply.
  FakeMaster m(b.Sock(), Upgrades(UpgradeEnd::kDone, 500ms));
  const Ran r = b.Run({"-d", b.Sock(), "--timeout", "0.2", "upgrade", "--wait"});
  CHECK_MESSAGE(r.code == 0, r.err);
  CHECK(r.out ==
        "Upgrading smoothly, as commanded\n"
        "Progress: 0/1 new ready, 0/1 old told to drain\n"
        "Progress: 1/1 new ready, 0/1 old told to drain\n"
        "draining worker 5000 (index 0, generation 1): replaced by a ready worker\n"
        "Progress: 1/1 new ready, 1/1 old told to drain\n"
        "Upgraded successfully to generation 2.\n"
        "Upgrade done\n");
  CHECK(r.err.empty());
  REQUIRE(m.requests().size() == 2);
  CHECK(m.requests()[1].command == "status");
  CHECK(m.requests()[0].command == "upgrade");
  CHECK(m.requests()[0].id->text == "1");
}

TEST_CASE("einhornctl: upgrade returns once the upgrade has begun") {
  Bench b;
  // The master keeps the connection and says nothing after its first reply.
  FakeMaster m(b.Sock(), Upgrades(UpgradeEnd::kSilence));
  const auto start = std::chrono::steady_clock::now();
  const Ran r = b.Run({"-d", b.Sock(), "--timeout", "20", "upgrade", "--fleet"});
  CHECK_MESSAGE(r.code == 0, r.err);
  CHECK(std::chrono::steady_clock::now() - start < 15s);
  CHECK(r.out == "Upgrading fleet, as commanded\n");
  CHECK(m.requests().at(0).command == "upgrade_fleet");

  const Ran j = b.Run({"-d", b.Sock(), "upgrade", "--json"});
  REQUIRE_MESSAGE(j.code == 0, j.err);
  CHECK(nlohmann::json::parse(j.out)["messages"] ==
        nlohmann::json::array({"Upgrading smoothly, as commanded"}));
}

TEST_CASE("einhornctl: upgrade --wait failure exits 1 with the reason on stderr") {
  Bench b;
  FakeMaster m(b.Sock(), Upgrades(UpgradeEnd::kFailed));
  const Ran r = b.Run({"-d", b.Sock(), "upgrade", "--wait"});
  CHECK(r.code == 1);
  CHECK(Has(r.out, "Progress: 0/1 new ready, 0/1 old told to drain\n"));
  CHECK_FALSE(Has(r.out, "failed"));
  CHECK(r.err ==
        "Upgrade to generation 2 failed: 3 new workers failed (the last: worker 5102 exited with "
        "status 3 before it was ready). Rolled back: generation 1 keeps serving (1 ready)\n");

  const Ran j = b.Run({"-d", b.Sock(), "--json", "upgrade", "--wait"});
  CHECK(j.code == 1);
  const nlohmann::json doc = nlohmann::json::parse(j.out);
  CHECK(doc["error"] == true);
  CHECK(doc["messages"].size() == 3);
  CHECK(Has(j.err, "Upgrade to generation 2 failed: "));
}

TEST_CASE("einhornctl: upgrade --wait exits 3 when the master hangs up, 4 when it goes silent") {
  Bench b;
  {
    FakeMaster m(b.Sock(), Upgrades(UpgradeEnd::kHangUp));
    const Ran r = b.Run({"-d", b.Sock(), "upgrade", "--wait"});
    CHECK(r.code == 3);
    CHECK(Has(r.out, "Progress: 0/1 new ready"));
    CHECK(Has(r.err, "the master closed the connection before the end of the upgrade"));
  }
  const std::string silent = b.dir().File("silent.sock");
  FakeMaster m(silent, Upgrades(UpgradeEnd::kSilence));
  const auto start = std::chrono::steady_clock::now();
  const Ran r = b.Run({"-d", silent, "upgrade", "--wait", "--wait-timeout", "0.3"});
  CHECK(r.code == 4);
  CHECK(Has(r.err, "no end of the upgrade within 0.3s (--wait-timeout)"));
  CHECK(std::chrono::steady_clock::now() - start < 20s);
}

TEST_CASE("einhornctl: reload") {
  Bench b;
  {
    FakeMaster m(b.Sock(), EinhornLike());
    const Ran r = b.Run({"-d", b.Sock(), "reload", "--no-wait"});
    CHECK_MESSAGE(r.code == 0, r.err);
    CHECK(r.out == "Reloading, as commanded\n");
    CHECK(m.requests().at(0).command == "reload");
  }
  {
    // Waiting (the default): the fake never reloads, so the deadline passes: exit 4.
    const std::string waiting = b.dir().File("waiting.sock");
    FakeMaster m(waiting, EinhornLike());
    const Ran r = b.Run({"-d", waiting, "reload", "--wait-timeout", "0.3"});
    CHECK(r.code == 4);
    CHECK(r.out.rfind("Reloading, as commanded\n", 0) == 0);
    CHECK(Has(r.err, "no outcome of the reload within 0.3s (--wait-timeout)"));
  }
  const std::string refusing = b.dir().File("refusing.sock");
  FakeMaster m(refusing, [](const Request&) {
    return Refuse("reload is not yet supported by einhorn-cpp 0.1.0");
  });
  const Ran r = b.Run({"-d", refusing, "reload"});
  CHECK(r.code == 1);
  CHECK(r.out.empty());
  CHECK(r.err == "reload is not yet supported by einhorn-cpp 0.1.0\n");
}

TEST_CASE("einhornctl: upgrade --wait on a terminal overwrites progress (script)") {
  if (::access("/usr/bin/script", X_OK) != 0) {
    MESSAGE("skipped: util-linux script(1) is not installed");
    return;
  }
  Bench b;
  FakeMaster m(b.Sock(), Upgrades(UpgradeEnd::kDone));
  const std::string cmd = std::string(EINHORNCTL_BIN) + " -d " + b.Sock() + " upgrade --wait";
  const Ran r = b.RunArgv({"/usr/bin/script", "-qec", cmd, "/dev/null"});
  CHECK_MESSAGE(r.code == 0, std::string(r.out + r.err));
  // The terminal turns "\n" into "\r\n".
  CHECK(Has(r.out,
            "Upgrading smoothly, as commanded\r\n"
            "\r\x1b[KProgress: 0/1 new ready, 0/1 old told to drain"
            "\r\x1b[KProgress: 1/1 new ready, 0/1 old told to drain\r\n"
            "draining worker 5000 (index 0, generation 1): replaced by a ready worker\r\n"
            "\r\x1b[KProgress: 1/1 new ready, 1/1 old told to drain\r\n"
            "Upgraded successfully to generation 2.\r\nUpgrade done\r\n"));
}

TEST_CASE("einhornctl: the interactive shell on a terminal (script)") {
  if (::access("/usr/bin/script", X_OK) != 0) {
    MESSAGE("skipped: util-linux script(1) is not installed");
    return;
  }
  Bench b;
  FakeMaster m(b.Sock(), EinhornLike());
  WriteFile(b.dir().File("in"), "inc\nset_workers 6\nquit\n");
  const std::string cmd = std::string(EINHORNCTL_BIN) + " -d " + b.Sock();
  const Ran r =
      b.RunArgv({"/usr/bin/script", "-qec", cmd, "/dev/null"}, {}, {}, b.dir().File("in"));
  CHECK_MESSAGE(r.code == 0, std::string(r.out + r.err));
  CHECK(Has(r.out, "Welcome, tester!"));
  CHECK(Has(r.out, "einhorn> "));
  CHECK(Has(r.out, "Incrementing number of workers from 2 -> 3"));
  CHECK(Has(r.out, "Altering worker count, 3 -> 6."));
  const std::vector<Request> reqs = m.requests();
  REQUIRE(reqs.size() == 3);
  CHECK(reqs[0].command == "ehlo");
  CHECK(reqs[0].user == "tester");
  CHECK(reqs[2].args == std::vector<std::string>{"6"});
}

}  // namespace
}  // namespace einhorn::test
