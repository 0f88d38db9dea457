// core/metrics.h and core/telemetry.h: counters fed by events, the exposition text byte for
// byte, label escaping, /proc/net/netstat, and the --metrics-listen address rules.
#include "core/metrics.h"

#include <doctest/doctest.h>

#include <string>

#include "core/telemetry.h"

namespace einhorn::core {
namespace {

Event Of(EventKind kind) {
  Event e;
  e.kind = kind;
  return e;
}

// The lines of `text` that start with `prefix`, joined.
std::string Lines(const std::string& text, const std::string& prefix) {
  std::string out;
  size_t at = 0;
  while (at < text.size()) {
    const size_t end = text.find('\n', at);
    const std::string line = text.substr(at, end - at);
    if (line.rfind(prefix, 0) == 0) out += line + "\n";
    at = end == std::string::npos ? text.size() : end + 1;
  }
  return out;
}

TEST_CASE("metrics: events move the counters they stand for") {
  Telemetry t;
  t.Record(Of(EventKind::kSpawn));
  t.Record(Of(EventKind::kSpawn));
  Event ready = Of(EventKind::kReady);
  ready.seconds = 0.3;
  t.Record(ready);
  Event killed = Of(EventKind::kExit);
  killed.exit = ExitStatus{true, 9};
  t.Record(killed);
  Event drained = Of(EventKind::kExit);
  drained.exit = ExitStatus{false, 0};
  drained.during_drain = true;
  t.Record(drained);
  Event failed = Of(EventKind::kExit);
  failed.exit = ExitStatus{false, 3};
  t.Record(failed);
  t.Record(Of(EventKind::kRespawnDelay));
  Event done = Of(EventKind::kUpgradeDone);
  done.seconds = 4;
  t.Record(done);
  Event rolled = Of(EventKind::kUpgradeRollback);
  rolled.seconds = 70;
  t.Record(rolled);
  Event reload = Of(EventKind::kReload);
  reload.detail = "done";
  t.Record(reload);
  reload.detail = "failed: no binary";
  t.Record(reload);
  Event refused = Of(EventKind::kControlRefused);
  refused.detail = "too_many_connections";
  t.Record(refused);
  t.CountCommand("inc");
  t.CountCommand("inc");
  t.CountCommand("bogus \"verb\"");
  t.CountCommand("invalid");

  const Counters& c = t.counters();
  CHECK(c.spawns == 2);
  CHECK(c.acks == 1);
  CHECK(c.exits[static_cast<size_t>(ExitCause::kSignal)][0] == 1);
  CHECK(c.exits[static_cast<size_t>(ExitCause::kCleanExit)][1] == 1);
  CHECK(c.exits[static_cast<size_t>(ExitCause::kErrorExit)][0] == 1);
  CHECK(c.respawn_backoffs == 1);
  CHECK(c.upgrades[0] == 1);
  CHECK(c.upgrades[1] == 1);
  CHECK(c.reloads[0] == 1);
  CHECK(c.reloads[1] == 1);
  CHECK(c.refused_peers[1] == 1);
  CHECK(c.commands.at("inc") == 2);
  CHECK(c.commands.at("unknown") == 1);  // a client cannot invent labels
  CHECK(c.commands.at("invalid") == 1);
  CHECK(c.time_to_ready.count == 1);
  CHECK(c.upgrade_duration.count == 2);
  CHECK(c.upgrade_duration.sum == 74);
  CHECK(t.ring().last_seq() == 12);  // every event is in the ring, commands are not

  const Telemetry::Snapshot saved = t.Save();
  Telemetry restored;
  restored.Restore(saved);
  CHECK(restored.counters() == c);
  CHECK(restored.Save() == saved);
}

TEST_CASE("metrics: histograms count into the first bucket that holds the value") {
  Histogram h = Histogram::WithBounds({0.1, 1, 10});
  for (double v : {0.05, 0.1, 0.5, 1.0, 99.0}) h.Observe(v);
  CHECK(h.counts == std::vector<std::uint64_t>{2, 2, 0, 1});
  CHECK(h.count == 5);
  CHECK(h.sum == doctest::Approx(100.65));
}

TEST_CASE("metrics: the exposition text for a small pool, byte for byte") {
  Counters c;
  c.spawns = 3;
  c.acks = 2;
  c.exits[static_cast<size_t>(ExitCause::kSignal)][0] = 1;
  c.upgrades[1] = 1;
  c.commands["status"] = 4;
  c.time_to_ready.Observe(0.2);
  c.time_to_ready.Observe(1.5);
  c.upgrade_duration.Observe(12);
  MetricsInput in;
  in.counters = &c;
  in.target = 2;
  in.generation = 3;
  in.workers[{"ready", 3}] = 2;
  in.workers[{"booting", 3}] = 0;
  in.workers[{"draining", 2}] = 1;
  in.resident_memory_bytes = 2'621'440;
  in.open_fds = 17;
  in.listeners = {{"127.0.0.1:8080", 0, 100}, {"udp:x", std::nullopt, std::nullopt}};
  in.host = HostListenStats{5, 7};
  const std::string text = RenderMetrics(in);

  CHECK(text.rfind("# HELP einhorn_spawns_total Workers started.\n"
                   "# TYPE einhorn_spawns_total counter\n"
                   "einhorn_spawns_total 3\n",
                   0) == 0);
  CHECK(Lines(text, "einhorn_worker_exits_total") ==
        "einhorn_worker_exits_total{cause=\"clean_exit\",during_drain=\"false\"} 0\n"
        "einhorn_worker_exits_total{cause=\"clean_exit\",during_drain=\"true\"} 0\n"
        "einhorn_worker_exits_total{cause=\"error_exit\",during_drain=\"false\"} 0\n"
        "einhorn_worker_exits_total{cause=\"error_exit\",during_drain=\"true\"} 0\n"
        "einhorn_worker_exits_total{cause=\"signal\",during_drain=\"false\"} 1\n"
        "einhorn_worker_exits_total{cause=\"signal\",during_drain=\"true\"} 0\n");
  CHECK(Lines(text, "einhorn_upgrades_total") ==
        "einhorn_upgrades_total{outcome=\"succeeded\"} 0\n"
        "einhorn_upgrades_total{outcome=\"rolled_back\"} 1\n");
  CHECK(Lines(text, "einhorn_control_commands_total{command=\"status\"}") ==
        "einhorn_control_commands_total{command=\"status\"} 4\n");
  CHECK(Lines(text, "einhorn_control_commands_total{command=\"inc\"}") ==
        "einhorn_control_commands_total{command=\"inc\"} 0\n");
  CHECK(Lines(text, "einhorn_worker_time_to_ready_seconds") ==
        "einhorn_worker_time_to_ready_seconds_bucket{le=\"0.005\"} 0\n"
        "einhorn_worker_time_to_ready_seconds_bucket{le=\"0.01\"} 0\n"
        "einhorn_worker_time_to_ready_seconds_bucket{le=\"0.025\"} 0\n"
        "einhorn_worker_time_to_ready_seconds_bucket{le=\"0.05\"} 0\n"
        "einhorn_worker_time_to_ready_seconds_bucket{le=\"0.1\"} 0\n"
        "einhorn_worker_time_to_ready_seconds_bucket{le=\"0.25\"} 1\n"
        "einhorn_worker_time_to_ready_seconds_bucket{le=\"0.5\"} 1\n"
        "einhorn_worker_time_to_ready_seconds_bucket{le=\"1\"} 1\n"
        "einhorn_worker_time_to_ready_seconds_bucket{le=\"2.5\"} 2\n"
        "einhorn_worker_time_to_ready_seconds_bucket{le=\"5\"} 2\n"
        "einhorn_worker_time_to_ready_seconds_bucket{le=\"10\"} 2\n"
        "einhorn_worker_time_to_ready_seconds_bucket{le=\"30\"} 2\n"
        "einhorn_worker_time_to_ready_seconds_bucket{le=\"60\"} 2\n"
        "einhorn_worker_time_to_ready_seconds_bucket{le=\"120\"} 2\n"
        "einhorn_worker_time_to_ready_seconds_bucket{le=\"+Inf\"} 2\n"
        "einhorn_worker_time_to_ready_seconds_sum 1.7\n"
        "einhorn_worker_time_to_ready_seconds_count 2\n");
  CHECK(Lines(text, "einhorn_upgrade_duration_seconds_bucket{le=\"10\"}") ==
        "einhorn_upgrade_duration_seconds_bucket{le=\"10\"} 0\n");
  CHECK(Lines(text, "einhorn_upgrade_duration_seconds_bucket{le=\"30\"}") ==
        "einhorn_upgrade_duration_seconds_bucket{le=\"30\"} 1\n");
  // The gauges of the instant, from the tail of the text to its end.
  CHECK(text.substr(text.find("# HELP einhorn_workers ")) ==
        "# HELP einhorn_workers Live workers by state and generation.\n"
        "# TYPE einhorn_workers gauge\n"
        "einhorn_workers{state=\"booting\",generation=\"3\"} 0\n"
        "einhorn_workers{state=\"draining\",generation=\"2\"} 1\n"
        "einhorn_workers{state=\"ready\",generation=\"3\"} 2\n"
        "# HELP einhorn_target_workers The number of workers the pool is sized for.\n"
        "# TYPE einhorn_target_workers gauge\n"
        "einhorn_target_workers 2\n"
        "# HELP einhorn_generation The generation new workers get.\n"
        "# TYPE einhorn_generation gauge\n"
        "einhorn_generation 3\n"
        "# HELP einhorn_upgrade_in_progress 1 while a worker upgrade runs.\n"
        "# TYPE einhorn_upgrade_in_progress gauge\n"
        "einhorn_upgrade_in_progress 0\n"
        "# HELP einhorn_pending_respawns Pool slots waiting out a crash-loop backoff.\n"
        "# TYPE einhorn_pending_respawns gauge\n"
        "einhorn_pending_respawns 0\n"
        "# HELP process_resident_memory_bytes The master's resident memory size in bytes.\n"
        "# TYPE process_resident_memory_bytes gauge\n"
        "process_resident_memory_bytes 2621440\n"
        "# HELP process_open_fds The master's open file descriptors.\n"
        "# TYPE process_open_fds gauge\n"
        "process_open_fds 17\n"
        "# HELP einhorn_listener_accept_queue Connections waiting in a listening socket's "
        "accept queue.\n"
        "# TYPE einhorn_listener_accept_queue gauge\n"
        "einhorn_listener_accept_queue{listener=\"127.0.0.1:8080\"} 0\n"
        "# HELP einhorn_listener_backlog The accept queue's limit (the listen() backlog the "
        "kernel applies).\n"
        "# TYPE einhorn_listener_backlog gauge\n"
        "einhorn_listener_backlog{listener=\"127.0.0.1:8080\"} 100\n"
        "# HELP einhorn_host_tcp_listen_overflows_total TCP accept-queue overflows of the whole "
        "network namespace, not this master's sockets alone (/proc/net/netstat TcpExt "
        "ListenOverflows).\n"
        "# TYPE einhorn_host_tcp_listen_overflows_total counter\n"
        "einhorn_host_tcp_listen_overflows_total 5\n"
        "# HELP einhorn_host_tcp_listen_drops_total TCP connection requests dropped at listen of "
        "the whole network namespace (/proc/net/netstat TcpExt ListenDrops).\n"
        "# TYPE einhorn_host_tcp_listen_drops_total counter\n"
        "einhorn_host_tcp_listen_drops_total 7\n");
  // Every family has one HELP and one TYPE line, before its samples.
  size_t helps = 0, types = 0;
  for (size_t at = text.find("# HELP"); at != std::string::npos; at = text.find("# HELP", at + 1)) {
    ++helps;
  }
  for (size_t at = text.find("# TYPE"); at != std::string::npos; at = text.find("# TYPE", at + 1)) {
    ++types;
  }
  CHECK(helps == types);
  CHECK(helps == 24);
  CHECK(text.back() == '\n');
}

TEST_CASE("metrics: label values and help text are escaped") {
  CHECK(EscapeLabelValue("plain") == "plain");
  CHECK(EscapeLabelValue("a\\b\"c\nd") == "a\\\\b\\\"c\\nd");
  MetricsInput in;
  in.listeners = {{"unix:/tmp/we\"ird\\pa\nth", 1, 5}};
  const std::string text = RenderMetrics(in);
  CHECK(Lines(text, "einhorn_listener_accept_queue{") ==
        "einhorn_listener_accept_queue{listener=\"unix:/tmp/we\\\"ird\\\\pa\\nth\"} 1\n");
  // Without process figures or listeners, their families are left out, not shown empty.
  const std::string bare = RenderMetrics(MetricsInput{});
  CHECK(bare.find("process_open_fds") == std::string::npos);
  CHECK(bare.find("einhorn_listener_") == std::string::npos);
  CHECK(bare.find("einhorn_host_") == std::string::npos);
  CHECK(bare.find("einhorn_spawns_total 0\n") != std::string::npos);
}

TEST_CASE("metrics: ListenOverflows and ListenDrops from /proc/net/netstat") {
  const std::string netstat =
      "TcpExt: SyncookiesSent SyncookiesRecv ListenOverflows ListenDrops TCPHPHits\n"
      "TcpExt: 0 0 12 15 99\n"
      "IpExt: InNoRoutes InTruncatedPkts\n"
      "IpExt: 0 0\n";
  const auto stats = ParseProcNetstat(netstat);
  REQUIRE(stats);
  CHECK(stats->overflows == 12);
  CHECK(stats->drops == 15);
  CHECK_FALSE(ParseProcNetstat(""));
  CHECK_FALSE(ParseProcNetstat("IpExt: A\nIpExt: 1\n"));
  CHECK_FALSE(ParseProcNetstat("TcpExt: ListenOverflows ListenDrops\n"));  // no values
  CHECK_FALSE(ParseProcNetstat("TcpExt: ListenOverflows ListenDrops\nTcpExt: 1\n"));
  CHECK_FALSE(ParseProcNetstat("TcpExt: ListenOverflows ListenDrops\nTcpExt: 1 x\n"));
  CHECK_FALSE(ParseProcNetstat("TcpExt: ListenOverflows\nTcpExt: 1\n"));
}

TEST_CASE("metrics: --metrics-listen takes loopback or a UNIX socket only") {
  auto v4 = ParseMetricsListen("127.0.0.1:9100");
  REQUIRE(v4.ok());
  CHECK(v4.value().family == BindSpec::Family::kInet);
  CHECK(v4.value().port == 9100);
  CHECK(v4.value().reuseaddr);
  CHECK(ParseMetricsListen("127.1.2.3:0").ok());
  CHECK(ParseMetricsListen("[::1]:9100").ok());
  auto unix_path = ParseMetricsListen("unix:/run/einhorn/metrics.sock");
  REQUIRE(unix_path.ok());
  CHECK(unix_path.value().family == BindSpec::Family::kUnix);
  for (const char* bad : {"0.0.0.0:9100", "10.0.0.1:9100", "*:9100", "localhost:9100",
                          "[::]:9100", "127.0.0:9100", "127.0.0.256:9100", "127.0.0.1.:9100",
                          "128.0.0.1:9100", "127.0.0.1:9100,r", "example.com:80"}) {
    CAPTURE(bad);
    const auto r = ParseMetricsListen(bad);
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().rfind("--metrics-listen", 0) == 0);
  }
  CHECK(ParseMetricsListen("0.0.0.0:9100").error().find("not a loopback address") !=
        std::string::npos);
  CHECK_FALSE(ParseMetricsListen("127.0.0.1:99999").ok());
  CHECK_FALSE(ParseMetricsListen("").ok());
}

TEST_CASE("metrics: --metrics-listen-public takes any IP address, never a name") {
  for (const char* good : {"0.0.0.0:9100", "10.0.0.1:0", "127.0.0.1:9100", "[::]:9100",
                           "[2001:db8::1]:80", "unix:/run/m.sock"}) {
    CAPTURE(good);
    const auto r = ParseMetricsListen(good, true);
    REQUIRE_MESSAGE(r.ok(), r.error());
    if (r.value().family != BindSpec::Family::kUnix) CHECK(r.value().reuseaddr);
  }
  for (const char* bad : {"*:9100", "localhost:9100", "example.com:80", "256.1.1.1:80",
                          "0.0.0.0:99999", "0.0.0.0:9100,r", "0.0.0:80", "", "0.0.0.0"}) {
    CAPTURE(bad);
    const auto r = ParseMetricsListen(bad, true);
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().rfind("--metrics-listen", 0) == 0);
  }
  CHECK(ParseMetricsListen("localhost:9100", true).error().find("is not an IP address") !=
        std::string::npos);
}

}  // namespace
}  // namespace einhorn::core
