// What the master tells about itself: lifecycle events into the ring and the log, the figures
// only the shell can read for `status` and `metrics` (accept queues, resident memory, open
// fds), and the --metrics-listen endpoint.
#include <chrono>

#include "master/logging.h"
#include "master/master.h"
#include "sys/sock_stats.h"

namespace einhorn::master {

namespace {

std::int64_t WallNow() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// The port of a bound TCP/UDP listener ("127.0.0.1:41234", "[::1]:8080"); nullopt for UNIX.
std::optional<int> BoundPort(const sys::Listener& l) {
  if (l.spec.family == core::BindSpec::Family::kUnix) return std::nullopt;
  const size_t colon = l.bound.rfind(':');
  if (colon == std::string::npos || colon + 1 >= l.bound.size()) return std::nullopt;
  int port = 0;
  for (size_t i = colon + 1; i < l.bound.size(); ++i) {
    const char c = l.bound[i];
    if (c < '0' || c > '9' || port > 65535) return std::nullopt;
    port = port * 10 + (c - '0');
  }
  return port;
}

}  // namespace

std::optional<std::int64_t> Master::WallClockNs() const { return WallNow(); }

std::int64_t Master::ReadWallOffset() const {
  // Back to back, the smaller of a few tries: the offset is off by at most the time between
  // two clock reads.
  std::int64_t best = 0;
  std::int64_t best_gap = -1;
  for (int i = 0; i < 3; ++i) {
    const std::int64_t before = Now().count();
    const std::int64_t wall = WallNow();
    const std::int64_t after = Now().count();
    if (best_gap < 0 || after - before < best_gap) {
      best_gap = after - before;
      best = wall - (before + (after - before) / 2);
    }
  }
  return best;
}

core::EinhornStateFacts Master::EinhornFacts() const {
  core::EinhornStateFacts facts;
  facts.wall_offset_ns = wall_offset_ns_;
  facts.options = setup_.options;
  facts.command_path = setup_.command_path;
  for (const sys::Listener& l : setup_.listeners) {
    facts.bind_fds.push_back(l.fd);
    facts.bound_ports.push_back(BoundPort(l));
  }
  facts.reloading = reload_.running();
  facts.then_upgrades = reload_.then_upgrades();
  return facts;
}

core::Event Master::StoreEvent(core::Event event) {
  event.wall_ns = WallNow();
  if (event.mono == core::Time{}) event.mono = Now();
  event.seq = telemetry_.Record(event);
  return event;
}

void Master::LogEvent(core::LogLevel level, const std::string& message, const core::Event& event) {
  if (probing()) ++turn_.lines;
  master::LogEvent(level, message, StoreEvent(event));  // the line (logging.h)
}

void Master::RecordEvent(const core::Event& event) { StoreEvent(event); }

void Master::CountCommand(const std::string& verb) {
  if (probing()) ++turn_.commands;
  telemetry_.CountCommand(verb);
}

std::vector<core::ListenerStats> Master::Listeners() const {
  std::vector<core::ListenerStats> out;
  out.reserve(setup_.listeners.size());
  for (const sys::Listener& l : setup_.listeners) {
    core::ListenerStats s;
    s.name = l.bound;
    if (const auto queue = sys::ReadAcceptQueue(l.fd)) {
      s.accept_queue = queue->length;
      s.backlog = queue->backlog;
    }
    out.push_back(std::move(s));
  }
  return out;
}

void Master::AddProcessFacts(core::MetricsInput* input) const {
  input->resident_memory_bytes = sys::ResidentMemoryBytes();
  input->open_fds = sys::OpenFds();
  input->host = sys::ReadHostListenStats();
}

core::Readiness Master::Readiness() const {
  core::ReadinessInput in;
  in.target = supervisor_.target();
  in.ready = supervisor_.ready_count();
  in.share_percent = setup_.options.ready_share;
  in.stopping = supervisor_.Stopping();
  in.upgrading = supervisor_.upgrade().has_value();
  return core::DecideReadiness(in);
}

void Master::StartMetricsServer() {
  if (setup_.metrics.fd < 0) return;
  metrics_ = std::make_unique<MetricsServer>(
      &loop_, [this] { return control_.MetricsText(); }, [this] { return Readiness(); });
  const bool unix_socket = setup_.metrics.spec.family == core::BindSpec::Family::kUnix;
  if (!metrics_->Listen(setup_.metrics.fd, unix_socket)) {
    // The fd is closed; the master goes on without its endpoint (`einhornctl metrics` works).
    setup_.metrics.fd = -1;
    metrics_.reset();
    return;
  }
  if (!setup_.restored) {
    spdlog::info("metrics: serving GET /metrics on {} (and the probes /livez, /readyz; no "
                 "authentication: {})",
                 setup_.metrics.bound,
                 setup_.options.metrics_listen_public
                     ? "reachable from wherever the address is, by --metrics-listen-public"
                     : "loopback or a UNIX socket only");
  }
}

}  // namespace einhorn::master
