#include "core/pool_status.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/text.h"

namespace einhorn::core {
namespace {

// --- writing --------------------------------------------------------------------------------
// By hand, into one string: yaml-cpp's Emitter checks every key and scalar against regexes and
// took ~20 ms for 1000 workers, blocking the master's loop. The format is fixed and small (see
// the header); what needs care is that every string, whatever its bytes, comes out as one valid
// double-quoted scalar that strict readers (libyaml, hence Psych) accept.

void Int(std::string& out, long long value) {
  char buf[24];
  out.append(buf, std::to_chars(buf, buf + sizeof buf, value).ptr);
}

// Rounded to the millisecond and written as the shortest fixed-notation decimal that reads back
// as the same double, so 1.001 reads "1.001" (not 1.0009999999999999). Never an exponent, always
// a '.': YAML 1.1 readers may take "1e+16" for a string, and "7200" is an integer to them.
void AppendSeconds(std::string& out, double seconds) {
  if (std::isnan(seconds)) {
    out += ".nan";
    return;
  }
  if (std::isinf(seconds)) {
    out += seconds > 0 ? ".inf" : "-.inf";
    return;
  }
  if (std::fabs(seconds) < 1e12) {
    // The common case, without a division nor a shortest-digits search: below 1e12 s the
    // millisecond count is an integer a double holds exactly, and the decimal ms / 1000 has at
    // most 15 significant digits, so it is the shortest text that reads back as the double
    // nearest to it, which is round(seconds * 1000) / 1000. Trailing zeros go, one digit stays.
    const long long ms = std::llround(seconds * 1000);
    const unsigned long long abs_ms =
        ms < 0 ? 0ULL - static_cast<unsigned long long>(ms) : static_cast<unsigned long long>(ms);
    if (ms < 0) out += '-';
    char buf[24];
    out.append(buf, std::to_chars(buf, buf + sizeof buf, abs_ms / 1000).ptr);
    const auto frac = static_cast<unsigned>(abs_ms % 1000);
    const char digits[4] = {'.', static_cast<char>('0' + frac / 100),
                            static_cast<char>('0' + frac / 10 % 10),
                            static_cast<char>('0' + frac % 10)};
    std::size_t n = 4;
    while (n > 2 && digits[n - 1] == '0') --n;
    out.append(digits, n);
    return;
  }
  // Huge values are left alone (rounding them through seconds * 1000 would change them: 1e20
  // became 99999999999999983616), at the cost of ~300 digits near DBL_MAX.
  char buf[400];
  char* const end = std::to_chars(buf, buf + sizeof buf, seconds, std::chars_format::fixed).ptr;
  out.append(buf, end);
  if (std::find(buf, end, '.') == end) out += ".0";
}

void Bool(std::string& out, bool value) { out += value ? "true" : "false"; }

// A double-quoted scalar with JSON-compatible escapes (see the header and text::Quote::kYaml).
// Plain style would turn a command name such as "yes" or "123" into a bool or a number for
// Einhorn's Ruby client.
void Str(std::string& out, std::string_view s) { text::AppendQuoted(out, s, text::Quote::kYaml); }

void OptStr(std::string& out, const std::optional<std::string>& value) {
  if (value) {
    Str(out, *value);
  } else {
    out += '~';
  }
}

void OptSeconds(std::string& out, const std::optional<double>& value) {
  if (value) {
    AppendSeconds(out, *value);
  } else {
    out += '~';
  }
}

// A one-line flow mapping: Open, then Key + value for each entry, then Close.
class FlowMap {
 public:
  explicit FlowMap(std::string& out) : out_(out) { out_ += '{'; }
  std::string& Key(std::string_view key) {
    if (!first_) out_ += ", ";
    first_ = false;
    out_ += key;
    out_ += ": ";
    return out_;
  }
  void Close() { out_ += '}'; }

 private:
  std::string& out_;
  bool first_ = true;
};

void WriteWorker(std::string& out, const WorkerStatus& w) {
  FlowMap m(out);
  Int(m.Key("slot"), w.slot);
  Int(m.Key("index"), w.index);
  Int(m.Key("pid"), w.pid);
  Int(m.Key("generation"), w.generation);
  Str(m.Key("state"), w.state);
  OptSeconds(m.Key("time_to_ready"), w.time_to_ready);
  AppendSeconds(m.Key("uptime"), w.uptime);
  Int(m.Key("restarts"), w.restarts);
  OptStr(m.Key("last_exit"), w.last_exit);
  OptStr(m.Key("notify_status"), w.notify_status);
  // Only for a worker that pinged, so that the rows of the others stay as they were.
  if (w.pinged_ago) {
    OptSeconds(m.Key("pinged_ago"), w.pinged_ago);
    OptStr(m.Key("pinged_request_id"), w.pinged_request_id);
  }
  if (w.draining_for) OptSeconds(m.Key("draining_for"), w.draining_for);
  m.Close();
}

void WritePending(std::string& out, const PendingSlot& p) {
  FlowMap m(out);
  Int(m.Key("slot"), p.slot);
  AppendSeconds(m.Key("respawn_in"), p.respawn_in);
  Int(m.Key("consecutive_failures"), p.consecutive_failures);
  Int(m.Key("restarts"), p.restarts);
  OptStr(m.Key("last_exit"), p.last_exit);
  m.Close();
}

void WriteUpgrade(std::string& out, const std::optional<UpgradeStatus>& u) {
  if (!u) {
    out += '~';
    return;
  }
  FlowMap m(out);
  Str(m.Key("strategy"), u->strategy);
  Int(m.Key("from_generation"), u->from_generation);
  Int(m.Key("to_generation"), u->to_generation);
  AppendSeconds(m.Key("elapsed"), u->elapsed);
  Int(m.Key("failures"), u->failures);
  Int(m.Key("new_ready"), u->new_ready);
  Int(m.Key("old_remaining"), u->old_remaining);
  m.Close();
}

void WriteLastUpgrade(std::string& out, const std::optional<LastUpgradeStatus>& u) {
  if (!u) {
    out += '~';
    return;
  }
  FlowMap m(out);
  Bool(m.Key("ok"), u->ok);
  Int(m.Key("generation"), u->generation);
  Str(m.Key("reason"), u->reason);
  AppendSeconds(m.Key("ago"), u->ago);
  m.Close();
}

void OptInt(std::string& out, const std::optional<long long>& value) {
  if (value) {
    Int(out, *value);
  } else {
    out += '~';
  }
}

void WriteListener(std::string& out, const ListenerStatus& l) {
  FlowMap m(out);
  Str(m.Key("name"), l.name);
  OptInt(m.Key("accept_queue"), l.accept_queue);
  OptInt(m.Key("backlog"), l.backlog);
  m.Close();
}

void WriteZygote(std::string& out, const ZygoteStatus& z) {
  FlowMap m(out);
  Int(m.Key("pid"), z.pid);
  Int(m.Key("generation"), z.generation);
  Str(m.Key("state"), z.state);
  Int(m.Key("spawns"), z.spawns);
  AppendSeconds(m.Key("age"), z.age);
  m.Close();
}

// `key:` then one row per line, or `key: []`.
template <typename Row, typename WriteRow>
void WriteRows(std::string& out, const char* key, const std::vector<Row>& rows,
               WriteRow write_row) {
  out += key;
  if (rows.empty()) {
    out += ": []\n";
    return;
  }
  out += ":\n";
  for (const Row& row : rows) {
    out += "  - ";
    write_row(out, row);
    out += '\n';
  }
}

// --- reading --------------------------------------------------------------------------------
// The reader walks a fixed schema, never the whole tree, so aliases (even cyclic ones) cannot
// make it loop; every mistake becomes an error naming the key path.

class Reader {
 public:
  explicit Reader(std::string* error) : error_(error) {}

  template <typename T>
  bool Required(const YAML::Node& map, const char* key, const std::string& path, T* out) {
    const YAML::Node node = map[key];
    if (!node.IsDefined() || node.IsNull()) return Fail(path + key + ": missing");
    return Convert(node, path + key, out);
  }

  // Absent or null leaves *out untouched.
  template <typename T>
  bool Optional(const YAML::Node& map, const char* key, const std::string& path, T* out) {
    const YAML::Node node = map[key];
    if (!node.IsDefined() || node.IsNull()) return true;
    return Convert(node, path + key, out);
  }

  template <typename T>
  bool Optional(const YAML::Node& map, const char* key, const std::string& path,
                std::optional<T>* out) {
    const YAML::Node node = map[key];
    out->reset();
    if (!node.IsDefined() || node.IsNull()) return true;
    T value{};
    if (!Convert(node, path + key, &value)) return false;
    *out = std::move(value);
    return true;
  }

  bool Fail(std::string message) {
    *error_ = std::move(message);
    return false;
  }

 private:
  template <typename T>
  bool Convert(const YAML::Node& node, const std::string& path, T* out) {
    if (!node.IsScalar() || !YAML::convert<T>::decode(node, *out)) {
      return Fail(path + ": expected " + Expected(out));
    }
    return true;
  }

  static const char* Expected(const int*) { return "an integer"; }
  static const char* Expected(const long long*) { return "an integer"; }
  static const char* Expected(const double*) { return "a number"; }
  static const char* Expected(const bool*) { return "true or false"; }
  static const char* Expected(const std::string*) { return "a string"; }

  std::string* error_;
};

bool ReadWorker(Reader& r, const YAML::Node& row, const std::string& path, WorkerStatus* w) {
  if (!row.IsMap()) return r.Fail(path + ": expected a mapping");
  const std::string p = path + ".";
  return r.Required(row, "slot", p, &w->slot) && r.Required(row, "pid", p, &w->pid) &&
         r.Required(row, "state", p, &w->state) && r.Optional(row, "index", p, &w->index) &&
         r.Optional(row, "generation", p, &w->generation) &&
         r.Optional(row, "time_to_ready", p, &w->time_to_ready) &&
         r.Optional(row, "uptime", p, &w->uptime) && r.Optional(row, "restarts", p, &w->restarts) &&
         r.Optional(row, "last_exit", p, &w->last_exit) &&
         r.Optional(row, "notify_status", p, &w->notify_status) &&
         r.Optional(row, "pinged_ago", p, &w->pinged_ago) &&
         r.Optional(row, "pinged_request_id", p, &w->pinged_request_id) &&
         r.Optional(row, "draining_for", p, &w->draining_for);
}

bool ReadPending(Reader& r, const YAML::Node& row, const std::string& path, PendingSlot* s) {
  if (!row.IsMap()) return r.Fail(path + ": expected a mapping");
  const std::string p = path + ".";
  return r.Required(row, "slot", p, &s->slot) && r.Optional(row, "respawn_in", p, &s->respawn_in) &&
         r.Optional(row, "consecutive_failures", p, &s->consecutive_failures) &&
         r.Optional(row, "restarts", p, &s->restarts) &&
         r.Optional(row, "last_exit", p, &s->last_exit);
}

bool ReadListener(Reader& r, const YAML::Node& row, const std::string& path, ListenerStatus* l) {
  if (!row.IsMap()) return r.Fail(path + ": expected a mapping");
  const std::string p = path + ".";
  return r.Required(row, "name", p, &l->name) &&
         r.Optional(row, "accept_queue", p, &l->accept_queue) &&
         r.Optional(row, "backlog", p, &l->backlog);
}

bool ReadZygote(Reader& r, const YAML::Node& row, const std::string& path, ZygoteStatus* z) {
  if (!row.IsMap()) return r.Fail(path + ": expected a mapping");
  const std::string p = path + ".";
  return r.Required(row, "pid", p, &z->pid) && r.Required(row, "generation", p, &z->generation) &&
         r.Required(row, "state", p, &z->state) && r.Optional(row, "spawns", p, &z->spawns) &&
         r.Optional(row, "age", p, &z->age);
}

bool ReadUpgrade(Reader& r, const YAML::Node& map, UpgradeStatus* u) {
  const std::string p = "upgrade.";
  return r.Required(map, "strategy", p, &u->strategy) &&
         r.Required(map, "to_generation", p, &u->to_generation) &&
         r.Optional(map, "from_generation", p, &u->from_generation) &&
         r.Optional(map, "elapsed", p, &u->elapsed) &&
         r.Optional(map, "failures", p, &u->failures) &&
         r.Optional(map, "new_ready", p, &u->new_ready) &&
         r.Optional(map, "old_remaining", p, &u->old_remaining);
}

bool ReadLastUpgrade(Reader& r, const YAML::Node& map, LastUpgradeStatus* u) {
  const std::string p = "last_upgrade.";
  return r.Required(map, "ok", p, &u->ok) && r.Required(map, "generation", p, &u->generation) &&
         r.Optional(map, "reason", p, &u->reason) && r.Optional(map, "ago", p, &u->ago);
}

// Reads the optional mapping under `key` (absent or null: empty) with `parse`.
template <typename Section, typename Parse>
bool ReadSection(Reader& r, const YAML::Node& root, const char* key,
                 std::optional<Section>* section, Parse parse) {
  const YAML::Node map = root[key];
  section->reset();
  if (!map.IsDefined() || map.IsNull()) return true;
  if (!map.IsMap()) return r.Fail(std::string(key) + ": expected a mapping");
  Section value;
  if (!parse(r, map, &value)) return false;
  *section = std::move(value);
  return true;
}

// Reads the list under `key` (absent or null: empty) with `read_row` for each element.
template <typename Row, typename ReadRow>
bool ReadRows(Reader& r, const YAML::Node& root, const char* key, std::vector<Row>* rows,
              ReadRow read_row) {
  const YAML::Node list = root[key];
  rows->clear();
  if (!list.IsDefined() || list.IsNull()) return true;
  if (!list.IsSequence()) return r.Fail(std::string(key) + ": expected a list");
  for (std::size_t i = 0; i < list.size(); ++i) {
    Row row;
    if (!read_row(r, list[i], std::string(key) + "[" + std::to_string(i) + "]", &row)) {
      return false;
    }
    rows->push_back(std::move(row));
  }
  return true;
}

}  // namespace

std::string PoolStatusToYaml(const PoolStatus& s) {
  std::string out;
  // ~130 bytes per worker row with short strings: one allocation in the common case.
  out.reserve(512 + 160 * s.workers.size() + 120 * s.pending.size());
  Int(out.append("master_pid: "), s.master_pid);
  Str(out.append("\nversion: "), s.version);
  Str(out.append("\ncommand_name: "), s.command_name);
  Int(out.append("\ntarget: "), s.target);
  Int(out.append("\ngeneration: "), s.generation);
  Str(out.append("\nack_mode: "), s.ack_mode);
  Int(out.append("\nverbosity: "), s.verbosity);
  Bool(out.append("\nstopping: "), s.stopping);
  Int(out.append("\nreloads: "), s.reloads);
  OptStr(out.append("\nlast_reload_error: "), s.last_reload_error);
  Int(out.append("\nreload_failures: "), s.reload_failures);
  Bool(out.append("\nreloading: "), s.reloading);
  Int(out.append("\nwatchdog_timeouts: "), s.watchdog_timeouts);
  out += "\ncounts: ";
  FlowMap counts(out);
  Int(counts.Key("booting"), s.booting);
  Int(counts.Key("ready"), s.ready);
  Int(counts.Key("draining"), s.draining);
  counts.Close();
  WriteUpgrade(out.append("\nupgrade: "), s.upgrade);
  WriteLastUpgrade(out.append("\nlast_upgrade: "), s.last_upgrade);
  out += '\n';
  WriteRows(out, "workers", s.workers, WriteWorker);
  WriteRows(out, "pending", s.pending, WritePending);
  WriteRows(out, "listeners", s.listeners, WriteListener);
  if (!s.zygotes.empty()) WriteRows(out, "zygotes", s.zygotes, WriteZygote);
  return out;
}

Result<PoolStatus> PoolStatusFromYaml(const std::string& text) {
  try {
    const YAML::Node root = YAML::Load(text);
    if (!root.IsMap()) return Result<PoolStatus>::Error("status: expected a YAML mapping");
    PoolStatus s;
    std::string error;
    Reader r(&error);
    const YAML::Node counts = root["counts"];
    bool ok = r.Required(root, "master_pid", "", &s.master_pid) &&
              r.Required(root, "target", "", &s.target) &&
              r.Optional(root, "version", "", &s.version) &&
              r.Optional(root, "command_name", "", &s.command_name) &&
              r.Optional(root, "generation", "", &s.generation) &&
              r.Optional(root, "ack_mode", "", &s.ack_mode) &&
              r.Optional(root, "verbosity", "", &s.verbosity) &&
              r.Optional(root, "stopping", "", &s.stopping) &&
              r.Optional(root, "reloads", "", &s.reloads) &&
              r.Optional(root, "last_reload_error", "", &s.last_reload_error) &&
              r.Optional(root, "reload_failures", "", &s.reload_failures) &&
              r.Optional(root, "reloading", "", &s.reloading) &&
              r.Optional(root, "watchdog_timeouts", "", &s.watchdog_timeouts);
    if (ok) {
      if (!counts.IsDefined() || counts.IsNull()) {
        ok = r.Fail("counts: missing");
      } else if (!counts.IsMap()) {
        ok = r.Fail("counts: expected a mapping");
      } else {
        ok = r.Required(counts, "booting", "counts.", &s.booting) &&
             r.Required(counts, "ready", "counts.", &s.ready) &&
             r.Required(counts, "draining", "counts.", &s.draining);
      }
    }
    ok = ok && ReadSection(r, root, "upgrade", &s.upgrade, ReadUpgrade) &&
         ReadSection(r, root, "last_upgrade", &s.last_upgrade, ReadLastUpgrade) &&
         ReadRows(r, root, "workers", &s.workers, ReadWorker) &&
         ReadRows(r, root, "pending", &s.pending, ReadPending) &&
         ReadRows(r, root, "listeners", &s.listeners, ReadListener) &&
         ReadRows(r, root, "zygotes", &s.zygotes, ReadZygote);
    if (!ok) return Result<PoolStatus>::Error("status: " + error);
    return s;
  } catch (const YAML::Exception& e) {
    return Result<PoolStatus>::Error(std::string("status: not YAML: ") + e.what());
  }
}

}  // namespace einhorn::core
