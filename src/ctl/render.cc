#include "ctl/render.h"

#include <algorithm>
#include <fmt/format.h>

#include <cmath>
#include <nlohmann/json.hpp>
#include <string_view>

#include "core/options.h"

namespace einhorn::ctl {
namespace {

using core::PendingSlot;
using core::PoolStatus;
using core::WorkerStatus;
// Ordered: the keys come out in the YAML's order, which reads better than alphabetical.
using Json = nlohmann::ordered_json;

// Messages come from the master and may hold any bytes; a JSON encoder that throws on invalid
// UTF-8 would turn a strange reply into a crash, so bad sequences become U+FFFD instead.
std::string Dump(const Json& j) { return j.dump(2, ' ', false, Json::error_handler_t::replace); }

Json OptionalJson(const std::optional<std::string>& v) { return v ? Json(*v) : Json(nullptr); }
Json OptionalJson(const std::optional<double>& v) { return v ? Json(*v) : Json(nullptr); }
Json OptionalJson(const std::optional<long long>& v) { return v ? Json(*v) : Json(nullptr); }

// Left-aligned columns two spaces apart, padded to `width`; the last cell of a row is not
// padded, so that rows carry no trailing blanks.
std::string Row(const std::vector<std::string>& cells, const std::vector<size_t>& width) {
  std::string line;
  for (size_t c = 0; c < cells.size(); ++c) {
    line += cells[c];
    if (c + 1 < cells.size()) line += std::string(width[c] - cells[c].size() + 2, ' ');
  }
  return line + '\n';
}

}  // namespace

std::string HumanDuration(double seconds) {
  const long long s =
      std::isfinite(seconds) && seconds > 0 ? static_cast<long long>(std::floor(seconds)) : 0;
  if (s < 60) return fmt::format("{}s", s);
  if (s < 3600) return fmt::format("{}m{:02}s", s / 60, s % 60);
  if (s < 86400) return fmt::format("{}h{:02}m", s / 3600, s % 3600 / 60);
  return fmt::format("{}d{:02}h", s / 86400, s % 86400 / 3600);
}

std::string FixedSeconds(double seconds, int decimals) {
  return fmt::format("{:.{}f}s", seconds, std::clamp(decimals, 0, 17));
}

std::string ShortSeconds(double seconds) { return fmt::format("{:g}s", seconds); }

std::string RenderStatusSummary(const PoolStatus& s) {
  std::string out =
      fmt::format("target {} | generation {} | ready {}/{} | booting {} | draining {}",
                  s.target, s.generation, s.ready, s.target, s.booting, s.draining);
  out += " (master " + std::to_string(s.master_pid);
  if (!s.command_name.empty()) out += " " + s.command_name;
  if (!s.ack_mode.empty()) out += ", " + s.ack_mode;
  if (s.stopping) out += ", stopping";
  out += ")\n";
  if (const auto& u = s.upgrade) {
    out += fmt::format("upgrading ({}) generation {} -> {}: {}/{} new ready, {} old remaining, ",
                       u->strategy, u->from_generation, u->to_generation, u->new_ready, s.target,
                       u->old_remaining);
    out += std::to_string(u->failures) + (u->failures == 1 ? " failure, " : " failures, ") +
           HumanDuration(u->elapsed) + "\n";
  }
  if (s.reloading) out += "reloading the master: checking the new binary\n";
  if (s.last_reload_error) out += "last master reload failed: " + *s.last_reload_error + "\n";
  if (s.watchdog_timeouts > 0) {
    out += std::to_string(s.watchdog_timeouts) + " hung worker" +
           (s.watchdog_timeouts == 1 ? "" : "s") + " aborted by --worker-watchdog\n";
  }
  out += RenderListeners(s);
  if (const auto& last = s.last_upgrade) {
    out += "last upgrade, to generation " + std::to_string(last->generation) + ", " +
           HumanDuration(last->ago) + " ago: " +
           (last->ok ? std::string("done") : "rolled back: " + last->reason) + "\n";
  }
  return out;
}

std::string RenderStatusTable(const PoolStatus& s) {
  std::vector<std::vector<std::string>> live;
  live.push_back(
      {"SLOT", "INDEX", "PID", "GEN", "STATE", "READY-IN", "UPTIME", "RESTARTS", "LAST-EXIT"});
  for (const WorkerStatus& w : s.workers) {
    live.push_back({std::to_string(w.slot), std::to_string(w.index), std::to_string(w.pid),
                    std::to_string(w.generation), w.state,
                    w.time_to_ready ? FixedSeconds(*w.time_to_ready, 2) : "-",
                    HumanDuration(w.uptime), std::to_string(w.restarts),
                    w.last_exit.value_or("-")});
  }
  // How long each draining worker has been draining, only when one is.
  bool any_draining = false;
  for (const WorkerStatus& w : s.workers) any_draining = any_draining || w.draining_for;
  if (any_draining) {
    live[0].push_back("DRAINING");
    for (size_t i = 0; i < s.workers.size(); ++i) {
      const auto& d = s.workers[i].draining_for;
      live[i + 1].push_back(d ? HumanDuration(*d) : "-");
    }
  }
  // A pending recycle (cause and stage), only when one is pending.
  bool any_recycle = false;
  for (const WorkerStatus& w : s.workers) any_recycle = any_recycle || w.recycle;
  if (any_recycle) {
    live[0].push_back("RECYCLE");
    for (size_t i = 0; i < s.workers.size(); ++i) {
      const WorkerStatus& w = s.workers[i];
      live[i + 1].push_back(w.recycle ? *w.recycle + " (" + w.recycle_state.value_or("?") + ")"
                                      : "-");
    }
  }
  // --max-worker-memory: each worker's last sample (with its descendants), only when sampled.
  bool any_memory = false;
  for (const WorkerStatus& w : s.workers) any_memory = any_memory || w.memory_bytes;
  if (any_memory) {
    live[0].push_back("MEMORY");
    for (size_t i = 0; i < s.workers.size(); ++i) {
      const auto& b = s.workers[i].memory_bytes;
      live[i + 1].push_back(b ? std::to_string((*b + (1 << 19)) >> 20) + "M" : "-");
    }
  }
  // -m notify: the workers' own words, last, only when one has said something.
  bool any_status = false;
  for (const WorkerStatus& w : s.workers) any_status = any_status || w.notify_status;
  if (any_status) {
    live[0].push_back("STATUS");
    for (size_t i = 0; i < s.workers.size(); ++i) {
      live[i + 1].push_back(s.workers[i].notify_status.value_or("-"));
    }
  }
  // A waiting slot has no index, pid or generation; its story takes the rest of the line from
  // the STATE column on, and does not count towards the widths of the live columns.
  std::vector<std::vector<std::string>> pending;
  for (const PendingSlot& p : s.pending) {
    std::string story = "respawning in " + FixedSeconds(p.respawn_in, 1) + " (" +
                        std::to_string(p.consecutive_failures) +
                        (p.consecutive_failures == 1 ? " failure" : " failures") + "), " +
                        std::to_string(p.restarts) + " restarts";
    if (p.last_exit) story += ", last exit " + *p.last_exit;
    pending.push_back({std::to_string(p.slot), "-", "-", "-", story});
  }
  constexpr size_t kShared = 4;  // SLOT INDEX PID GEN
  std::vector<size_t> width(live.front().size(), 0);
  for (const auto& row : live) {
    for (size_t c = 0; c < row.size(); ++c) width[c] = std::max(width[c], row[c].size());
  }
  for (const auto& row : pending) {
    for (size_t c = 0; c < kShared; ++c) width[c] = std::max(width[c], row[c].size());
  }
  std::string out;
  for (const auto& row : live) out += Row(row, width);
  for (const auto& row : pending) out += Row(row, width);
  return out;
}

std::string RenderStatus(const PoolStatus& s) {
  return RenderStatusSummary(s) + RenderStatusTable(s);
}

std::string RenderStatusJson(const PoolStatus& s) {
  Json workers = Json::array();
  for (const WorkerStatus& w : s.workers) {
    workers.push_back({{"slot", w.slot},
                       {"index", w.index},
                       {"pid", w.pid},
                       {"generation", w.generation},
                       {"state", w.state},
                       {"time_to_ready", OptionalJson(w.time_to_ready)},
                       {"uptime", w.uptime},
                       {"restarts", w.restarts},
                       {"last_exit", OptionalJson(w.last_exit)},
                       {"notify_status", OptionalJson(w.notify_status)},
                       {"pinged_ago", OptionalJson(w.pinged_ago)},
                       {"pinged_request_id", OptionalJson(w.pinged_request_id)},
                       {"draining_for", OptionalJson(w.draining_for)},
                       {"recycle", OptionalJson(w.recycle)},
                       {"recycle_state", OptionalJson(w.recycle_state)},
                       {"recycle_in", OptionalJson(w.recycle_in)},
                       {"memory_bytes", OptionalJson(w.memory_bytes)},
                       {"memory_sampled_ago", OptionalJson(w.memory_sampled_ago)}});
  }
  Json pending = Json::array();
  for (const PendingSlot& p : s.pending) {
    pending.push_back({{"slot", p.slot},
                       {"respawn_in", p.respawn_in},
                       {"consecutive_failures", p.consecutive_failures},
                       {"restarts", p.restarts},
                       {"last_exit", OptionalJson(p.last_exit)}});
  }
  Json j = {
      {"master_pid", s.master_pid},
      {"version", s.version},
      {"command_name", s.command_name},
      {"target", s.target},
      {"generation", s.generation},
      {"ack_mode", s.ack_mode},
      {"verbosity", s.verbosity},
      {"stopping", s.stopping},
      {"reloads", s.reloads},
      {"last_reload_error", OptionalJson(s.last_reload_error)},
      {"reload_failures", s.reload_failures},
      {"reloading", s.reloading},
      {"watchdog_timeouts", s.watchdog_timeouts},
      {"counts", {{"booting", s.booting}, {"ready", s.ready}, {"draining", s.draining}}},
      {"upgrade", nullptr},
      {"last_upgrade", nullptr},
      {"workers", workers},
      {"pending", pending},
      {"listeners", Json::array()},
  };
  for (const core::ListenerStatus& l : s.listeners) {
    j["listeners"].push_back(
        {{"name", l.name},
         {"accept_queue", l.accept_queue ? Json(*l.accept_queue) : Json(nullptr)},
         {"backlog", l.backlog ? Json(*l.backlog) : Json(nullptr)}});
  }
  // --preload only, so that other masters' output stays as it was.
  for (const core::ZygoteStatus& z : s.zygotes) {
    j["zygotes"].push_back({{"pid", z.pid},
                            {"generation", z.generation},
                            {"state", z.state},
                            {"spawns", z.spawns},
                            {"age", z.age}});
  }
  if (const auto& u = s.upgrade) {
    j["upgrade"] = {{"strategy", u->strategy},         {"from_generation", u->from_generation},
                    {"to_generation", u->to_generation}, {"elapsed", u->elapsed},
                    {"failures", u->failures},           {"new_ready", u->new_ready},
                    {"old_remaining", u->old_remaining}};
  }
  if (const auto& last = s.last_upgrade) {
    j["last_upgrade"] = {{"ok", last->ok},
                         {"generation", last->generation},
                         {"reason", last->reason},
                         {"ago", last->ago}};
  }
  return Dump(j) + "\n";
}

std::string RenderListeners(const PoolStatus& s) {
  std::string out;
  for (const core::ListenerStatus& l : s.listeners) {
    out += "listener " + l.name + ": ";
    if (!l.accept_queue) {
      out += "no accept queue figures\n";
      continue;
    }
    out += "accept queue " + std::to_string(*l.accept_queue);
    if (l.backlog) out += "/" + std::to_string(*l.backlog);
    out += l.backlog && *l.accept_queue >= *l.backlog ? " (full: connections are dropped)\n"
                                                       : "\n";
  }
  for (const core::ZygoteStatus& z : s.zygotes) {
    out += "zygote " + std::to_string(z.pid) + ": generation " + std::to_string(z.generation) +
           ", " + z.state + ", " + std::to_string(z.spawns) + " workers forked\n";
  }
  return out;
}

// The fixed columns of an event line: minimum widths, never a cut.
std::string RenderEventsHeader() {
  return fmt::format("{:<24} {:>6}  {:<16} {:>4}  {:<8} {:>3}  {}\n", "TIME", "SEQ", "EVENT",
                     "SLOT", "PID", "GEN", "DETAIL");
}

std::string RenderEvent(const core::Event& e) {
  const auto or_dash = [](bool present, long long v) {
    return present ? std::to_string(v) : std::string("-");
  };
  std::string line = fmt::format("{:<24} {:>6}  {:<16} {:>4}  {:<8} {:>3}  ",
                                 core::FormatUtc(e.wall_ns), e.seq, core::EventKindName(e.kind),
                                 or_dash(e.slot >= 0, e.slot), or_dash(e.pid > 0, e.pid),
                                 or_dash(e.generation > 0, e.generation));
  std::string detail = core::EventSummary(e);
  if (detail.empty()) detail = "-";
  // One line per event whatever the detail holds.
  for (char& c : detail) {
    if (c == '\n' || c == '\r' || c == '\t') c = ' ';
  }
  return line + detail + "\n";
}

std::string RenderMessagesJson(const std::vector<std::string>& messages, bool error) {
  const Json j = {{"messages", messages}, {"error", error}};
  return Dump(j) + "\n";
}

std::string MessageText(const std::string& message) {
  if (message.empty()) return "";
  return message.back() == '\n' ? message : message + '\n';
}

std::string JsonQuoted(const std::string& s) {
  return Json(s).dump(-1, ' ', false, Json::error_handler_t::replace);
}

std::string SignalSentText(const std::string& signal,
                           const std::optional<core::PoolStatus>& before) {
  const std::string name = "SIG" + signal;
  const std::string master = "; the master itself was not signalled";
  if (!before) return "Sent " + name + " to every worker" + master;
  const std::vector<core::WorkerStatus>& w = before->workers;
  if (w.empty()) return "No worker to send " + name + " to" + master;
  std::string text = "Sent " + name + " to the " + std::to_string(w.size()) +
                     (w.size() == 1 ? " worker (pid " : " workers (pids ");
  for (size_t i = 0; i < w.size() && i < 10; ++i) {
    text += (i ? ", " : "") + std::to_string(w[i].pid);
  }
  if (w.size() > 10) text += ", ...";
  return text + ")" + master;
}

std::string LogLevelText(const std::string& reply, int was) {
  constexpr std::string_view kPrefix = "Verbosity set to ";
  if (!reply.starts_with(kPrefix)) return reply;
  std::string digits = reply.substr(kPrefix.size());
  while (!digits.empty() && digits.back() == '\n') digits.pop_back();
  if (digits.size() != 1 || digits[0] < '0' || digits[0] > '2') return reply;
  const int now = digits[0] - '0';
  std::string text = "Log level set to " + std::string(core::kLogLevelNames[now]) +
                     " (verbosity " + digits;
  if (was >= 0 && was <= 2) text += ", was " + std::string(core::kLogLevelNames[was]);
  return text + ")";
}

}  // namespace einhorn::ctl
