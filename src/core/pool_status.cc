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
  // Only while a recycle is pending, or with a lifetime: other rows stay as they were.
  if (w.recycle) {
    OptStr(m.Key("recycle"), w.recycle);
    OptStr(m.Key("recycle_state"), w.recycle_state);
  }
  if (w.recycle_in) OptSeconds(m.Key("recycle_in"), w.recycle_in);
  if (w.memory_bytes) {
    Int(m.Key("memory_bytes"), *w.memory_bytes);
    OptSeconds(m.Key("memory_sampled_ago"), w.memory_sampled_ago);
  }
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

// One value of the subset of YAML that PoolStatusToYaml writes (see FastParse below): what
// the Reader needs of a YAML::Node, on string_views into the text. Anything the fast parser is
// not sure reads exactly as yaml-cpp reads it throws Bail, and the text goes to yaml-cpp.
struct Bail {};

struct FlatEntry;

class FlatNode {
 public:
  enum class Kind { kUndefined, kNull, kPlain, kQuoted, kMap, kSeq };

  bool IsDefined() const { return kind_ != Kind::kUndefined; }
  bool IsNull() const { return kind_ == Kind::kNull; }
  bool IsScalar() const { return kind_ == Kind::kPlain || kind_ == Kind::kQuoted; }
  bool IsMap() const { return kind_ == Kind::kMap; }
  bool IsSequence() const { return kind_ == Kind::kSeq; }
  std::size_t size() const;
  const FlatNode& operator[](std::size_t i) const;
  // The first entry with that key (yaml-cpp's lookup keeps duplicates and finds the first).
  const FlatNode& operator[](std::string_view key) const;

  Kind kind_ = Kind::kUndefined;
  std::string_view plain_;  // kPlain: the scalar's text
  std::string quoted_;      // kQuoted: the decoded string
  std::vector<FlatEntry> map_;  // in order; a std::pair of an incomplete FlatNode upsets clang
  std::vector<FlatNode> seq_;
};

struct FlatEntry {
  FlatEntry(std::string_view k, FlatNode v) : key(k), value(std::move(v)) {}
  std::string_view key;
  FlatNode value;
};

// Out of the class: the vectors of FlatNode need it complete (clang's libstdc++ checks).
std::size_t FlatNode::size() const { return kind_ == Kind::kSeq ? seq_.size() : map_.size(); }

const FlatNode& FlatNode::operator[](std::size_t i) const { return seq_.at(i); }

const FlatNode& FlatNode::operator[](std::string_view key) const {
  for (const FlatEntry& e : map_) {
    if (e.key == key) return e.value;
  }
  static const FlatNode kUndefinedNode;
  return kUndefinedNode;
}

// yaml-cpp's conversions, for the scalars FastParse lets through (its plain scalars are only
// integers without leading zeros, decimals, .inf/-.inf/.nan, true and false). A quoted scalar
// where a number or bool is wanted bails (yaml-cpp would convert its text).
bool Decode(const YAML::Node& node, int* out) { return YAML::convert<int>::decode(node, *out); }
bool Decode(const YAML::Node& node, long long* out) {
  return YAML::convert<long long>::decode(node, *out);
}
bool Decode(const YAML::Node& node, double* out) {
  return YAML::convert<double>::decode(node, *out);
}
bool Decode(const YAML::Node& node, bool* out) { return YAML::convert<bool>::decode(node, *out); }
bool Decode(const YAML::Node& node, std::string* out) {
  return YAML::convert<std::string>::decode(node, *out);
}

template <typename T>
void DecodeInteger(const FlatNode& node, T* out) {
  if (node.kind_ != FlatNode::Kind::kPlain) throw Bail{};
  const std::string_view t = node.plain_;
  T value{};
  const auto [end, ec] = std::from_chars(t.data(), t.data() + t.size(), value);
  if (ec != std::errc{} || end != t.data() + t.size()) throw Bail{};
  *out = value;
}
bool Decode(const FlatNode& node, int* out) { return DecodeInteger(node, out), true; }
bool Decode(const FlatNode& node, long long* out) { return DecodeInteger(node, out), true; }
bool Decode(const FlatNode& node, double* out) {
  if (node.kind_ != FlatNode::Kind::kPlain) throw Bail{};
  const std::string_view t = node.plain_;
  if (t == ".inf") {
    *out = HUGE_VAL;
  } else if (t == "-.inf") {
    *out = -HUGE_VAL;
  } else if (t == ".nan") {
    *out = std::nan("");
  } else {
    const auto [end, ec] = std::from_chars(t.data(), t.data() + t.size(), *out);
    if (ec != std::errc{} || end != t.data() + t.size()) throw Bail{};
  }
  return true;
}
bool Decode(const FlatNode& node, bool* out) {
  if (node.kind_ != FlatNode::Kind::kPlain || (node.plain_ != "true" && node.plain_ != "false")) {
    throw Bail{};
  }
  *out = node.plain_ == "true";
  return true;
}
bool Decode(const FlatNode& node, std::string* out) {
  *out = node.kind_ == FlatNode::Kind::kQuoted ? node.quoted_ : std::string(node.plain_);
  return true;
}

class Reader {
 public:
  explicit Reader(std::string* error) : error_(error) {}

  template <typename Node, typename T>
  bool Required(const Node& map, const char* key, const std::string& path, T* out) {
    const auto& node = map[key];
    if (!node.IsDefined() || node.IsNull()) return Fail(path + key + ": missing");
    return Convert(node, path + key, out);
  }

  // Absent or null leaves *out untouched.
  template <typename Node, typename T>
  bool Optional(const Node& map, const char* key, const std::string& path, T* out) {
    const auto& node = map[key];
    if (!node.IsDefined() || node.IsNull()) return true;
    return Convert(node, path + key, out);
  }

  template <typename Node, typename T>
  bool Optional(const Node& map, const char* key, const std::string& path, std::optional<T>* out) {
    const auto& node = map[key];
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
  template <typename Node, typename T>
  bool Convert(const Node& node, const std::string& path, T* out) {
    if (!node.IsScalar() || !Decode(node, out)) {
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

template <typename Node>
bool ReadWorker(Reader& r, const Node& row, const std::string& path, WorkerStatus* w) {
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
         r.Optional(row, "draining_for", p, &w->draining_for) &&
         r.Optional(row, "recycle", p, &w->recycle) &&
         r.Optional(row, "recycle_state", p, &w->recycle_state) &&
         r.Optional(row, "recycle_in", p, &w->recycle_in) &&
         r.Optional(row, "memory_bytes", p, &w->memory_bytes) &&
         r.Optional(row, "memory_sampled_ago", p, &w->memory_sampled_ago);
}

template <typename Node>
bool ReadPending(Reader& r, const Node& row, const std::string& path, PendingSlot* s) {
  if (!row.IsMap()) return r.Fail(path + ": expected a mapping");
  const std::string p = path + ".";
  return r.Required(row, "slot", p, &s->slot) && r.Optional(row, "respawn_in", p, &s->respawn_in) &&
         r.Optional(row, "consecutive_failures", p, &s->consecutive_failures) &&
         r.Optional(row, "restarts", p, &s->restarts) &&
         r.Optional(row, "last_exit", p, &s->last_exit);
}

template <typename Node>
bool ReadListener(Reader& r, const Node& row, const std::string& path, ListenerStatus* l) {
  if (!row.IsMap()) return r.Fail(path + ": expected a mapping");
  const std::string p = path + ".";
  return r.Required(row, "name", p, &l->name) &&
         r.Optional(row, "accept_queue", p, &l->accept_queue) &&
         r.Optional(row, "backlog", p, &l->backlog);
}

template <typename Node>
bool ReadZygote(Reader& r, const Node& row, const std::string& path, ZygoteStatus* z) {
  if (!row.IsMap()) return r.Fail(path + ": expected a mapping");
  const std::string p = path + ".";
  return r.Required(row, "pid", p, &z->pid) && r.Required(row, "generation", p, &z->generation) &&
         r.Required(row, "state", p, &z->state) && r.Optional(row, "spawns", p, &z->spawns) &&
         r.Optional(row, "age", p, &z->age);
}

template <typename Node>
bool ReadUpgrade(Reader& r, const Node& map, UpgradeStatus* u) {
  const std::string p = "upgrade.";
  return r.Required(map, "strategy", p, &u->strategy) &&
         r.Required(map, "to_generation", p, &u->to_generation) &&
         r.Optional(map, "from_generation", p, &u->from_generation) &&
         r.Optional(map, "elapsed", p, &u->elapsed) &&
         r.Optional(map, "failures", p, &u->failures) &&
         r.Optional(map, "new_ready", p, &u->new_ready) &&
         r.Optional(map, "old_remaining", p, &u->old_remaining);
}

template <typename Node>
bool ReadLastUpgrade(Reader& r, const Node& map, LastUpgradeStatus* u) {
  const std::string p = "last_upgrade.";
  return r.Required(map, "ok", p, &u->ok) && r.Required(map, "generation", p, &u->generation) &&
         r.Optional(map, "reason", p, &u->reason) && r.Optional(map, "ago", p, &u->ago);
}

// Reads the optional mapping under `key` (absent or null: empty) with `parse`.
template <typename Node, typename Section, typename Parse>
bool ReadSection(Reader& r, const Node& root, const char* key, std::optional<Section>* section,
                 Parse parse) {
  const auto& map = root[key];
  section->reset();
  if (!map.IsDefined() || map.IsNull()) return true;
  if (!map.IsMap()) return r.Fail(std::string(key) + ": expected a mapping");
  Section value;
  if (!parse(r, map, &value)) return false;
  *section = std::move(value);
  return true;
}

// Reads the list under `key` (absent or null: empty) with `read_row` for each element.
template <typename Node, typename Row, typename ReadRow>
bool ReadRows(Reader& r, const Node& root, const char* key, std::vector<Row>* rows,
              ReadRow read_row) {
  const auto& list = root[key];
  rows->clear();
  if (!list.IsDefined() || list.IsNull()) return true;
  if (!list.IsSequence()) return r.Fail(std::string(key) + ": expected a list");
  rows->reserve(list.size());
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

namespace {

template <typename Node>
bool ReadStatus(Reader& r, const Node& root, PoolStatus* out) {
  PoolStatus& s = *out;
  const auto& counts = root["counts"];
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
  return ok && ReadSection(r, root, "upgrade", &s.upgrade, ReadUpgrade<Node>) &&
         ReadSection(r, root, "last_upgrade", &s.last_upgrade, ReadLastUpgrade<Node>) &&
         ReadRows(r, root, "workers", &s.workers, ReadWorker<Node>) &&
         ReadRows(r, root, "pending", &s.pending, ReadPending<Node>) &&
         ReadRows(r, root, "listeners", &s.listeners, ReadListener<Node>) &&
         ReadRows(r, root, "zygotes", &s.zygotes, ReadZygote<Node>);
}

// --- the fast path ----------------------------------------------------------------------------
// yaml-cpp needs ~1.5 s for the status of 5000 workers (its scanner and node graph), far from
// einhornctl's 100 ms budget. The master writes a small fixed subset of YAML (see the header's
// layout), which this parses in one pass into FlatNodes: top-level `key: value` lines, `key:`
// followed by `  - {flow map}` rows, `key: []`, one-line flow maps of scalars; scalars only as
// PoolStatusToYaml writes them. Anything else (a comment, another indentation, a plain scalar
// of another shape, an escape it does not write, a reader error) throws Bail and the whole text
// is read by yaml-cpp, so the result, and every error message, is yaml-cpp's reading.

class FastParser {
 public:
  explicit FastParser(std::string_view text) : t_(text) {}

  FlatNode Document() {
    FlatNode root;
    root.kind_ = FlatNode::Kind::kMap;
    while (p_ < t_.size()) {
      if (t_[p_] == '\n') {  // a blank line
        ++p_;
        continue;
      }
      const std::string_view key = Key();
      Expect(':');
      FlatNode value;
      if (AtEol()) {  // `key:` then rows, or nothing (null)
        ++p_;
        value = Rows();
      } else {
        Expect(' ');
        value = Value();
        if (!AtEol()) throw Bail{};
        ++p_;
      }
      root.map_.emplace_back(key, std::move(value));
    }
    return root;
  }

 private:
  bool AtEol() const { return p_ < t_.size() && t_[p_] == '\n'; }
  void Expect(char c) {
    if (p_ >= t_.size() || t_[p_] != c) throw Bail{};
    ++p_;
  }
  static bool KeyChar(char c) { return (c >= 'a' && c <= 'z') || c == '_'; }

  std::string_view Key() {
    const std::size_t start = p_;
    while (p_ < t_.size() && KeyChar(t_[p_])) ++p_;
    if (p_ == start) throw Bail{};
    return t_.substr(start, p_ - start);
  }

  FlatNode Rows() {
    FlatNode seq;
    seq.kind_ = FlatNode::Kind::kSeq;
    while (t_.substr(p_, 4) == "  - ") {
      p_ += 4;
      if (p_ >= t_.size() || t_[p_] != '{') throw Bail{};
      seq.seq_.push_back(FlowMap());
      if (!AtEol()) throw Bail{};
      ++p_;
    }
    if (seq.seq_.empty()) seq.kind_ = FlatNode::Kind::kNull;  // `key:` alone is null
    return seq;
  }

  FlatNode Value() {
    if (p_ < t_.size() && t_[p_] == '{') return FlowMap();
    if (t_.substr(p_, 2) == "[]") {
      p_ += 2;
      FlatNode seq;
      seq.kind_ = FlatNode::Kind::kSeq;
      return seq;
    }
    return Scalar();
  }

  FlatNode FlowMap() {
    Expect('{');
    FlatNode map;
    map.kind_ = FlatNode::Kind::kMap;
    if (p_ < t_.size() && t_[p_] == '}') {
      ++p_;
      return map;
    }
    for (;;) {
      const std::string_view key = Key();
      Expect(':');
      Expect(' ');
      map.map_.emplace_back(key, Scalar());
      if (p_ < t_.size() && t_[p_] == '}') {
        ++p_;
        return map;
      }
      Expect(',');
      Expect(' ');
    }
  }

  FlatNode Scalar() {
    if (p_ < t_.size() && t_[p_] == '"') return Quoted();
    const std::size_t start = p_;
    while (p_ < t_.size() && t_[p_] != '\n' && t_[p_] != ',' && t_[p_] != '}') ++p_;
    FlatNode n;
    n.plain_ = t_.substr(start, p_ - start);
    if (n.plain_ == "~") {
      n.kind_ = FlatNode::Kind::kNull;
    } else if (PlainNumber(n.plain_) || n.plain_ == "true" || n.plain_ == "false" ||
               n.plain_ == ".inf" || n.plain_ == "-.inf" || n.plain_ == ".nan") {
      n.kind_ = FlatNode::Kind::kPlain;
    } else {
      throw Bail{};
    }
    return n;
  }

  // -?D+ or -?D+.D+, no leading zero before another digit (yaml-cpp reads "010" as octal).
  static bool PlainNumber(std::string_view t) {
    std::size_t i = t.starts_with('-') ? 1 : 0;
    auto digits = [&] {
      const std::size_t start = i;
      while (i < t.size() && t[i] >= '0' && t[i] <= '9') ++i;
      return i - start;
    };
    const std::size_t first = i;
    const std::size_t n = digits();
    if (n == 0 || (n > 1 && t[first] == '0')) return false;
    if (i == t.size()) return true;
    if (t[i] != '.') return false;
    ++i;
    return digits() > 0 && i == t.size();
  }

  static int Hex(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    throw Bail{};
  }

  unsigned HexDigits(int n) {
    if (p_ + static_cast<std::size_t>(n) > t_.size()) throw Bail{};
    unsigned v = 0;
    for (int i = 0; i < n; ++i) v = v * 16 + static_cast<unsigned>(Hex(t_[p_++]));
    return v;
  }

  static void AppendUtf8(std::string& out, unsigned cp) { text::AppendUtf8(out, cp); }

  FlatNode Quoted() {
    Expect('"');
    FlatNode n;
    n.kind_ = FlatNode::Kind::kQuoted;
    for (;;) {
      if (p_ >= t_.size()) throw Bail{};
      const char c = t_[p_++];
      if (c == '"') return n;
      // Raw control characters and line breaks are the writer's escapes, never raw.
      if (static_cast<unsigned char>(c) < 0x20 || c == 0x7F) throw Bail{};
      if (c != '\\') {
        n.quoted_ += c;
        continue;
      }
      if (p_ >= t_.size()) throw Bail{};
      switch (t_[p_++]) {
        case '"':
          n.quoted_ += '"';
          break;
        case '\\':
          n.quoted_ += '\\';
          break;
        case 'n':
          n.quoted_ += '\n';
          break;
        case 'r':
          n.quoted_ += '\r';
          break;
        case 't':
          n.quoted_ += '\t';
          break;
        case 'x':
          AppendUtf8(n.quoted_, HexDigits(2));
          break;
        case 'u': {
          const unsigned cp = HexDigits(4);
          if (cp >= 0xD800 && cp <= 0xDFFF) throw Bail{};  // surrogates: yaml-cpp's business
          AppendUtf8(n.quoted_, cp);
          break;
        }
        default:
          throw Bail{};
      }
    }
  }

  std::string_view t_;
  std::size_t p_ = 0;
};

// The status read without yaml-cpp, or nullopt where the fast path is not sure.
std::optional<PoolStatus> FastRead(const std::string& text) {
  try {
    const FlatNode root = FastParser(text).Document();
    PoolStatus s;
    std::string error;
    Reader r(&error);
    if (!ReadStatus(r, root, &s)) return std::nullopt;  // yaml-cpp says what is wrong
    return s;
  } catch (const Bail&) {
    return std::nullopt;
  }
}

}  // namespace

Result<PoolStatus> PoolStatusFromYamlSlow(const std::string& text) {
  try {
    const YAML::Node root = YAML::Load(text);
    if (!root.IsMap()) return Result<PoolStatus>::Error("status: expected a YAML mapping");
    PoolStatus s;
    std::string error;
    Reader r(&error);
    if (!ReadStatus(r, root, &s)) return Result<PoolStatus>::Error("status: " + error);
    return s;
  } catch (const YAML::Exception& e) {
    return Result<PoolStatus>::Error(std::string("status: not YAML: ") + e.what());
  }
}

std::optional<PoolStatus> PoolStatusFromYamlFast(const std::string& text) { return FastRead(text); }

Result<PoolStatus> PoolStatusFromYaml(const std::string& text) {
  if (std::optional<PoolStatus> fast = FastRead(text)) return std::move(*fast);
  return PoolStatusFromYamlSlow(text);
}

}  // namespace einhorn::core
