#include "core/metrics.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <sstream>

namespace einhorn::core {
namespace {

void AppendDouble(std::string& out, double v) {
  if (std::isnan(v)) {
    out += "NaN";
    return;
  }
  if (std::isinf(v)) {
    out += v > 0 ? "+Inf" : "-Inf";
    return;
  }
  char buf[32];
  out.append(buf, std::to_chars(buf, buf + sizeof buf, v).ptr);
}

void AppendUint(std::string& out, std::uint64_t v) {
  char buf[24];
  out.append(buf, std::to_chars(buf, buf + sizeof buf, v).ptr);
}

// HELP text: backslash and newline escaped (the format's rule for docstrings).
std::string EscapeHelp(std::string_view help) {
  std::string out;
  for (char c : help) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

using Labels = std::vector<std::pair<std::string, std::string>>;

class Writer {
 public:
  explicit Writer(std::string& out) : out_(out) {}

  void Family(const char* name, const char* type, const char* help) {
    out_ += "# HELP ";
    out_ += name;
    out_ += ' ';
    out_ += EscapeHelp(help);
    out_ += "\n# TYPE ";
    out_ += name;
    out_ += ' ';
    out_ += type;
    out_ += '\n';
  }
  void Sample(std::string_view name, const Labels& labels, std::uint64_t value) {
    Head(name, labels);
    AppendUint(out_, value);
    out_ += '\n';
  }
  void SampleDouble(std::string_view name, const Labels& labels, double value) {
    Head(name, labels);
    AppendDouble(out_, value);
    out_ += '\n';
  }
  void Counter(const char* name, const char* help, std::uint64_t value) {
    Family(name, "counter", help);
    Sample(name, {}, value);
  }
  void Gauge(const char* name, const char* help, double value) {
    Family(name, "gauge", help);
    SampleDouble(name, {}, value);
  }
  void HistogramFamily(const char* name, const char* help, const Histogram& h) {
    Family(name, "histogram", help);
    const std::string bucket = std::string(name) + "_bucket";
    std::uint64_t cumulative = 0;
    for (size_t i = 0; i < h.bounds.size(); ++i) {
      cumulative += i < h.counts.size() ? h.counts[i] : 0;
      std::string le;
      AppendDouble(le, h.bounds[i]);
      Sample(bucket, {{"le", le}}, cumulative);
    }
    Sample(bucket, {{"le", "+Inf"}}, h.count);
    SampleDouble(std::string(name) + "_sum", {}, h.sum);
    Sample(std::string(name) + "_count", {}, h.count);
  }

 private:
  void Head(std::string_view name, const Labels& labels) {
    out_ += name;
    if (!labels.empty()) {
      out_ += '{';
      for (size_t i = 0; i < labels.size(); ++i) {
        if (i > 0) out_ += ',';
        out_ += labels[i].first;
        out_ += "=\"";
        out_ += EscapeLabelValue(labels[i].second);
        out_ += '"';
      }
      out_ += '}';
    }
    out_ += ' ';
  }

  std::string& out_;
};

}  // namespace

Histogram Histogram::WithBounds(std::vector<double> bounds) {
  Histogram h;
  h.counts.assign(bounds.size() + 1, 0);
  h.bounds = std::move(bounds);
  return h;
}

void Histogram::Observe(double value) {
  if (std::isnan(value)) return;
  if (counts.size() != bounds.size() + 1) counts.resize(bounds.size() + 1, 0);
  const size_t i = static_cast<size_t>(
      std::lower_bound(bounds.begin(), bounds.end(), value) - bounds.begin());
  ++counts[i];
  sum += value;
  ++count;
}

const std::vector<double>& TimeToReadyBounds() {
  static const std::vector<double> kBounds = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
                                              1,     2.5,  5,     10,   30,  60,   120};
  return kBounds;
}

const std::vector<double>& UpgradeDurationBounds() {
  static const std::vector<double> kBounds = {0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800,
                                              3600};
  return kBounds;
}

std::string CommandLabel(std::string_view verb) {
  const auto& known = KnownCommands();
  if (std::find(known.begin(), known.end(), verb) != known.end()) return std::string(verb);
  return "unknown";
}

std::string EscapeLabelValue(std::string_view value) {
  std::string out;
  out.reserve(value.size());
  for (char c : value) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '"') {
      out += "\\\"";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

namespace {

// A dotted quad a.b.c.d with each part 0..255.
bool IsDottedQuad(std::string_view host) {
  int parts = 0;
  bool ok = !host.empty();
  std::string_view rest = host;
  while (ok && !rest.empty()) {
    const size_t dot = rest.find('.');
    const std::string_view part = rest.substr(0, dot);
    int v = -1;
    const auto r = std::from_chars(part.data(), part.data() + part.size(), v);
    ok = !part.empty() && part.size() <= 3 && r.ec == std::errc() &&
         r.ptr == part.data() + part.size() && v <= 255;
    ++parts;
    rest = dot == std::string_view::npos ? std::string_view() : rest.substr(dot + 1);
    if (dot != std::string_view::npos && rest.empty()) ok = false;
  }
  return ok && parts == 4;
}

}  // namespace

Result<BindSpec> ParseMetricsListen(const std::string& text, bool allow_public) {
  using R = Result<BindSpec>;
  const std::string usage =
      allow_public
          ? " (use an IP address and a port, e.g. 0.0.0.0:9100 or [::]:9100, or unix:/PATH)"
          : " (use 127.0.0.1:PORT, [::1]:PORT or unix:/PATH: the endpoint has no authentication, "
            "so it is served on loopback or a UNIX socket only, unless --metrics-listen-public "
            "is given)";
  if (text.find(',') != std::string::npos) {
    return R::Error("--metrics-listen '" + text + "': takes no flags" + usage);
  }
  auto parsed = ParseBindSpec(text);
  if (!parsed.ok()) return R::Error("--metrics-listen: " + parsed.error());
  BindSpec spec = std::move(parsed).value();
  if (spec.family == BindSpec::Family::kUnix) return spec;
  const bool v6 = spec.family == BindSpec::Family::kInet6;
  const bool loopback = v6 ? spec.host == "::1" || spec.host == "0:0:0:0:0:0:0:1"
                           : spec.host.rfind("127.", 0) == 0 && IsDottedQuad(spec.host);
  if (allow_public) {
    // An address, not a name: what a name resolves to may change under a running master.
    if (!v6 && !IsDottedQuad(spec.host)) {
      return R::Error("--metrics-listen '" + text + "': " + spec.host +
                      " is not an IP address" + usage);
    }
  } else if (!loopback) {
    return R::Error("--metrics-listen '" + text + "': " + spec.host + " is not a loopback address" +
                    usage);
  }
  spec.reuseaddr = true;
  return spec;
}

std::optional<HostListenStats> ParseProcNetstat(std::string_view text) {
  // Pairs of lines: "TcpExt: Name1 Name2 ..." then "TcpExt: 1 2 ...".
  std::istringstream in{std::string(text)};
  std::string header;
  std::string values;
  while (std::getline(in, header)) {
    if (header.rfind("TcpExt:", 0) != 0) continue;
    if (!std::getline(in, values) || values.rfind("TcpExt:", 0) != 0) return std::nullopt;
    std::istringstream names(header.substr(7));
    std::istringstream numbers(values.substr(7));
    std::optional<std::uint64_t> overflows, drops;
    std::string name, number;
    while (names >> name) {
      if (!(numbers >> number)) return std::nullopt;
      std::uint64_t v = 0;
      const auto r = std::from_chars(number.data(), number.data() + number.size(), v);
      if (r.ec != std::errc() || r.ptr != number.data() + number.size()) return std::nullopt;
      if (name == "ListenOverflows") overflows = v;
      if (name == "ListenDrops") drops = v;
    }
    if (!overflows || !drops) return std::nullopt;
    return HostListenStats{*overflows, *drops};
  }
  return std::nullopt;
}

namespace {

// What the master counted since its first image (the counters travel across a reload).
void WriteCounters(Writer& w, const Counters& c) {
  w.Counter("einhorn_spawns_total", "Workers started.", c.spawns);
  w.Counter("einhorn_spawn_failures_total",
            "Workers that could not be started (fork failed or no notify socket).",
            c.spawn_failures);
  w.Counter("einhorn_acks_total",
            "Workers that became ready (timer ack, worker:ack or READY=1).", c.acks);
  w.Family("einhorn_worker_exits_total", "counter",
           "Workers that exited, by cause (clean_exit: status 0, error_exit: status > 0, "
           "signal: killed by a signal) and whether they had been told to stop.");
  for (size_t cause = 0; cause < kExitCauseNames.size(); ++cause) {
    for (int drain = 0; drain < 2; ++drain) {
      w.Sample("einhorn_worker_exits_total",
               {{"cause", kExitCauseNames[cause]}, {"during_drain", drain ? "true" : "false"}},
               c.exits[cause][static_cast<size_t>(drain)]);
    }
  }
  w.Counter("einhorn_respawn_backoffs_total",
            "Respawns delayed by the crash-loop backoff.", c.respawn_backoffs);
  w.Counter("einhorn_worker_kills_total",
            "Workers sent SIGKILL because they outlived the signal timeout.", c.kills);
  w.Counter("einhorn_worker_watchdog_timeouts_total",
            "Ready workers found hung by --worker-watchdog.", c.watchdog_timeouts);
  w.Family("einhorn_upgrades_total", "counter", "Worker upgrades that ended, by outcome.");
  for (size_t i = 0; i < kUpgradeOutcomes.size(); ++i) {
    w.Sample("einhorn_upgrades_total", {{"outcome", kUpgradeOutcomes[i]}}, c.upgrades[i]);
  }
  w.Family("einhorn_reloads_total", "counter", "Master re-execs (reload, upgrade), by outcome.");
  for (size_t i = 0; i < kReloadOutcomes.size(); ++i) {
    w.Sample("einhorn_reloads_total", {{"outcome", kReloadOutcomes[i]}}, c.reloads[i]);
  }
  w.Family("einhorn_control_commands_total", "counter",
           "Requests on the command socket, by command.");
  for (const std::string& verb : KnownCommands()) {
    const auto it = c.commands.find(verb);
    w.Sample("einhorn_control_commands_total", {{"command", verb}},
             it == c.commands.end() ? 0 : it->second);
  }
  w.Family("einhorn_control_refused_peers_total", "counter",
           "Connections to the command socket refused, by reason.");
  for (size_t i = 0; i < kRefusalReasons.size(); ++i) {
    w.Sample("einhorn_control_refused_peers_total", {{"reason", kRefusalReasons[i]}},
             c.refused_peers[i]);
  }
}

void WriteHistograms(Writer& w, const Counters& c) {
  w.HistogramFamily("einhorn_worker_time_to_ready_seconds",
                    "Time from a worker's spawn to its readiness.", c.time_to_ready);
  w.HistogramFamily("einhorn_upgrade_duration_seconds",
                    "Time from an upgrade's start to its end (success or rollback).",
                    c.upgrade_duration);
}

// The pool now.
void WritePoolGauges(Writer& w, const MetricsInput& in) {
  w.Family("einhorn_workers", "gauge", "Live workers by state and generation.");
  for (const auto& [key, n] : in.workers) {
    w.Sample("einhorn_workers", {{"state", key.first}, {"generation", std::to_string(key.second)}},
             static_cast<std::uint64_t>(std::max(0, n)));
  }
  w.Gauge("einhorn_target_workers", "The number of workers the pool is sized for.", in.target);
  w.Gauge("einhorn_generation", "The generation new workers get.", in.generation);
  w.Gauge("einhorn_upgrade_in_progress", "1 while a worker upgrade runs.", in.upgrading ? 1 : 0);
  if (!in.worker_memory.empty()) {
    w.Family("einhorn_worker_memory_bytes", "gauge",
             "Memory of the worker in each slot with its descendants (RSS, or PSS with "
             "--memory-measure pss), as last sampled for --max-worker-memory.");
    for (const auto& [slot, bytes] : in.worker_memory) {
      w.Sample("einhorn_worker_memory_bytes", {{"slot", std::to_string(slot)}}, bytes);
    }
  }
  w.Gauge("einhorn_pending_respawns", "Pool slots waiting out a crash-loop backoff.",
          in.pending_respawns);
  if (!in.recycles.empty()) {
    w.Family("einhorn_worker_recycles_total", "counter",
             "Workers recycled (replaced, then drained once the replacement was ready), by "
             "cause: memory, memory_hard, age, worker (worker:recycle, RECYCLE=1), operator.");
    for (const auto& [cause, n] : in.recycles) {
      w.Sample("einhorn_worker_recycles_total", {{"cause", cause}}, n);
    }
  }
}

// The master process's own figures, when the shell could read them.
void WriteProcessGauges(Writer& w, const MetricsInput& in) {
  if (in.resident_memory_bytes) {
    w.Gauge("process_resident_memory_bytes", "The master's resident memory size in bytes.",
            static_cast<double>(*in.resident_memory_bytes));
  }
  if (in.open_fds) {
    w.Gauge("process_open_fds", "The master's open file descriptors.",
            static_cast<double>(*in.open_fds));
  }
}

// Each family only if some listener has the figure.
void WriteListenerGauges(Writer& w, const std::vector<ListenerStats>& listeners) {
  bool queues = false, backlogs = false;
  for (const ListenerStats& l : listeners) {
    queues = queues || l.accept_queue.has_value();
    backlogs = backlogs || l.backlog.has_value();
  }
  if (queues) {
    w.Family("einhorn_listener_accept_queue", "gauge",
             "Connections waiting in a listening socket's accept queue.");
    for (const ListenerStats& l : listeners) {
      if (l.accept_queue) {
        w.SampleDouble("einhorn_listener_accept_queue", {{"listener", l.name}},
                       static_cast<double>(*l.accept_queue));
      }
    }
  }
  if (backlogs) {
    w.Family("einhorn_listener_backlog", "gauge",
             "The accept queue's limit (the listen() backlog the kernel applies).");
    for (const ListenerStats& l : listeners) {
      if (l.backlog) {
        w.SampleDouble("einhorn_listener_backlog", {{"listener", l.name}},
                       static_cast<double>(*l.backlog));
      }
    }
  }
}

void WriteHostCounters(Writer& w, const MetricsInput& in) {
  if (in.host) {
    w.Counter("einhorn_host_tcp_listen_overflows_total",
              "TCP accept-queue overflows of the whole network namespace, not this master's "
              "sockets alone (/proc/net/netstat TcpExt ListenOverflows).",
              in.host->overflows);
    w.Counter("einhorn_host_tcp_listen_drops_total",
              "TCP connection requests dropped at listen of the whole network namespace "
              "(/proc/net/netstat TcpExt ListenDrops).",
              in.host->drops);
  }
}

}  // namespace

std::string RenderMetrics(const MetricsInput& in) {
  static const Counters kZero;
  const Counters& c = in.counters != nullptr ? *in.counters : kZero;
  std::string out;
  out.reserve(8192);
  Writer w(out);
  WriteCounters(w, c);
  WriteHistograms(w, c);
  WritePoolGauges(w, in);
  WriteProcessGauges(w, in);
  WriteListenerGauges(w, in.listeners);
  WriteHostCounters(w, in);
  return out;
}

}  // namespace einhorn::core
