// The orchestrator's probes on --metrics-listen, against the real binary with curl: GET /livez
// answers while the loop turns, GET /readyz follows the workers' acks, the --ready-share and
// the master's stop (core/readiness.h decides; master/metrics_server.cc serves).
#include <doctest/doctest.h>
#include <signal.h>

#include <string>
#include <vector>

#include "harness.h"
#include "pool_query.h"

namespace einhorn::test {
namespace {

struct Answer {
  std::string code;  // "200", "503"...; empty if curl failed
  std::string body;
};

// curl's status code and body; `extra` goes before the URL (-I, --unix-socket PATH...).
Answer Probe(const std::string& url, std::vector<std::string> extra = {}) {
  std::vector<std::string> argv = {"curl", "-sS", "--max-time", "10", "-w", "\n%{http_code}"};
  argv.insert(argv.end(), extra.begin(), extra.end());
  argv.push_back(url);
  const Finished f = RunProgram(argv, 20s);
  if (f.status.code != 0) return {};
  const size_t nl = f.out.rfind('\n');
  if (nl == std::string::npos) return {};
  return {f.out.substr(nl + 1), f.out.substr(0, nl)};
}

// A worker that stays booting until DIR/go exists, then acks (-m manual) and ignores TERM, so
// that a stopping master stays stopping. With `first_at_once`, the first one acks at once.
std::string GatedWorker(const TempDir& d, bool first_at_once = false) {
  const std::string path = d.File("worker.sh");
  std::string script = "#!/bin/sh\n";
  if (first_at_once) {
    script += "mkdir '" + d.File("first") +
              "' 2>/dev/null && exec '" TEST_WORKER_BIN "' --ack json --ignore TERM\n";
  }
  script += "while [ ! -e '" + d.File("go") +
            "' ]; do sleep 0.05; done\n"
            "exec '" TEST_WORKER_BIN "' --ack json --ignore TERM\n";
  WriteFile(path, script, 0755);
  return path;
}

int Booting(const MasterRun& m) {
  const auto st = Status(m);
  return st ? st->booting : -1;
}

TEST_CASE("probes: /livez answers, /readyz waits for the acks and turns 503 once stopping") {
  TempDir d;
  MasterRun m({"-n", "2", "-m", "manual", "-t", "30", "--metrics-listen", "127.0.0.1:0"},
              {GatedWorker(d)});
  const std::string address = MetricsAddress(m);
  REQUIRE_FALSE(address.empty());
  const std::string url = "http://" + address;
  REQUIRE(PollUntil([&] { return Booting(m) == 2; }, 10s));

  const Answer live = Probe(url + "/livez");
  CHECK(live.code == "200");
  CHECK(live.body == "ok\n");
  // Booting workers are not ready.
  const Answer booting = Probe(url + "/readyz");
  CHECK(booting.code == "503");
  CHECK(booting.body == "not ready: ready 0/2, need 2\n");
  const Answer head = Probe(url + "/readyz", {"-I"});
  CHECK(head.code == "503");
  CHECK(head.body.find("not ready") == std::string::npos);
  CHECK(Probe(url + "/readyz", {"-X", "POST"}).code == "405");
  CHECK(Probe(url + "/ready").code == "404");

  WriteFile(d.File("go"), "", 0644);
  CHECK(PollUntil([&] { return Probe(url + "/readyz").code == "200"; }, 10s));
  CHECK(Probe(url + "/readyz").body == "ready 2/2\n");
  CHECK(Probe(url + "/livez", {"-I"}).code == "200");

  // TERM: the workers get SIGTERM and ignore it; the master is stopping, still answering.
  REQUIRE(m.process().Signal(SIGTERM));
  CHECK(PollUntil([&] { return Probe(url + "/readyz").code == "503"; }, 10s));
  const Answer stopping = Probe(url + "/readyz");
  CHECK(stopping.body.rfind("not ready: stopping", 0) == 0);
  CHECK(Probe(url + "/livez").code == "200");
  // A second TERM escalates to SIGKILL and the master exits 0.
  REQUIRE(m.process().Signal(SIGTERM));
  const auto exited = m.process().WaitExit(20s);
  REQUIRE(exited.has_value());
  CHECK(*exited == core::ExitStatus{false, 0});
}

TEST_CASE("probes: --ready-share and a resize, on a UNIX socket") {
  TempDir d;
  const std::string sock = d.File("metrics.sock");
  MasterRun m(
      {"-n", "2", "-m", "manual", "--ready-share", "50", "--metrics-listen", "unix:" + sock},
      {GatedWorker(d, true)});
  const std::string url = "http://localhost";
  const std::vector<std::string> via = {"--unix-socket", sock};
  CHECK(PollUntil([&] { return Probe(url + "/readyz", via).code == "200"; }, 10s));
  // One of two is half: ready, though the other still boots.
  CHECK(Probe(url + "/readyz", via).body == "ready 1/2\n");
  CHECK(Booting(m) == 1);
  CHECK(Probe(url + "/livez", via).body == "ok\n");

  // `set 4`: half is now 2, and the new workers boot: not ready until they ack.
  const Finished set = RunProgram({EINHORNCTL_BIN, "-d", Sock(m), "set", "4"}, 20s);
  CHECK(set.status.code == 0);
  CHECK(PollUntil([&] { return Probe(url + "/readyz", via).code == "503"; }, 10s));
  CHECK(Probe(url + "/readyz", via).body == "not ready: ready 1/4, need 2\n");
  WriteFile(d.File("go"), "", 0644);
  CHECK(PollUntil([&] { return Probe(url + "/readyz", via).body == "ready 4/4\n"; }, 10s));
}

}  // namespace
}  // namespace einhorn::test
