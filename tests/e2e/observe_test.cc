// Seeing what the pool does, with real processes: after spawns, a kill -9, an upgrade and an
// upgrade that rolls back, `einhornctl events --json` and `einhornctl metrics` agree with what
// happened; --metrics-listen answers curl on TCP and on a UNIX socket and shrugs off garbage;
// --log-format json and the journal's priority prefixes.
#include <arpa/inet.h>
#include <doctest/doctest.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>
#include <yaml-cpp/yaml.h>

#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "control_client.h"
#include "harness.h"
#include "pool_query.h"

namespace einhorn::test {
namespace {

const std::vector<std::string> kQuiet = {"EINHORN_EXAMPLE_QUIET=1"};

// A worker whose next generation crashes at once while the file `crash` exists.
std::string CrashableWorker(const TempDir& d) {
  const std::string path = d.File("worker.sh");
  WriteFile(path,
            "#!/bin/sh\n"
            "[ -e '" + d.File("crash") + "' ] && exit 3\n"
            "exec '" EXAMPLE_HTTP_BIN "' --ack\n",
            0755);
  return path;
}

Finished Ctl(const MasterRun& m, std::vector<std::string> args) {
  args.insert(args.begin(), {EINHORNCTL_BIN, "-d", Sock(m)});
  return RunProgram(std::move(args), 20s);
}

// The value of one sample line (`name{labels} value`) of an exposition, or -1.
double Sample(const std::string& text, const std::string& series) {
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    if (line.rfind(series + " ", 0) == 0) return std::stod(line.substr(series.size() + 1));
  }
  return -1;
}

// The log's lines that contain `needle`.
int CountLines(const std::string& log, const std::string& needle) {
  std::istringstream in(log);
  int n = 0;
  for (std::string line; std::getline(in, line);) n += line.find(needle) != std::string::npos;
  return n;
}

// Connects to 127.0.0.1:port, sends `bytes` (as much as the peer takes), then reads until EOF.
// nullopt if the connection fails or nothing ends it within the timeout.
std::optional<std::string> RawHttp(int port, const std::string& bytes,
                                   std::chrono::milliseconds timeout = 10s) {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return std::nullopt;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    close(fd);
    return std::nullopt;
  }
  size_t sent = 0;
  while (sent < bytes.size()) {
    const ssize_t n = send(fd, bytes.data() + sent, bytes.size() - sent, MSG_NOSIGNAL);
    if (n <= 0) break;  // the server answered and closed: read what it said
    sent += static_cast<size_t>(n);
  }
  std::string got;
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      close(fd);
      return std::nullopt;
    }
    pollfd p{fd, POLLIN, 0};
    if (poll(&p, 1, static_cast<int>(left.count())) <= 0) continue;
    char buf[4096];
    const ssize_t n = recv(fd, buf, sizeof buf, 0);
    if (n <= 0) break;  // EOF, or a reset after the answer
    got.append(buf, static_cast<size_t>(n));
  }
  close(fd);
  return got;
}

int PortOf(const std::string& address) { return std::stoi(address.substr(address.rfind(':') + 1)); }

TEST_CASE("events and metrics agree with spawns, a kill -9, an upgrade and a rollback") {
  TempDir d;
  MasterRun m({"-n", "2", "-m", "manual", "-b", "127.0.0.1:0", "-t", "5", "--metrics-listen",
               "127.0.0.1:0"},
              {"/bin/sh", CrashableWorker(d)}, kQuiet);
  REQUIRE(PollUntil([&] { return PoolSettled(m, 2, 1); }, 10s));
  const std::string address = MetricsAddress(m);
  REQUIRE_FALSE(address.empty());

  // kill -9 one worker: its slot is refilled.
  const std::set<pid_t> first = Pids(m);
  const pid_t victim = *first.begin();
  REQUIRE(kill(victim, SIGKILL) == 0);
  REQUIRE(PollUntil([&] { return PoolSettled(m, 2, 1) && !Pids(m).count(victim); }, 10s));

  const UpgradeRun good = RunUpgrade(m);
  REQUIRE(good.last == "Upgrade done");
  REQUIRE(PollUntil([&] { return PoolSettled(m, 2, 2); }, 10s));
  WriteFile(d.File("crash"), "");
  const UpgradeRun bad = RunUpgrade(m);
  REQUIRE(bad.error);
  REQUIRE(PollUntil([&] { return PoolSettled(m, 2, 2); }, 10s));

  // The ring, as einhornctl events --json prints it: one JSON object per line.
  const Finished events = Ctl(m, {"events", "--json"});
  REQUIRE(events.status.code == 0);
  std::map<std::string, std::vector<YAML::Node>> by_kind;
  std::set<long long> seqs;
  std::istringstream lines(events.out);
  for (std::string line; std::getline(lines, line);) {
    const YAML::Node e = YAML::Load(line);
    REQUIRE(e.IsMap());
    by_kind[e["event"].as<std::string>()].push_back(e);
    seqs.insert(e["seq"].as<long long>());
  }
  REQUIRE_FALSE(seqs.empty());
  CHECK(*seqs.rbegin() - *seqs.begin() + 1 == static_cast<long long>(seqs.size()));  // no gaps
  bool victim_seen = false;
  for (const YAML::Node& e : by_kind["exit"]) {
    if (e["pid"].as<pid_t>() != victim) continue;
    victim_seen = true;
    CHECK(e["signal"].as<int>() == 9);
    CHECK(e["exit_code"].IsNull());
    CHECK_FALSE(e["during_drain"].as<bool>());
    CHECK(e["generation"].as<int>() == 1);
  }
  CHECK(victim_seen);
  CHECK(by_kind["upgrade_start"].size() == 2);
  REQUIRE(by_kind["upgrade_done"].size() == 1);
  CHECK(by_kind["upgrade_done"][0]["to"].as<int>() == 2);
  REQUIRE(by_kind["upgrade_rollback"].size() == 1);
  CHECK(by_kind["upgrade_rollback"][0]["to"].as<int>() == 3);
  CHECK(by_kind["upgrade_rollback"][0]["from"].as<int>() == 2);
  CHECK(by_kind["upgrade_rollback"][0]["detail"].as<std::string>().find("new workers failed") !=
        std::string::npos);
  // Both upgrades re-exec'd the master first; the ring came along.
  int reloads_done = 0;
  for (const YAML::Node& e : by_kind["reload"]) reloads_done += e["detail"].as<std::string>() == "done";
  CHECK(reloads_done == 2);
  // Every spawn the log tells of is in the ring, with its pid.
  const std::string log = m.Log();
  CHECK(static_cast<int>(by_kind["spawn"].size()) == CountLines(log, "spawned worker "));
  for (const YAML::Node& e : by_kind["spawn"]) {
    CHECK(log.find("spawned worker " + e["pid"].as<std::string>() + " ") != std::string::npos);
  }
  // The upgrade and control commands carry who asked.
  REQUIRE_FALSE(by_kind["control"].empty());
  CHECK(by_kind["control"][0]["by"].as<std::string>().rfind("uid ", 0) == 0);

  // The counters say the same.
  const Finished metrics = Ctl(m, {"metrics"});
  REQUIRE(metrics.status.code == 0);
  const std::string& text = metrics.out;
  CHECK(Sample(text, "einhorn_spawns_total") == static_cast<double>(by_kind["spawn"].size()));
  CHECK(Sample(text, "einhorn_upgrades_total{outcome=\"rolled_back\"}") == 1);
  CHECK(Sample(text, "einhorn_upgrades_total{outcome=\"succeeded\"}") == 1);
  CHECK(Sample(text, "einhorn_worker_exits_total{cause=\"signal\",during_drain=\"false\"}") == 1);
  CHECK(Sample(text, "einhorn_worker_exits_total{cause=\"error_exit\",during_drain=\"false\"}") ==
        3);  // the crashing generation 3, until the rollback
  CHECK(Sample(text, "einhorn_reloads_total{outcome=\"done\"}") == 2);
  CHECK(Sample(text, "einhorn_acks_total") == static_cast<double>(by_kind["ready"].size()));
  CHECK(Sample(text, "einhorn_upgrade_duration_seconds_count") == 2);
  CHECK(Sample(text, "einhorn_worker_time_to_ready_seconds_count") ==
        static_cast<double>(by_kind["ready"].size()));
  CHECK(Sample(text, "einhorn_workers{state=\"ready\",generation=\"2\"}") == 2);
  CHECK(Sample(text, "einhorn_target_workers") == 2);
  CHECK(Sample(text, "einhorn_control_commands_total{command=\"upgrade\"}") == 2);
  CHECK(Sample(text, "process_resident_memory_bytes") > 0);
  CHECK(Sample(text, "process_open_fds") > 3);
  const std::string listener = "127.0.0.1:" + std::to_string(*m.Port());
  CHECK(Sample(text, "einhorn_listener_accept_queue{listener=\"" + listener + "\"}") == 0);
  CHECK(Sample(text, "einhorn_listener_backlog{listener=\"" + listener + "\"}") == 100);
  CHECK(Sample(text, "einhorn_host_tcp_listen_overflows_total") >= 0);

  // The human lines and the status's listeners.
  const Finished human = Ctl(m, {"events"});
  CHECK(human.out.rfind("TIME ", 0) == 0);
  CHECK(human.out.find("  exit ") != std::string::npos);
  CHECK(human.out.find("signal 9 after ") != std::string::npos);
  const Finished status = Ctl(m, {"status"});
  CHECK(status.out.find("listener " + listener + ": accept queue 0/100\n") != std::string::npos);
  MESSAGE("einhornctl status:\n" << status.out << "\neinhornctl events:\n" << human.out);

  // The endpoint serves the same text (counters may only have grown: our own requests).
  const Finished curl =
      RunProgram({"curl", "-sS", "--max-time", "10", "-i", "http://" + address + "/metrics"});
  REQUIRE(curl.status.code == 0);
  CHECK(curl.out.rfind("HTTP/1.1 200 OK\r\n", 0) == 0);
  CHECK(curl.out.find("Content-Type: text/plain; version=0.0.4; charset=utf-8\r\n") !=
        std::string::npos);
  CHECK(Sample(curl.out, "einhorn_spawns_total") == Sample(text, "einhorn_spawns_total"));
  CHECK(Sample(curl.out, "einhorn_upgrades_total{outcome=\"rolled_back\"}") == 1);
}

TEST_CASE("the metrics endpoint answers curl and survives garbage, floods and huge requests") {
  MasterRun m({"-n", "1", "-m", "0", "--metrics-listen", "127.0.0.1:0"}, {TEST_WORKER_BIN});
  REQUIRE(PollUntil([&] { return PoolSettled(m, 1, 1); }, 10s));
  const std::string address = MetricsAddress(m);
  REQUIRE_FALSE(address.empty());
  const int port = PortOf(address);
  const std::string url = "http://" + address;

  const Finished ok = RunProgram({"curl", "-sS", "--fail", "--max-time", "10", url + "/metrics"});
  CHECK(ok.status.code == 0);
  CHECK(Sample(ok.out, "einhorn_spawns_total") == 1);
  const Finished head = RunProgram({"curl", "-sS", "-I", "--max-time", "10", url + "/metrics"});
  CHECK(head.out.rfind("HTTP/1.1 200 OK", 0) == 0);
  CHECK(head.out.find("# HELP") == std::string::npos);
  const Finished missing =
      RunProgram({"curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "10", url + "/"});
  CHECK(missing.out == "404");
  const Finished post = RunProgram({"curl", "-s", "-o", "/dev/null", "-w", "%{http_code}",
                                    "--max-time", "10", "-d", "x=1", url + "/metrics"});
  CHECK(post.out == "405");
  const Finished http10 = RunProgram({"curl", "-sS", "--http1.0", "--max-time", "10", url + "/metrics"});
  CHECK(Sample(http10.out, "einhorn_target_workers") == 1);

  // Garbage gets a 400 and the connection is closed.
  const auto garbage = RawHttp(port, std::string("\x16\x03\x01\x00\xff\x00", 6) + "garbage\r\n\r\n");
  REQUIRE(garbage);
  CHECK(garbage->rfind("HTTP/1.1 400 Bad Request\r\n", 0) == 0);
  // A head that never ends: 431 once past the limit, however much more is sent.
  const auto huge = RawHttp(port, "GET /metrics HTTP/1.1\r\nX: " + std::string(1 << 20, 'a'));
  REQUIRE(huge);
  CHECK(huge->rfind("HTTP/1.1 431 ", 0) == 0);
  // A request split over many tiny writes still works.
  const auto whole = RawHttp(port, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
  REQUIRE(whole);
  CHECK(whole->find("einhorn_spawns_total 1\n") != std::string::npos);
  // Idle connections beyond the limit are closed at once; those within it time out.
  std::vector<int> idle;
  for (int i = 0; i < 100; ++i) {
    const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(port));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0) idle.push_back(fd);
  }
  // The master still serves its command socket and, once the idle ones go, the endpoint.
  CHECK(Status(m).has_value());
  for (int fd : idle) close(fd);
  CHECK(PollUntil(
      [&] {
        const auto again = RawHttp(port, "GET /metrics HTTP/1.0\r\n\r\n", 2s);
        return again && again->find("einhorn_target_workers 1\n") != std::string::npos;
      },
      10s));
  CHECK_FALSE(m.process().WaitExit(0ms).has_value());
  CHECK(PoolSettled(m, 1, 1));
}

TEST_CASE("the metrics endpoint on a UNIX socket, and non-loopback addresses refused") {
  TempDir d;
  const std::string path = d.File("metrics.sock");
  MasterRun m({"-n", "1", "-m", "0", "--metrics-listen", "unix:" + path}, {TEST_WORKER_BIN});
  REQUIRE(PollUntil([&] { return PoolSettled(m, 1, 1); }, 10s));
  const Finished curl = RunProgram(
      {"curl", "-sS", "--fail", "--max-time", "10", "--unix-socket", path, "http://localhost/metrics"});
  CHECK(curl.status.code == 0);
  CHECK(Sample(curl.out, "einhorn_workers{state=\"ready\",generation=\"1\"}") == 1);
  // A reload keeps the endpoint (the socket travels across the exec).
  REQUIRE(Ctl(m, {"reload"}).status.code == 0);
  REQUIRE(PollUntil([&] { return m.LogHas("reloaded: einhorn-cpp"); }, 20s));
  const Finished after = RunProgram(
      {"curl", "-sS", "--fail", "--max-time", "10", "--unix-socket", path, "http://localhost/metrics"});
  CHECK(Sample(after.out, "einhorn_reloads_total{outcome=\"done\"}") == 1);

  for (const char* bad : {"0.0.0.0:9100", "10.1.2.3:9100", "localhost:9100", "[::]:9100"}) {
    CAPTURE(bad);
    const Finished refused = RunToExit({"--metrics-listen", bad, "--", TEST_WORKER_BIN});
    CHECK(refused.status.code == 2);
    CHECK(refused.err.find("--metrics-listen") != std::string::npos);
    CHECK(refused.err.find("loopback") != std::string::npos);
  }
}

TEST_CASE("--metrics-listen-public serves a non-loopback address, kept across a reload") {
  const Finished refused = RunToExit({"--metrics-listen", "0.0.0.0:0", "--", TEST_WORKER_BIN});
  CHECK(refused.status.code == 2);
  CHECK(refused.err.find("0.0.0.0 is not a loopback address") != std::string::npos);
  CHECK(refused.err.find("unless --metrics-listen-public is given") != std::string::npos);
  const Finished name = RunToExit(
      {"--metrics-listen-public", "--metrics-listen", "localhost:0", "--", TEST_WORKER_BIN});
  CHECK(name.status.code == 2);
  CHECK(name.err.find("localhost is not an IP address") != std::string::npos);

  MasterRun m({"-n", "1", "-m", "0", "--metrics-listen", "0.0.0.0:0", "--metrics-listen-public"},
              {TEST_WORKER_BIN});
  REQUIRE(PollUntil([&] { return PoolSettled(m, 1, 1); }, 10s));
  const std::string address = MetricsAddress(m);
  REQUIRE(address.rfind("0.0.0.0:", 0) == 0);
  const std::string url = "http://127.0.0.1:" + std::to_string(PortOf(address)) + "/metrics";
  const Finished curl = RunProgram({"curl", "-sS", "--fail", "--max-time", "10", url});
  CHECK(curl.status.code == 0);
  CHECK(Sample(curl.out, "einhorn_spawns_total") == 1);
  // The new image gets the option with the state and takes the same listener.
  REQUIRE(Ctl(m, {"reload"}).status.code == 0);
  REQUIRE(PollUntil([&] { return m.LogHas("reloaded: einhorn-cpp"); }, 20s));
  const Finished after = RunProgram({"curl", "-sS", "--fail", "--max-time", "10", url});
  CHECK(after.status.code == 0);
  CHECK(Sample(after.out, "einhorn_reloads_total{outcome=\"done\"}") == 1);
}

TEST_CASE("log lines as JSON with event fields, and journald priorities on text") {
  MasterRun json({"-n", "1", "-m", "0", "--log-format", "json"}, {TEST_WORKER_BIN});
  REQUIRE(PollUntil([&] { return PoolSettled(json, 1, 1); }, 10s));
  REQUIRE(json.WaitForLog("\"event\": \"ready\""));
  std::istringstream in(json.Log());
  int lines = 0, spawns = 0;
  for (std::string line; std::getline(in, line);) {
    const YAML::Node j = YAML::Load(line);
    REQUIRE_MESSAGE(j.IsMap(), line);
    CHECK(j["time"].as<std::string>().size() == 24);
    CHECK(j["level"].IsScalar());
    CHECK(j["message"].IsScalar());
    ++lines;
    if (j["event"] && j["event"].as<std::string>() == "spawn") {
      ++spawns;
      CHECK(j["pid"].as<pid_t>() == *Pids(json).begin());
      CHECK(j["slot"].as<int>() == 0);
      CHECK(j["generation"].as<int>() == 1);
    }
  }
  CHECK(lines >= 3);
  CHECK(spawns == 1);

  // JOURNAL_STREAM naming stderr (the log file here) switches the prefixes on.
  MasterRun journal(
      {"-n", "1", "-m", "0"}, {TEST_WORKER_BIN}, {},
      {"/bin/sh", "-c",
       "JOURNAL_STREAM=$(stat -L -c %d:%i /proc/self/fd/2) && export JOURNAL_STREAM && "
       "exec \"$@\"",
       "sh"});
  REQUIRE(PollUntil([&] { return PoolSettled(journal, 1, 1); }, 10s));
  REQUIRE(journal.WaitForLog("is ready"));
  std::istringstream jin(journal.Log());
  int prefixed = 0;
  for (std::string line; std::getline(jin, line);) {
    CHECK_MESSAGE(line.rfind("<6>", 0) == 0, line);
    prefixed += line.rfind("<6>", 0) == 0;
  }
  CHECK(prefixed >= 3);
  // Without it (or with one that names another file), no prefixes.
  MasterRun plain({"-n", "1", "-m", "0"}, {TEST_WORKER_BIN}, {"JOURNAL_STREAM=1:1"});
  REQUIRE(plain.WaitForLog("is ready"));
  CHECK(plain.Log().find("<6>") == std::string::npos);
}

}  // namespace
}  // namespace einhorn::test
