#include "core/events.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <array>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <utility>

#include "core/json_text.h"
#include "core/text.h"

namespace einhorn::core {
namespace {

// Howard Hinnant's civil calendar algorithms (proleptic Gregorian, days since 1970-01-01).
std::int64_t DaysFromCivil(std::int64_t y, unsigned m, unsigned d) {
  y -= m <= 2;
  const std::int64_t era = (y >= 0 ? y : y - 399) / 400;
  const auto yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<std::int64_t>(doe) - 719468;
}

void CivilFromDays(std::int64_t z, std::int64_t* y, unsigned* m, unsigned* d) {
  z += 719468;
  const std::int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  const auto doe = static_cast<unsigned>(z - era * 146097);
  const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const unsigned mp = (5 * doy + 2) / 153;
  *d = doy - (153 * mp + 2) / 5 + 1;
  *m = mp < 10 ? mp + 3 : mp - 9;
  *y = static_cast<std::int64_t>(yoe) + era * 400 + (*m <= 2);
}

// Floor division for negative times (before 1970).
std::int64_t FloorDiv(std::int64_t a, std::int64_t b) {
  return a / b - ((a % b != 0) && ((a < 0) != (b < 0)) ? 1 : 0);
}

double Millis(double seconds) { return std::round(seconds * 1000) / 1000; }

void Member(std::string& out, bool& first, const char* key) {
  if (!first) out += ", ";
  first = false;
  out += '"';
  out += key;
  out += "\": ";
}

void AppendInt(std::string& out, long long v) {
  char buf[24];
  out.append(buf, std::to_chars(buf, buf + sizeof buf, v).ptr);
}

// --- reading the reply ---------------------------------------------------------------------

using Bad = text::Error;

bool Absent(const YAML::Node& n) { return !n.IsDefined() || n.IsNull(); }

template <typename T>
T Get(const YAML::Node& map, const char* key, const std::string& path, const char* expected) {
  const YAML::Node n = map[key];
  T v{};
  if (!n.IsDefined() || !n.IsScalar() || !YAML::convert<T>::decode(n, v)) {
    throw Bad(path + key + ": expected " + expected);
  }
  return v;
}

template <typename T>
std::optional<T> GetOpt(const YAML::Node& map, const char* key, const std::string& path,
                        const char* expected) {
  if (Absent(map[key])) return std::nullopt;
  return Get<T>(map, key, path, expected);
}

Event ReadEvent(const YAML::Node& n, const std::string& path) {
  if (!n.IsMap()) throw Bad(path + ": expected a mapping");
  const std::string p = path + ".";
  Event e;
  e.seq = Get<std::uint64_t>(n, "seq", p, "an unsigned integer");
  const std::string time = Get<std::string>(n, "time", p, "a time");
  const auto wall = ParseUtc(time);
  if (!wall) throw Bad(p + "time: expected a UTC time such as 2024-05-01T12:00:03.250Z");
  e.wall_ns = *wall;
  if (auto mono = GetOpt<double>(n, "mono", p, "a number")) e.mono = Seconds(*mono);
  const std::string name = Get<std::string>(n, "event", p, "an event name");
  if (const auto kind = ParseEventKind(name); kind && *kind != EventKind::kOther) {
    e.kind = *kind;
  } else {
    e.kind = EventKind::kOther;
  }
  e.slot = GetOpt<int>(n, "slot", p, "an integer").value_or(-1);
  e.pid = GetOpt<int>(n, "pid", p, "an integer").value_or(0);
  e.generation = GetOpt<int>(n, "generation", p, "an integer").value_or(0);
  const auto code = GetOpt<int>(n, "exit_code", p, "an integer");
  const auto signal = GetOpt<int>(n, "signal", p, "an integer");
  if (code) e.exit = ExitStatus{false, *code};
  if (signal) e.exit = ExitStatus{true, *signal};
  e.during_drain = GetOpt<bool>(n, "during_drain", p, "true or false").value_or(false);
  e.seconds = GetOpt<double>(n, "seconds", p, "a number");
  e.from = GetOpt<int>(n, "from", p, "an integer");
  e.to = GetOpt<int>(n, "to", p, "an integer");
  e.by = GetOpt<std::string>(n, "by", p, "a string").value_or("");
  e.detail = GetOpt<std::string>(n, "detail", p, "a string").value_or("");
  if (e.kind == EventKind::kOther && name != "other") {
    e.detail = name + (e.detail.empty() ? "" : ": " + e.detail);
  }
  return e;
}

}  // namespace

const char* EventKindName(EventKind kind) {
  for (const auto& [k, name] : kEventKindNames) {
    if (k == kind) return name.data();  // a literal: NUL-terminated
  }
  return "other";
}

std::optional<EventKind> ParseEventKind(std::string_view name) {
  for (const auto& [k, n] : kEventKindNames) {
    if (name == n) return k;
  }
  return std::nullopt;
}

EventClass ClassOf(EventKind kind) {
  switch (kind) {
    case EventKind::kUpgradeStart:
    case EventKind::kUpgradeDone:
    case EventKind::kUpgradeRollback:
    case EventKind::kResize:
    case EventKind::kReload:
    case EventKind::kStop:
    case EventKind::kControl:
      return EventClass::kAudit;
    case EventKind::kControlRefused:
      return EventClass::kRefusal;
    case EventKind::kSpawn:
    case EventKind::kSpawnFailed:
    case EventKind::kReady:
    case EventKind::kExit:
    case EventKind::kRespawnDelay:
    case EventKind::kDrain:
    case EventKind::kKill:
    case EventKind::kWatchdogTimeout:
    case EventKind::kUpgradeProgress:
    case EventKind::kRecycle:
    case EventKind::kRecycleDone:
    case EventKind::kZygote:
    case EventKind::kOther:
      return EventClass::kLifecycle;
  }
  return EventClass::kLifecycle;
}

EventRing::EventRing(size_t capacity) : capacity_(capacity == 0 ? 1 : capacity) {
  share_[static_cast<size_t>(EventClass::kAudit)] = capacity_ / 4;
  share_[static_cast<size_t>(EventClass::kRefusal)] = capacity_ / 10;
  share_[static_cast<size_t>(EventClass::kLifecycle)] =
      capacity_ - capacity_ / 4 - capacity_ / 10;
}

size_t EventRing::size() const {
  size_t n = 0;
  for (const auto& q : held_) n += q.size();
  return n;
}

std::uint64_t EventRing::first_seq() const {
  std::uint64_t first = last_seq_ + 1;
  for (const auto& q : held_) {
    if (!q.empty()) first = std::min(first, q.front().seq);
  }
  return first;
}

void EventRing::Add(Event event) {
  held_[static_cast<size_t>(ClassOf(event.kind))].push_back(std::move(event));
}

void EventRing::Trim() {
  // The victim: the oldest event among the classes over their share. Some class is over its
  // share whenever the ring is over capacity, since the shares add up to the capacity.
  while (size() > capacity_) {
    std::deque<Event>* victim = nullptr;
    for (size_t c = 0; c < kClasses; ++c) {
      std::deque<Event>& q = held_[c];
      if (q.size() <= share_[c]) continue;
      if (victim == nullptr || q.front().seq < victim->front().seq) victim = &q;
    }
    if (victim == nullptr) return;
    victim->pop_front();
  }
}

std::uint64_t EventRing::Push(Event event) {
  event.seq = ++last_seq_;
  Add(std::move(event));
  Trim();
  return last_seq_;
}

std::vector<Event> EventRing::Since(std::uint64_t since, size_t limit) const {
  std::vector<Event> out;
  if (since >= last_seq_) return out;
  // A merge of the classes, each in sequence order: start each after `since`.
  std::array<size_t, kClasses> at{};
  for (size_t c = 0; c < kClasses; ++c) {
    const std::deque<Event>& q = held_[c];
    at[c] = static_cast<size_t>(
        std::upper_bound(q.begin(), q.end(), since,
                         [](std::uint64_t s, const Event& e) { return s < e.seq; }) -
        q.begin());
  }
  while (out.size() < limit) {
    size_t best = kClasses;
    for (size_t c = 0; c < kClasses; ++c) {
      if (at[c] >= held_[c].size()) continue;
      if (best == kClasses || held_[c][at[c]].seq < held_[best][at[best]].seq) best = c;
    }
    if (best == kClasses) break;
    out.push_back(held_[best][at[best]++]);
  }
  return out;
}

void EventRing::Restore(std::uint64_t last_seq, std::vector<Event> events) {
  last_seq_ = last_seq;
  for (auto& q : held_) q.clear();
  for (Event& e : events) Add(std::move(e));
  Trim();
}

std::string FormatUtc(std::int64_t wall_ns) {
  const std::int64_t ms = FloorDiv(wall_ns, 1'000'000);
  const std::int64_t secs = FloorDiv(ms, 1000);
  const std::int64_t days = FloorDiv(secs, 86400);
  const std::int64_t in_day = secs - days * 86400;
  std::int64_t y = 0;
  unsigned m = 0, d = 0;
  CivilFromDays(days, &y, &m, &d);
  char buf[64];
  std::snprintf(buf, sizeof buf, "%04lld-%02u-%02uT%02d:%02d:%02d.%03dZ",
                static_cast<long long>(y), m, d, static_cast<int>(in_day / 3600),
                static_cast<int>(in_day / 60 % 60), static_cast<int>(in_day % 60),
                static_cast<int>(ms - secs * 1000));
  return buf;
}

std::optional<std::int64_t> ParseUtc(std::string_view t) {
  // YYYY-MM-DDTHH:MM:SS.mmmZ, exactly as FormatUtc writes it.
  if (t.size() != 24 || t[4] != '-' || t[7] != '-' || t[10] != 'T' || t[13] != ':' ||
      t[16] != ':' || t[19] != '.' || t[23] != 'Z') {
    return std::nullopt;
  }
  auto num = [&](size_t at, size_t len, int* out) {
    const auto r = std::from_chars(t.data() + at, t.data() + at + len, *out);
    return r.ec == std::errc() && r.ptr == t.data() + at + len;
  };
  int y = 0, mo = 0, d = 0, h = 0, mi = 0, s = 0, ms = 0;
  if (!num(0, 4, &y) || !num(5, 2, &mo) || !num(8, 2, &d) || !num(11, 2, &h) ||
      !num(14, 2, &mi) || !num(17, 2, &s) || !num(20, 3, &ms)) {
    return std::nullopt;
  }
  if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || s > 60) return std::nullopt;
  const std::int64_t days =
      DaysFromCivil(y, static_cast<unsigned>(mo), static_cast<unsigned>(d));
  const std::int64_t secs = days * 86400 + h * 3600 + mi * 60 + s;
  return (secs * 1000 + ms) * 1'000'000;
}

void AppendEventJsonFields(std::string& out, const Event& e, bool with_nulls, bool with_times) {
  bool first = true;
  auto null = [&](const char* key) {
    if (!with_nulls) return;
    Member(out, first, key);
    out += "null";
  };
  auto integer = [&](const char* key, std::optional<long long> v) {
    if (!v) return null(key);
    Member(out, first, key);
    AppendInt(out, *v);
  };
  auto text = [&](const char* key, const std::string& v) {
    if (v.empty()) return null(key);
    Member(out, first, key);
    AppendJsonString(out, v);
  };
  auto number = [&](const char* key, std::optional<double> v) {
    if (!v) return null(key);
    Member(out, first, key);
    AppendJsonNumber(out, *v);
  };
  Member(out, first, "seq");
  AppendInt(out, static_cast<long long>(e.seq));
  if (with_times) {
    Member(out, first, "time");
    AppendJsonString(out, FormatUtc(e.wall_ns));
    number("mono", Millis(ToSeconds(e.mono)));
  }
  Member(out, first, "event");
  AppendJsonString(out, EventKindName(e.kind));
  integer("slot", e.slot >= 0 ? std::optional<long long>(e.slot) : std::nullopt);
  integer("pid", e.pid > 0 ? std::optional<long long>(e.pid) : std::nullopt);
  integer("generation", e.generation > 0 ? std::optional<long long>(e.generation) : std::nullopt);
  integer("exit_code", e.exit && !e.exit->signaled ? std::optional<long long>(e.exit->code)
                                                   : std::nullopt);
  integer("signal", e.exit && e.exit->signaled ? std::optional<long long>(e.exit->code)
                                               : std::nullopt);
  if (e.kind == EventKind::kExit || with_nulls) {
    Member(out, first, "during_drain");
    out += e.during_drain ? "true" : "false";
  }
  number("seconds", e.seconds ? std::optional<double>(Millis(*e.seconds)) : std::nullopt);
  integer("from", e.from);
  integer("to", e.to);
  text("by", e.by);
  text("detail", e.detail);
}

std::string EventToJson(const Event& event) {
  std::string out = "{";
  AppendEventJsonFields(out, event, /*with_nulls=*/true);
  out += '}';
  return out;
}

std::string EventSummary(const Event& e) {
  const std::string secs = e.seconds ? LogSeconds(*e.seconds) : "?";
  const auto gen = [](const std::optional<int>& g) { return g ? std::to_string(*g) : "?"; };
  switch (e.kind) {
    case EventKind::kSpawn:
      return "";
    case EventKind::kReady:
      return "after " + secs;
    case EventKind::kExit:
      return (e.exit ? e.exit->ToString() : std::string("exit ?")) +
             (e.seconds ? " after " + secs : "") + (e.during_drain ? ", draining" : "");
    case EventKind::kRespawnDelay:
      return "in " + secs + (e.detail.empty() ? "" : " (" + e.detail + ")");
    case EventKind::kWatchdogTimeout:
      return "no WATCHDOG=1 for " + secs;
    case EventKind::kRecycle:
      return e.detail + (e.seconds ? ", age " + secs : "");
    case EventKind::kRecycleDone:
      return e.detail + (e.seconds ? " after " + secs : "");
    case EventKind::kUpgradeStart:
      return (e.detail.empty() ? "" : e.detail + ": ") + "generation " + gen(e.from) + " -> " +
             gen(e.to);
    case EventKind::kUpgradeDone:
      return "generation " + gen(e.from) + " -> " + gen(e.to) + " in " + secs;
    case EventKind::kUpgradeRollback:
      return "generation " + gen(e.to) + " rolled back to " + gen(e.from) + " after " + secs +
             (e.detail.empty() ? "" : ": " + e.detail);
    case EventKind::kResize:
      return gen(e.from) + " -> " + gen(e.to) + (e.by.empty() ? "" : " by " + e.by);
    case EventKind::kControl:
    case EventKind::kControlRefused:
    case EventKind::kReload:
      return e.detail + (e.by.empty() ? "" : " by " + e.by);
    case EventKind::kSpawnFailed:
    case EventKind::kDrain:
    case EventKind::kKill:
    case EventKind::kUpgradeProgress:
    case EventKind::kStop:
    case EventKind::kZygote:
    case EventKind::kOther:
      return e.detail;
  }
  return e.detail;
}

std::string EventsReplyToYaml(const EventsReply& reply) {
  std::string out;
  out.reserve(64 + 360 * reply.events.size());
  out += "first_seq: ";
  AppendInt(out, static_cast<long long>(reply.first_seq));
  out += "\nlast_seq: ";
  AppendInt(out, static_cast<long long>(reply.last_seq));
  if (reply.events.empty()) {
    out += "\nevents: []\n";
    return out;
  }
  out += "\nevents:\n";
  for (const Event& e : reply.events) {
    out += "  - ";
    out += EventToJson(e);
    out += '\n';
  }
  return out;
}

Result<EventsReply> EventsReplyFromYaml(const std::string& text) {
  try {
    const YAML::Node root = YAML::Load(text);
    if (!root.IsMap()) return Result<EventsReply>::Error("events: expected a YAML mapping");
    EventsReply r;
    r.first_seq = Get<std::uint64_t>(root, "first_seq", "", "an unsigned integer");
    r.last_seq = Get<std::uint64_t>(root, "last_seq", "", "an unsigned integer");
    const YAML::Node list = root["events"];
    if (!Absent(list)) {
      if (!list.IsSequence()) throw Bad("events: expected a list");
      for (size_t i = 0; i < list.size(); ++i) {
        r.events.push_back(ReadEvent(list[i], "events[" + std::to_string(i) + "]"));
      }
    }
    return r;
  } catch (const Bad& e) {
    return Result<EventsReply>::Error(std::string("events: ") + e.what());
  } catch (const YAML::Exception& e) {
    return Result<EventsReply>::Error(std::string("events: not YAML: ") + e.what());
  }
}

}  // namespace einhorn::core
