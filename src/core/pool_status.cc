#include "core/pool_status.h"

#include <yaml-cpp/yaml.h>

#include <cmath>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace einhorn::core {
namespace {

// Times are rounded to the millisecond and written with 15 significant digits: every decimal
// with at most 15 digits survives the trip through a double, so 1.001 reads "1.001" in
// einhornsh instead of yaml-cpp's default "1.0009999999999999".
constexpr std::size_t kDoubleDigits = 15;

double Millis(double seconds) { return static_cast<double>(std::llround(seconds * 1000)) / 1000; }

// Strings are double-quoted: plain style would turn a command name such as "yes" or "123" into a
// bool or a number for Einhorn's Ruby client and for go-yaml.
void Str(YAML::Emitter& out, const char* key, const std::string& value) {
  out << YAML::Key << key << YAML::Value << YAML::DoubleQuoted << value;
}

void OptStr(YAML::Emitter& out, const char* key, const std::optional<std::string>& value) {
  out << YAML::Key << key << YAML::Value;
  if (value) {
    out << YAML::DoubleQuoted << *value;
  } else {
    out << YAML::Null;
  }
}

void OptSeconds(YAML::Emitter& out, const char* key, const std::optional<double>& value) {
  out << YAML::Key << key << YAML::Value;
  if (value) {
    out << Millis(*value);
  } else {
    out << YAML::Null;
  }
}

template <typename T>
void Field(YAML::Emitter& out, const char* key, const T& value) {
  out << YAML::Key << key << YAML::Value << value;
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
         r.Optional(row, "last_exit", p, &w->last_exit);
}

bool ReadPending(Reader& r, const YAML::Node& row, const std::string& path, PendingSlot* s) {
  if (!row.IsMap()) return r.Fail(path + ": expected a mapping");
  const std::string p = path + ".";
  return r.Required(row, "slot", p, &s->slot) && r.Optional(row, "respawn_in", p, &s->respawn_in) &&
         r.Optional(row, "consecutive_failures", p, &s->consecutive_failures) &&
         r.Optional(row, "restarts", p, &s->restarts) &&
         r.Optional(row, "last_exit", p, &s->last_exit);
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
  YAML::Emitter out;
  out.SetDoublePrecision(kDoubleDigits);
  out.SetNullFormat(YAML::TildeNull);
  out << YAML::BeginMap;
  Field(out, "master_pid", s.master_pid);
  Str(out, "version", s.version);
  Str(out, "command_name", s.command_name);
  Field(out, "target", s.target);
  Field(out, "generation", s.generation);
  Str(out, "ack_mode", s.ack_mode);
  Field(out, "verbosity", s.verbosity);
  Field(out, "stopping", s.stopping);
  out << YAML::Key << "counts" << YAML::Value << YAML::Flow << YAML::BeginMap;
  Field(out, "booting", s.booting);
  Field(out, "ready", s.ready);
  Field(out, "draining", s.draining);
  out << YAML::EndMap;

  // One flow mapping per row keeps a 100-worker pool readable as 100 lines in einhornsh.
  out << YAML::Key << "workers" << YAML::Value;
  // An empty block sequence comes out as "\n  []": say it on one line instead.
  if (s.workers.empty()) out << YAML::Flow;
  out << YAML::BeginSeq;
  for (const WorkerStatus& w : s.workers) {
    out << YAML::Flow << YAML::BeginMap;
    Field(out, "slot", w.slot);
    Field(out, "index", w.index);
    Field(out, "pid", w.pid);
    Field(out, "generation", w.generation);
    Str(out, "state", w.state);
    OptSeconds(out, "time_to_ready", w.time_to_ready);
    Field(out, "uptime", Millis(w.uptime));
    Field(out, "restarts", w.restarts);
    OptStr(out, "last_exit", w.last_exit);
    out << YAML::EndMap;
  }
  out << YAML::EndSeq;

  out << YAML::Key << "pending" << YAML::Value;
  if (s.pending.empty()) out << YAML::Flow;
  out << YAML::BeginSeq;
  for (const PendingSlot& p : s.pending) {
    out << YAML::Flow << YAML::BeginMap;
    Field(out, "slot", p.slot);
    Field(out, "respawn_in", Millis(p.respawn_in));
    Field(out, "consecutive_failures", p.consecutive_failures);
    Field(out, "restarts", p.restarts);
    OptStr(out, "last_exit", p.last_exit);
    out << YAML::EndMap;
  }
  out << YAML::EndSeq;
  out << YAML::EndMap;
  std::string text = out.c_str();
  text += '\n';
  return text;
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
              r.Optional(root, "stopping", "", &s.stopping);
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
    ok = ok && ReadRows(r, root, "workers", &s.workers, ReadWorker) &&
         ReadRows(r, root, "pending", &s.pending, ReadPending);
    if (!ok) return Result<PoolStatus>::Error("status: " + error);
    return s;
  } catch (const YAML::Exception& e) {
    return Result<PoolStatus>::Error(std::string("status: not YAML: ") + e.what());
  }
}

}  // namespace einhorn::core
