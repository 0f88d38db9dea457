#include "core/zygote.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <utility>

#include "core/json_text.h"

namespace einhorn::core {
namespace {

constexpr std::array<std::pair<ZygoteState, std::string_view>, 3> kStateNames{{
    {ZygoteState::kLoading, "loading"},
    {ZygoteState::kReady, "ready"},
    {ZygoteState::kClosing, "closing"},
}};

std::string Name(const Zygote& z) {
  return "zygote " + std::to_string(z.pid) + " (generation " + std::to_string(z.generation) + ")";
}

Event ZygoteEvent(const Zygote& z, const std::string& detail, Time now) {
  Event e = EventAt(EventKind::kZygote, now);
  e.pid = z.pid;
  e.generation = z.generation;
  e.detail = detail;
  return e;
}

}  // namespace

const char* ZygoteStateName(ZygoteState s) {
  for (const auto& [state, name] : kStateNames) {
    if (state == s) return name.data();
  }
  return "unknown";
}

std::optional<ZygoteState> ParseZygoteState(std::string_view name) {
  for (const auto& [state, n] : kStateNames) {
    if (n == name) return state;
  }
  return std::nullopt;
}

Status CheckZygotes(const ZygoteBookSnapshot& s) {
  std::set<Pid> seen;
  int gating = 0;
  for (size_t i = 0; i < s.zygotes.size(); ++i) {
    const Zygote& z = s.zygotes[i];
    const std::string at = "zygotes[" + std::to_string(i) + "]";
    if (z.pid <= 0) return Status::Error(at + ".pid: " + std::to_string(z.pid) + " is not a pid");
    if (!seen.insert(z.pid).second) {
      return Status::Error(at + ".pid: " + std::to_string(z.pid) + " appears twice");
    }
    if (z.generation < 1) return Status::Error(at + ".generation: must be at least 1");
    if (z.spawns < 0) return Status::Error(at + ".spawns: must not be negative");
    if (z.gates) ++gating;
  }
  if (gating > 1) return Status::Error("zygotes: more than one gates an upgrade");
  if (s.failures < 0) return Status::Error("zygote_failures: must not be negative");
  return Status::Ok();
}

Duration ZygoteBook::BackoffFor(int failures) const {
  const double base = ToSeconds(policy_.backoff_base);
  const double cap = ToSeconds(policy_.backoff_cap);
  return Seconds(std::min(cap, base * std::pow(1.5, std::max(0, failures - 1))));
}

Zygote* ZygoteBook::FindMutable(Pid pid) {
  for (Zygote& z : s_.zygotes) {
    if (z.pid == pid) return &z;
  }
  return nullptr;
}

const Zygote* ZygoteBook::Find(Pid pid) const {
  for (const Zygote& z : s_.zygotes) {
    if (z.pid == pid) return &z;
  }
  return nullptr;
}

const Zygote* ZygoteBook::ReadyFor(int generation) const {
  for (const Zygote& z : s_.zygotes) {
    if (z.generation == generation && z.state == ZygoteState::kReady && !z.gates) return &z;
  }
  return nullptr;
}

const Zygote* ZygoteBook::LiveFor(int generation) const {
  for (const Zygote& z : s_.zygotes) {
    if (z.generation == generation && z.state != ZygoteState::kClosing) return &z;
  }
  return nullptr;
}

const Zygote* ZygoteBook::Gating() const {
  for (const Zygote& z : s_.zygotes) {
    if (z.gates && z.state != ZygoteState::kClosing) return &z;
  }
  return nullptr;
}

std::vector<ZygoteAction> ZygoteBook::Decide(const ZygoteFacts& facts, Time now) {
  std::vector<ZygoteAction> out;
  using K = ZygoteAction::Kind;
  for (Zygote& z : s_.zygotes) {
    if (z.state == ZygoteState::kClosing) {
      if (z.closed_at && now >= After(*z.closed_at, policy_.close_grace)) {
        // Killed once: the grace starts again, so a zygote stuck in D state is not killed in a
        // loop.
        z.closed_at = now;
        out.push_back({K::kKill, 0, std::nullopt, z.pid,
                       "still there " + LogSeconds(policy_.close_grace) + " after it was closed"});
      }
      continue;
    }
    if (facts.stopping) {
      z.state = ZygoteState::kClosing;
      z.closed_at = now;
      z.gates.reset();
      out.push_back({K::kClose, 0, std::nullopt, z.pid, "the master is stopping"});
      continue;
    }
    if (z.state == ZygoteState::kLoading && now >= After(z.started_at, policy_.load_timeout)) {
      if (z.fault.empty()) {
        z.fault = "not ready within the load timeout of " + LogSeconds(policy_.load_timeout);
        out.push_back({K::kKill, 0, std::nullopt, z.pid, z.fault});
      }
      continue;
    }
    const bool needed = z.gates || z.generation == facts.generation ||
                        facts.live_generations.count(z.generation) > 0;
    if (!needed && z.fault.empty()) {
      z.state = ZygoteState::kClosing;
      z.closed_at = now;
      out.push_back({K::kClose, 0, std::nullopt, z.pid,
                     "generation " + std::to_string(z.generation) + " has no worker left"});
    }
  }
  if (facts.stopping) {
    upgrade_.reset();
    return out;
  }
  if (upgrade_) {
    out.push_back({K::kStart, upgrade_->generation, upgrade_->strategy, 0, ""});
    upgrade_.reset();
  }
  if (!LiveFor(facts.generation) && (!s_.respawn_at || now >= *s_.respawn_at)) {
    s_.respawn_at.reset();
    out.push_back({K::kStart, facts.generation, std::nullopt, 0, ""});
  }
  return out;
}

std::optional<Time> ZygoteBook::NextDeadline() const {
  std::optional<Time> next = s_.respawn_at;
  auto consider = [&next](Time t) {
    if (!next || t < *next) next = t;
  };
  if (upgrade_) consider(Time::min());
  for (const Zygote& z : s_.zygotes) {
    if (z.state == ZygoteState::kClosing && z.closed_at) {
      consider(After(*z.closed_at, policy_.close_grace));
    } else if (z.state == ZygoteState::kLoading && z.fault.empty()) {
      consider(After(z.started_at, policy_.load_timeout));
    }
  }
  return next;
}

std::optional<Pid> ZygoteBook::RequestUpgrade(UpgradeStrategy strategy, int generation, Time) {
  std::optional<Pid> superseded;
  for (Zygote& z : s_.zygotes) {
    if (z.gates && z.state != ZygoteState::kClosing) {
      z.gates.reset();
      z.state = ZygoteState::kClosing;
      z.closed_at.reset();  // killed now, not after a grace
      if (z.fault.empty()) z.fault = "superseded by a newer upgrade";
      superseded = z.pid;
    }
  }
  upgrade_ = Request{strategy, generation};
  return superseded;
}

void ZygoteBook::Started(Pid pid, int generation, std::optional<UpgradeStrategy> gates,
                         Time now) {
  Zygote z;
  z.pid = pid;
  z.generation = generation;
  z.started_at = now;
  z.gates = gates;
  s_.zygotes.push_back(std::move(z));
  std::sort(s_.zygotes.begin(), s_.zygotes.end(),
            [](const Zygote& a, const Zygote& b) { return a.pid < b.pid; });
}

ZygoteEnd ZygoteBook::StartFailed(int generation, std::optional<UpgradeStrategy> gates,
                                  const std::string& error, int current_generation, Time now) {
  ZygoteEnd end;
  end.known = true;
  end.generation = generation;
  end.level = LogLevel::kError;
  Zygote none;
  none.generation = generation;
  end.event = ZygoteEvent(none, "start failed: " + error.substr(0, 200), now);
  if (gates) {
    end.failed_upgrade = gates;
    end.why = "its zygote could not be started: " + error;
  } else if (generation == current_generation) {
    ++s_.failures;
    s_.respawn_at = After(now, BackoffFor(s_.failures));
    end.respawn_at = s_.respawn_at;
  }
  end.line = "the zygote of generation " + std::to_string(generation) +
             " could not be started: " + error +
             (end.respawn_at ? "; trying again in " + LogSeconds(*end.respawn_at - now) : "");
  return end;
}

std::optional<UpgradeStrategy> ZygoteBook::Ready(Pid pid, Time now) {
  Zygote* z = FindMutable(pid);
  if (z == nullptr || z->state != ZygoteState::kLoading || !z->fault.empty()) return std::nullopt;
  z->state = ZygoteState::kReady;
  z->ready_at = now;
  s_.failures = 0;
  std::optional<UpgradeStrategy> gated = z->gates;
  z->gates.reset();
  return gated;
}

void ZygoteBook::Fault(Pid pid, const std::string& why, Time) {
  Zygote* z = FindMutable(pid);
  if (z != nullptr && z->fault.empty()) z->fault = why;
}

void ZygoteBook::CountSpawn(Pid pid) {
  if (Zygote* z = FindMutable(pid)) ++z->spawns;
}

ZygoteEnd ZygoteBook::Ended(Pid pid, const std::string& status, int current_generation,
                            Time now) {
  ZygoteEnd end;
  const auto it = std::find_if(s_.zygotes.begin(), s_.zygotes.end(),
                               [pid](const Zygote& z) { return z.pid == pid; });
  if (it == s_.zygotes.end()) return end;
  const Zygote z = *it;
  s_.zygotes.erase(it);
  end.known = true;
  end.generation = z.generation;
  const bool loading = z.state == ZygoteState::kLoading;
  std::string how = "exited with " + status;
  if (!z.fault.empty()) how = z.fault + " (" + how + ")";
  if (z.state == ZygoteState::kClosing && z.fault.empty()) {
    end.line = Name(z) + " " + how + " after it was closed (" + std::to_string(z.spawns) +
               " workers forked)";
    end.event = ZygoteEvent(z, "exit: " + status, now);
    return end;
  }
  end.level = LogLevel::kError;
  if (z.gates) {
    end.failed_upgrade = z.gates;
    end.why = "the new zygote (pid " + std::to_string(z.pid) + ") failed to load: " + how;
    end.line = Name(z) + " failed to load: " + how;
    end.event = ZygoteEvent(z, "load failed: " + how.substr(0, 200), now);
    return end;
  }
  if (z.state != ZygoteState::kClosing && z.generation == current_generation) {
    ++s_.failures;
    s_.respawn_at = After(now, BackoffFor(s_.failures));
    end.respawn_at = s_.respawn_at;
  }
  end.line = Name(z) + (loading ? " failed to load: " : " died: ") + how +
             "; its workers keep running" +
             (end.respawn_at ? "; a new zygote starts in " + LogSeconds(*end.respawn_at - now)
                             : "");
  end.event = ZygoteEvent(z, (loading ? "load failed: " : "exit: ") + how.substr(0, 200), now);
  return end;
}

// ---------------------------------------------------------------------------------------
// The messages: a small strict JSON reader, enough for one flat object (values of unknown keys
// may be anything JSON, skipped with a depth limit).

namespace {

constexpr int kMaxDepth = 32;

class JsonReader {
 public:
  explicit JsonReader(std::string_view s) : s_(s) {}

  void Space() {
    while (i_ < s_.size() && (s_[i_] == ' ' || s_[i_] == '\t' || s_[i_] == '\n' || s_[i_] == '\r')) {
      ++i_;
    }
  }
  bool AtEnd() {
    Space();
    return i_ == s_.size();
  }
  bool Eat(char c) {
    Space();
    if (i_ < s_.size() && s_[i_] == c) {
      ++i_;
      return true;
    }
    return false;
  }
  char Peek() {
    Space();
    return i_ < s_.size() ? s_[i_] : '\0';
  }

  // After the opening quote was seen by Peek.
  bool String(std::string* out) {
    if (!Eat('"')) return false;
    while (i_ < s_.size()) {
      const unsigned char c = static_cast<unsigned char>(s_[i_++]);
      if (c == '"') return true;
      if (c < 0x20) return false;
      if (c != '\\') {
        out->push_back(static_cast<char>(c));
        continue;
      }
      if (i_ >= s_.size()) return false;
      const char e = s_[i_++];
      switch (e) {
        case '"': case '\\': case '/': out->push_back(e); break;
        case 'b': out->push_back('\b'); break;
        case 'f': out->push_back('\f'); break;
        case 'n': out->push_back('\n'); break;
        case 'r': out->push_back('\r'); break;
        case 't': out->push_back('\t'); break;
        case 'u': {
          std::uint32_t cp = 0;
          if (!Hex4(&cp)) return false;
          if (cp >= 0xD800 && cp <= 0xDBFF) {
            std::uint32_t lo = 0;
            if (i_ + 1 < s_.size() && s_[i_] == '\\' && s_[i_ + 1] == 'u') {
              i_ += 2;
              if (!Hex4(&lo) || lo < 0xDC00 || lo > 0xDFFF) return false;
              cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            } else {
              cp = 0xFFFD;
            }
          } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
            cp = 0xFFFD;
          }
          Utf8(cp, out);
          break;
        }
        default:
          return false;
      }
    }
    return false;
  }

  // An integer without fraction or exponent, in [lo, hi]; false for anything else.
  bool Integer(std::int64_t* out) {
    Space();
    const size_t start = i_;
    bool negative = false;
    if (i_ < s_.size() && s_[i_] == '-') {
      negative = true;
      ++i_;
    }
    if (i_ >= s_.size() || s_[i_] < '0' || s_[i_] > '9') return false;
    if (s_[i_] == '0' && i_ + 1 < s_.size() && s_[i_ + 1] >= '0' && s_[i_ + 1] <= '9') {
      return false;
    }
    std::int64_t v = 0;
    while (i_ < s_.size() && s_[i_] >= '0' && s_[i_] <= '9') {
      const int d = s_[i_++] - '0';
      if (v > (INT64_MAX - d) / 10) return false;
      v = v * 10 + d;
    }
    if (i_ < s_.size() && (s_[i_] == '.' || s_[i_] == 'e' || s_[i_] == 'E')) {
      i_ = start;
      return false;
    }
    *out = negative ? -v : v;
    return true;
  }

  bool Literal(std::string_view word) {
    Space();
    if (s_.substr(i_, word.size()) != word) return false;
    i_ += word.size();
    return true;
  }

  // Any JSON value, thrown away.
  bool Skip(int depth) {
    if (depth > kMaxDepth) return false;
    const char c = Peek();
    if (c == '"') {
      std::string ignored;
      return String(&ignored);
    }
    if (c == '{' || c == '[') {
      const char close = c == '{' ? '}' : ']';
      ++i_;
      if (Eat(close)) return true;
      for (;;) {
        if (c == '{') {
          std::string key;
          if (Peek() != '"' || !String(&key) || !Eat(':')) return false;
        }
        if (!Skip(depth + 1)) return false;
        if (Eat(close)) return true;
        if (!Eat(',')) return false;
      }
    }
    if (Literal("true") || Literal("false") || Literal("null")) return true;
    return Number();
  }

 private:
  bool Hex4(std::uint32_t* cp) {
    if (i_ + 4 > s_.size()) return false;
    for (int k = 0; k < 4; ++k) {
      const char h = s_[i_++];
      *cp <<= 4;
      if (h >= '0' && h <= '9') {
        *cp |= static_cast<std::uint32_t>(h - '0');
      } else if (h >= 'a' && h <= 'f') {
        *cp |= static_cast<std::uint32_t>(h - 'a' + 10);
      } else if (h >= 'A' && h <= 'F') {
        *cp |= static_cast<std::uint32_t>(h - 'A' + 10);
      } else {
        return false;
      }
    }
    return true;
  }
  static void Utf8(std::uint32_t cp, std::string* out) {
    if (cp < 0x80) {
      out->push_back(static_cast<char>(cp));
    } else if (cp < 0x800) {
      out->push_back(static_cast<char>(0xC0 | (cp >> 6)));
      out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    } else if (cp < 0x10000) {
      out->push_back(static_cast<char>(0xE0 | (cp >> 12)));
      out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
      out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    } else {
      out->push_back(static_cast<char>(0xF0 | (cp >> 18)));
      out->push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
      out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
      out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    }
  }
  bool Number() {
    Space();
    const size_t start = i_;
    if (i_ < s_.size() && s_[i_] == '-') ++i_;
    size_t digits = 0;
    while (i_ < s_.size() && ((s_[i_] >= '0' && s_[i_] <= '9') || s_[i_] == '.' ||
                              s_[i_] == 'e' || s_[i_] == 'E' || s_[i_] == '+' || s_[i_] == '-')) {
      ++i_;
      ++digits;
    }
    return digits > 0 && i_ > start;
  }

  std::string_view s_;
  size_t i_ = 0;
};

}  // namespace

Result<ZygoteMessage> ParseZygoteMessage(std::string_view packet) {
  using R = Result<ZygoteMessage>;
  if (packet.size() > kMaxZygotePacket) {
    return R::Error("a message of " + std::to_string(packet.size()) + " bytes (at most " +
                    std::to_string(kMaxZygotePacket) + ")");
  }
  JsonReader r(packet);
  if (!r.Eat('{')) return R::Error("not a JSON object");
  std::optional<bool> ready;
  std::optional<std::string> error;
  std::optional<std::int64_t> spawned, failed, pid;
  if (!r.Eat('}')) {
    for (;;) {
      std::string key;
      if (r.Peek() != '"' || !r.String(&key) || !r.Eat(':')) return R::Error("not a JSON object");
      auto integer = [&](std::optional<std::int64_t>* into) {
        std::int64_t v = 0;
        if (!r.Integer(&v)) return false;
        *into = v;
        return true;
      };
      bool ok = true;
      if (key == "ready") {
        if (r.Literal("true")) {
          ready = true;
        } else if (r.Literal("false")) {
          ready = false;
        } else {
          ok = false;
        }
      } else if (key == "error") {
        std::string text;
        ok = r.Peek() == '"' && r.String(&text);
        error = std::move(text);
      } else if (key == "spawned") {
        ok = integer(&spawned);
      } else if (key == "failed") {
        ok = integer(&failed);
      } else if (key == "pid") {
        ok = integer(&pid);
      } else {
        if (!r.Skip(1)) return R::Error("not valid JSON");
      }
      if (!ok) return R::Error("'" + key.substr(0, 40) + "' has a value of the wrong type");
      if (r.Eat('}')) break;
      if (!r.Eat(',')) return R::Error("not valid JSON");
    }
  }
  if (!r.AtEnd()) return R::Error("bytes after the JSON object");
  ZygoteMessage m;
  if (error && error->size() > kMaxZygoteErrorText) {
    error->resize(kMaxZygoteErrorText);
    error->append("...");
  }
  if (spawned) {
    if (*spawned <= 0) return R::Error("'spawned' must be a positive request id");
    if (!pid) return R::Error("'spawned' without 'pid'");
    m.kind = ZygoteMessage::Kind::kSpawned;
    m.id = *spawned;
    m.pid = *pid;
    return m;
  }
  if (failed) {
    if (*failed <= 0) return R::Error("'failed' must be a positive request id");
    m.kind = ZygoteMessage::Kind::kFailed;
    m.id = *failed;
    m.error = error.value_or("(no reason given)");
    return m;
  }
  if (ready) {
    if (!*ready) return R::Error("'ready' must be true");
    m.kind = ZygoteMessage::Kind::kReady;
    return m;
  }
  if (error) {
    m.kind = ZygoteMessage::Kind::kError;
    m.error = *error;
    return m;
  }
  return R::Error("no known key (ready, error, spawned, failed)");
}

std::string EncodeSpawnRequest(std::int64_t id, const std::vector<std::string>& env,
                               const std::vector<std::string>& self_pid_vars,
                               std::optional<int> pdeath_signal,
                               const std::vector<int>& fd_targets) {
  std::string out = "{\"spawn\": " + std::to_string(id) + ", \"env\": {";
  bool first = true;
  for (const std::string& e : env) {
    const size_t eq = e.find('=');
    if (eq == std::string::npos) continue;
    if (!first) out += ", ";
    first = false;
    AppendJsonString(out, std::string_view(e).substr(0, eq));
    out += ": ";
    AppendJsonString(out, std::string_view(e).substr(eq + 1));
  }
  out += "}, \"self_pid_vars\": [";
  for (size_t i = 0; i < self_pid_vars.size(); ++i) {
    if (i > 0) out += ", ";
    AppendJsonString(out, self_pid_vars[i]);
  }
  out += "]";
  if (pdeath_signal) out += ", \"pdeath_signal\": " + std::to_string(*pdeath_signal);
  if (!fd_targets.empty()) {
    out += ", \"fds\": [";
    for (size_t i = 0; i < fd_targets.size(); ++i) {
      if (i > 0) out += ", ";
      out += std::to_string(fd_targets[i]);
    }
    out += "]";
  }
  out += "}";
  return out;
}

}  // namespace einhorn::core
