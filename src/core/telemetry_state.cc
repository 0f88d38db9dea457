#include "core/telemetry_state.h"

#include "core/state_stream.h"

#include <algorithm>
#include <limits>
#include <string_view>
#include <string>
#include <vector>

namespace einhorn::core::state_format {
namespace {

// kOther is in events.h's table too: a carried event from a newer binary.
constexpr const auto& kKinds = kEventKindNames;

std::string EncodeU64s(const std::vector<std::uint64_t>& values) {
  return Seq(Each(values, U64));
}

template <size_t N>
std::string EncodeArray(const std::array<std::uint64_t, N>& values) {
  return EncodeU64s(std::vector<std::uint64_t>(values.begin(), values.end()));
}

std::string EncodeHistogram(const Histogram& h) {
  return Flow()
      .Add("counts", EncodeU64s(h.counts))
      .Add("sum", Dbl(h.sum))
      .Add("count", U64(h.count))
      .Done();
}

std::string EncodeEvent(const Event& e) {
  return Flow()
      .Add("seq", U64(e.seq))
      .Add("mono", Ns(e.mono))
      .Add("wall", Int(e.wall_ns))
      .Add("kind", Name(kKinds, e.kind))
      .Add("slot", Int(e.slot))
      .Add("pid", Int(e.pid))
      .Add("generation", Int(e.generation))
      .Add("exit", Opt(e.exit,
                       [](const ExitStatus& x) {
                         return Flow()
                             .Add("signaled", Bool(x.signaled))
                             .Add("code", Int(x.code))
                             .Done();
                       }))
      .Add("during_drain", Bool(e.during_drain))
      .Add("seconds", Opt(e.seconds, Dbl))
      .Add("from", Opt(e.from, [](int v) { return Int(v); }))
      .Add("to", Opt(e.to, [](int v) { return Int(v); }))
      .Add("by", Str(e.by))
      .Add("detail", Str(e.detail))
      .Done();
}

std::uint64_t Count(const In& in) { return Unsigned(in); }

// A flow sequence of exactly `n` counts.
std::vector<std::uint64_t> Counts(const In& in, size_t n) {
  std::vector<std::uint64_t> v = List(in, Count);
  if (v.size() != n) Fail(in, "expected " + std::to_string(n) + " counts");
  return v;
}

template <size_t N>
std::array<std::uint64_t, N> Array(const In& in) {
  const std::vector<std::uint64_t> v = Counts(in, N);
  std::array<std::uint64_t, N> out{};
  std::copy(v.begin(), v.end(), out.begin());
  return out;
}

Histogram DecodeHistogram(const In& in, const std::vector<double>& bounds) {
  MapIn m(in);
  Histogram h = Histogram::WithBounds(bounds);
  h.counts = Counts(m.Get("counts"), bounds.size() + 1);
  h.sum = Double(m.Get("sum"));
  h.count = Unsigned(m.Get("count"));
  m.Done();
  return h;
}

// An event's fields in EncodeEvent's order, through either reader's record: TreeRecord, or the
// canonical reader's FlowIn (state_stream.h).
template <typename R>
Event ReadEvent(R& r) {
  Event e;
  r.Get("seq", [&e](const In& in) { e.seq = Unsigned(in); });
  r.Get("mono", [&e](const In& in) { e.mono = Nanos(in); });
  r.Get("wall", [&e](const In& in) {
    e.wall_ns = Integer(in, std::numeric_limits<std::int64_t>::min(),
                        std::numeric_limits<std::int64_t>::max());
  });
  r.Get("kind", [&e](const In& in) { e.kind = Enum(in, kKinds); });
  r.Get("slot", [&e](const In& in) {
    e.slot = static_cast<int>(Integer(in, -1, std::numeric_limits<int>::max()));
  });
  r.Get("pid", [&e](const In& in) {
    e.pid = static_cast<Pid>(Integer(in, 0, std::numeric_limits<int>::max()));
  });
  r.Get("generation", [&e](const In& in) {
    e.generation = static_cast<int>(Integer(in, 0, std::numeric_limits<int>::max()));
  });
  r.Get("exit", [&e](const In& in) {
    e.exit = Opt(in, [](const In& x) {
      MapIn xm(x);
      ExitStatus s;
      s.signaled = Boolean(xm.Get("signaled"));
      s.code = I32(xm.Get("code"));
      xm.Done();
      return s;
    });
  });
  r.Get("during_drain", [&e](const In& in) { e.during_drain = Boolean(in); });
  r.Get("seconds", [&e](const In& in) { e.seconds = Opt(in, Double); });
  r.Get("from", [&e](const In& in) { e.from = Opt(in, I32); });
  r.Get("to", [&e](const In& in) { e.to = Opt(in, I32); });
  r.Get("by", [&e](const In& in) { e.by = String(in); });
  r.Get("detail", [&e](const In& in) { e.detail = String(in); });
  r.Done();
  return e;
}

// ReadEvent through the tree: each key looked up.
class TreeRecord {
 public:
  explicit TreeRecord(const In& in) : in_(in), m_(in) {}
  template <typename F>
  void Get(std::string_view key, F decode) {
    decode(m_.Get(key));
  }
  void Done() const { m_.Done(); }
  [[noreturn]] void Fail(const std::string& what) const { text::Fail(in_, what); }

 private:
  const In& in_;
  MapIn m_;
};

}  // namespace

void EncodeTelemetry(const Telemetry::Snapshot& t, Block b) {
  const Counters& c = t.counters;
  b.Scalar("counters", Flow()
                           .Add("spawns", U64(c.spawns))
                           .Add("spawn_failures", U64(c.spawn_failures))
                           .Add("acks", U64(c.acks))
                           .Add("respawn_backoffs", U64(c.respawn_backoffs))
                           .Add("kills", U64(c.kills))
                           .Add("watchdog_timeouts", U64(c.watchdog_timeouts))
                           .Done());
  std::vector<std::string> exits;
  for (const auto& by_drain : c.exits) exits.push_back(EncodeArray(by_drain));
  b.Scalar("exits", Seq(exits));  // [clean_exit, error_exit, signal] x [running, draining]
  b.Scalar("upgrades", EncodeArray(c.upgrades));
  b.Scalar("reloads", EncodeArray(c.reloads));
  b.Scalar("refused_peers", EncodeArray(c.refused_peers));
  std::vector<std::string> commands;
  for (const auto& [verb, n] : c.commands) {
    commands.push_back(Flow().Add("command", Str(verb)).Add("count", U64(n)).Done());
  }
  b.List("commands", commands);
  b.Scalar("time_to_ready", EncodeHistogram(c.time_to_ready));
  b.Scalar("upgrade_duration", EncodeHistogram(c.upgrade_duration));
  b.Scalar("last_seq", U64(t.last_seq));
  b.List("events", Each(t.events, EncodeEvent));
}

namespace {

// The section, key by key in the order EncodeTelemetry writes them, through either reader:
// TreeKeys (any layout, each key looked up) or the canonical reader's BlockIn.
template <typename R>
Telemetry::Snapshot ReadTelemetry(R& r) {
  Telemetry::Snapshot t;
  Counters& c = t.counters;
  r.Get("counters", [&c](const In& in) {
    MapIn k(in);
    c.spawns = Unsigned(k.Get("spawns"));
    c.spawn_failures = Unsigned(k.Get("spawn_failures"));
    c.acks = Unsigned(k.Get("acks"));
    c.respawn_backoffs = Unsigned(k.Get("respawn_backoffs"));
    c.kills = Unsigned(k.Get("kills"));
    c.watchdog_timeouts = Unsigned(k.Get("watchdog_timeouts"));
    k.Done();
  });
  r.Get("exits", [&c](const In& exits) {
    const auto rows = List(exits, [](const In& row) { return Array<2>(row); });
    if (rows.size() != c.exits.size()) Fail(exits, "expected 3 rows");
    std::copy(rows.begin(), rows.end(), c.exits.begin());
  });
  r.Get("upgrades", [&c](const In& in) { c.upgrades = Array<2>(in); });
  r.Get("reloads", [&c](const In& in) { c.reloads = Array<2>(in); });
  r.Get("refused_peers", [&c](const In& in) { c.refused_peers = Array<3>(in); });
  r.Each("commands", [&c](const In& row) {
    MapIn m(row);
    const In name = m.Get("command");
    const std::string verb = String(name);
    const auto& known = KnownCommands();
    if (std::find(known.begin(), known.end(), verb) == known.end()) {
      Fail(name, "not a command label");
    }
    if (!c.commands.emplace(verb, Unsigned(m.Get("count"))).second) Fail(name, "appears twice");
    m.Done();
  });
  r.Get("time_to_ready", [&c](const In& in) {
    c.time_to_ready = DecodeHistogram(in, TimeToReadyBounds());
  });
  r.Get("upgrade_duration", [&c](const In& in) {
    c.upgrade_duration = DecodeHistogram(in, UpgradeDurationBounds());
  });
  r.Get("last_seq", [&t](const In& in) { t.last_seq = Unsigned(in); });
  r.Records("events", [&t](auto& record) {
    const Event e = ReadEvent(record);
    // The ring's invariant: ascending numbers up to last_seq (with gaps where a class of events
    // had to make room, core/events.h).
    if (e.seq == 0 || e.seq > t.last_seq || (!t.events.empty() && e.seq <= t.events.back().seq)) {
      record.Fail("events must be numbered in ascending order up to last_seq");
    }
    t.events.push_back(e);
  });
  if (t.events.size() > EventRing::kDefaultCapacity) {
    r.FailAt("events", "more than " + std::to_string(EventRing::kDefaultCapacity) + " events");
  }
  r.Done();
  return t;
}

// ReadTelemetry through the tree.
class TreeKeys {
 public:
  explicit TreeKeys(const In& in) : m_(in) {}
  template <typename F>
  void Get(std::string_view key, F decode) {
    decode(m_.Get(key));
  }
  template <typename F>
  void Each(std::string_view key, F decode) {
    const In list = m_.Get(key);
    if (list.node.kind != Node::Kind::kSequence) Fail(list, "expected a list");
    for (size_t i = 0; i < list.node.items.size(); ++i) {
      decode(In{list.node.items[i], &list, {}, i});
    }
  }
  template <typename F>
  void Records(std::string_view key, F decode) {
    Each(key, [&decode](const In& item) {
      TreeRecord record(item);
      decode(record);
    });
  }
  [[noreturn]] void FailAt(std::string_view key, const std::string& what) {
    Fail(m_.Get(key), what);
  }
  void Done() const { m_.Done(); }

 private:
  MapIn m_;
};

}  // namespace

Telemetry::Snapshot DecodeTelemetry(const In& in) {
  TreeKeys keys(in);
  return ReadTelemetry(keys);
}

Telemetry::Snapshot StreamTelemetry(BlockIn& section) { return ReadTelemetry(section); }

}  // namespace einhorn::core::state_format
