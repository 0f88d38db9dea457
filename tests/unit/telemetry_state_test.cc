// The telemetry section of the re-exec state (core/telemetry_state.h): the event ring and the
// counters travel across a reload exactly, and what EncodeState never writes is refused.
#include <doctest/doctest.h>

#include <optional>
#include <string>
#include <string_view>

#include "core/state.h"
#include "core/telemetry.h"
#include "fake_effects.h"

namespace einhorn::core {
namespace {

MasterState Base() {
  MasterState m;
  m.options.command = {"/bin/worker"};
  m.options.socket_path = "/tmp/einhorn.sock";
  test::FakeEffects fx;
  Supervisor s(ConfigFromOptions(m.options, 1), fx);
  s.Start(Seconds(0));
  m.supervisor = s.Snapshot();
  return m;
}

Telemetry Busy() {
  Telemetry t(EventRing::kDefaultCapacity);
  for (int i = 0; i < 1005; ++i) {  // more than the ring holds: the oldest are gone
    Event e;
    e.kind = i % 2 == 0 ? EventKind::kSpawn : EventKind::kExit;
    e.mono = Seconds(i);
    e.wall_ns = 1'714'564'803'250'000'000 + i;
    e.slot = i % 3 - 1;
    e.pid = 1000 + i;
    e.generation = 1 + i / 500;
    if (e.kind == EventKind::kExit) e.exit = ExitStatus{i % 4 == 1, 9};
    e.during_drain = i % 5 == 0;
    if (i % 7 == 0) e.seconds = i / 8.0;
    t.Record(e);
  }
  Event rollback;
  rollback.kind = EventKind::kUpgradeRollback;
  rollback.from = 1;
  rollback.to = 2;
  rollback.seconds = 12.5;
  rollback.by = "uid 0 pid 1";
  rollback.detail = "3 new workers failed (last: \"worker 7 exited\")\n\xff";
  t.Record(rollback);
  Event ready;
  ready.kind = EventKind::kReady;
  ready.seconds = 0.75;
  t.Record(ready);
  t.CountCommand("status");
  t.CountCommand("worker:ack");
  t.CountCommand("bogus");
  return t;
}

std::string With(std::string text, std::string_view from, std::string_view to) {
  const size_t at = text.find(from);
  REQUIRE_MESSAGE(at != std::string::npos, from);
  return text.replace(at, from.size(), to);
}

TEST_CASE("state telemetry: the ring and the counters travel exactly") {
  MasterState m = Base();
  m.telemetry = Busy().Save();
  REQUIRE(m.telemetry.events.size() == EventRing::kDefaultCapacity);
  const std::string text = EncodeState(m);
  const Result<MasterState> back = DecodeState(text);
  REQUIRE_MESSAGE(back.ok(), back.error());
  CHECK(back.value().telemetry == m.telemetry);
  Telemetry restored;
  restored.Restore(back.value().telemetry);
  CHECK(restored.ring().last_seq() == 1007);
  CHECK(restored.ring().first_seq() == 8);
  CHECK(restored.counters().spawns == 503);
  CHECK(restored.counters().upgrades[1] == 1);
  CHECK(restored.Record(Event{}) == 1008);
  // The canonical reader (a reload's) reads the ring and the commands, as the general one does.
  const std::optional<MasterState> canonical = ReadStateCanonical(text);
  REQUIRE(canonical.has_value());
  const Result<MasterState> general = ReadStateGeneral(text);
  REQUIRE_MESSAGE(general.ok(), general.error());
  CHECK(*canonical == general.value());
  CHECK(canonical->telemetry == m.telemetry);

  // A fresh master writes no section; a state without one starts afresh.
  const std::string plain = EncodeState(Base());
  CHECK(plain.find("telemetry:") == std::string::npos);
  REQUIRE(DecodeState(plain).ok());
  CHECK(DecodeState(plain).value().telemetry == Telemetry::Snapshot{});
}

TEST_CASE("state telemetry: the metrics listener and the new options travel") {
  MasterState m = Base();
  m.options.log_format = LogFormat::kJson;
  m.options.metrics_listen = "127.0.0.1:9100";
  m.options.metrics_listen_public = true;
  m.metrics.spec.text = "127.0.0.1:9100";
  m.metrics.spec.host = "127.0.0.1";
  m.metrics.spec.port = 9100;
  m.metrics.fd = 8;
  m.metrics.bound = "127.0.0.1:9100";
  const Result<MasterState> back = DecodeState(EncodeState(m));
  REQUIRE_MESSAGE(back.ok(), back.error());
  CHECK(back.value() == m);
  m.lock_fd = 8;
  CHECK(DecodeState(EncodeState(m)).error() == "metrics.fd: fd 8 is also lock_fd");
  const std::string plain = EncodeState(Base());
  CHECK(plain.find("log_format") == std::string::npos);
  CHECK(plain.find("metrics_listen") == std::string::npos);
  CHECK(DecodeState(plain).value().metrics.fd == -1);
}

TEST_CASE("state telemetry: what EncodeState never writes is refused by its path") {
  MasterState m = Base();
  Telemetry t;
  Event e;
  e.kind = EventKind::kSpawn;
  t.Record(e);
  t.Record(e);
  t.CountCommand("inc");
  m.telemetry = t.Save();
  const std::string text = EncodeState(m);
  REQUIRE(DecodeState(text).ok());
  // Gaps are the ring's (a class of events made room, core/events.h); order is not.
  CHECK(DecodeState(With(text, "last_seq: 2", "last_seq: 3")).ok());
  CHECK(DecodeState(With(text, "last_seq: 2", "last_seq: 1")).error() ==
        "telemetry.events[1]: events must be numbered in ascending order up to last_seq");
  CHECK(DecodeState(With(text, "last_seq: 2", "last_seq: 0")).error() ==
        "telemetry.events[0]: events must be numbered in ascending order up to last_seq");
  CHECK(DecodeState(With(text, "command: \"inc\"", "command: \"rm -rf\"")).error() ==
        "telemetry.commands[0].command: not a command label");
  CHECK(DecodeState(With(text, "upgrades: [0, 0]", "upgrades: [0]")).error() ==
        "telemetry.upgrades: expected 2 counts");
  CHECK(DecodeState(With(text, "kind: spawn", "kind: teleport"))
            .error()
            .rfind("telemetry.events[0].kind: expected one of", 0) == 0);
  CHECK(DecodeState(With(text, "spawns: 2", "spawns: -2")).error() ==
        "telemetry.counters.spawns: expected an unsigned 64-bit integer");
  CHECK(DecodeState(With(text, "time_to_ready: {counts: [0, ", "time_to_ready: {counts: ["))
            .error() == "telemetry.time_to_ready.counts: expected 15 counts");
  CHECK(DecodeState(With(text, "  events:", "  extra: 1\n  events:")).error() ==
        "telemetry.extra: unknown key");
}

}  // namespace
}  // namespace einhorn::core
