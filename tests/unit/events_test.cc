// core/events.h: the ring, the UTC timestamps, the JSON fields and the `events` reply's YAML
// (written by the master, read back by einhornctl).
#include "core/events.h"

#include <doctest/doctest.h>

#include <string>
#include <utility>
#include <vector>

#include "core/json_text.h"

namespace einhorn::core {
namespace {

Event Spawn(int slot, Pid pid) {
  Event e;
  e.kind = EventKind::kSpawn;
  e.slot = slot;
  e.pid = pid;
  e.generation = 1;
  return e;
}

TEST_CASE("events: the ring numbers events and keeps the newest") {
  EventRing ring(3);
  CHECK(ring.last_seq() == 0);
  CHECK(ring.first_seq() == 1);
  CHECK(ring.Since(0).empty());
  for (int i = 0; i < 5; ++i) CHECK(ring.Push(Spawn(i, 100 + i)) == static_cast<unsigned>(i + 1));
  CHECK(ring.last_seq() == 5);
  CHECK(ring.first_seq() == 3);
  REQUIRE(ring.events().size() == 3);
  const std::vector<Event> all = ring.Since(0);
  REQUIRE(all.size() == 3);
  CHECK(all[0].seq == 3);
  CHECK(all[0].pid == 102);
  CHECK(all[2].seq == 5);
  // After a sequence number: only what is newer; older than the ring holds: all of it.
  CHECK(ring.Since(4).size() == 1);
  CHECK(ring.Since(4)[0].seq == 5);
  CHECK(ring.Since(1).size() == 3);
  CHECK(ring.Since(5).empty());
  CHECK(ring.Since(99).empty());
  CHECK(ring.Since(0, 2).size() == 2);
  CHECK(ring.Since(0, 2)[1].seq == 4);
}

TEST_CASE("events: a restored ring carries on numbering") {
  EventRing ring(2);
  std::vector<Event> events = {Spawn(0, 1), Spawn(1, 2), Spawn(2, 3)};
  for (size_t i = 0; i < events.size(); ++i) events[i].seq = 8 + i;
  ring.Restore(10, events);
  CHECK(ring.first_seq() == 9);  // the newest two of three
  CHECK(ring.Push(Spawn(0, 4)) == 11);
  CHECK(ring.Since(0).front().seq == 10);
}

Event Of(EventKind kind, std::string by = "") {
  Event e;
  e.kind = kind;
  e.by = std::move(by);
  return e;
}

TEST_CASE("events: a flood of refusals cannot evict the record of changes") {
  EventRing ring;  // 1000: audit 250, refusals 100, lifecycle 650
  CHECK(ring.share(EventClass::kAudit) == 250);
  CHECK(ring.share(EventClass::kRefusal) == 100);
  CHECK(ring.share(EventClass::kLifecycle) == 650);
  // root's changes first, with the workers they made.
  CHECK(ring.Push(Of(EventKind::kControl, "uid 0 pid 7")) == 1);
  CHECK(ring.Push(Of(EventKind::kResize, "uid 0 pid 7")) == 2);
  CHECK(ring.Push(Spawn(1, 42)) == 3);
  for (int i = 0; i < 20000; ++i) ring.Push(Of(EventKind::kControlRefused, "uid 65534"));
  CHECK(ring.last_seq() == 20003);
  CHECK(ring.size() == 1000);
  const std::vector<Event> all = ring.Since(0);
  REQUIRE(all.size() == 1000);
  CHECK(all[0].seq == 1);
  CHECK(all[0].kind == EventKind::kControl);
  CHECK(all[1].kind == EventKind::kResize);
  CHECK(all[2].kind == EventKind::kSpawn);
  CHECK(all[3].seq == 20003 - 996);  // the newest 997 refusals fill the rest
  CHECK(all.back().seq == 20003);
  for (size_t i = 1; i < all.size(); ++i) CHECK(all[i].seq > all[i - 1].seq);
  CHECK(ring.first_seq() == 1);
  // Following from a number inside the gap: what is newer.
  CHECK(ring.Since(3).front().seq == 20003 - 996);
  CHECK(ring.Since(5).front().seq == 20003 - 996);
  CHECK(ring.Since(20000).size() == 3);
}

TEST_CASE("events: each class keeps at least its share, the oldest over-share event goes") {
  EventRing ring(20);  // audit 5, refusals 2, lifecycle 13
  for (int i = 0; i < 10; ++i) ring.Push(Of(EventKind::kControl));  // 1..10
  for (int i = 0; i < 30; ++i) ring.Push(Spawn(0, 100 + i));        // 11..40
  // The lifecycle took all it could: the audit keeps its newest 5.
  std::vector<Event> all = ring.Since(0);
  REQUIRE(all.size() == 20);
  int audit = 0;
  for (const Event& e : all) audit += e.kind == EventKind::kControl ? 1 : 0;
  CHECK(audit == 5);
  CHECK(all[0].seq == 6);
  CHECK(all[5].seq == 26);  // the newest 15 spawns: the refusal share is free to borrow
  for (int i = 0; i < 50; ++i) ring.Push(Of(EventKind::kControlRefused));  // 41..90
  all = ring.Since(0);
  REQUIRE(all.size() == 20);
  int counts[3] = {0, 0, 0};
  for (const Event& e : all) ++counts[static_cast<int>(ClassOf(e.kind))];
  CHECK(counts[static_cast<int>(EventClass::kAudit)] == 5);
  CHECK(counts[static_cast<int>(EventClass::kLifecycle)] == 13);
  CHECK(counts[static_cast<int>(EventClass::kRefusal)] == 2);
  CHECK(all.back().seq == 90);
  CHECK(all[all.size() - 2].seq == 89);
}

TEST_CASE("events: a restored ring with gaps keeps its order and its shares") {
  EventRing ring(10);  // audit 2, refusals 1, lifecycle 7
  std::vector<Event> events;
  for (std::uint64_t seq : {3, 4, 9, 12, 13, 14}) {
    Event e = seq == 9 ? Of(EventKind::kControl) : Of(EventKind::kControlRefused);
    e.seq = seq;
    events.push_back(e);
  }
  ring.Restore(20, events);
  CHECK(ring.size() == 6);
  CHECK(ring.first_seq() == 3);
  CHECK(ring.Push(Spawn(0, 1)) == 21);
  const std::vector<Event> all = ring.Since(4);
  REQUIRE(all.size() == 5);
  CHECK(all[0].seq == 9);
  CHECK(all[4].seq == 21);
}

TEST_CASE("events: UTC times format and parse back") {
  CHECK(FormatUtc(0) == "1970-01-01T00:00:00.000Z");
  // 2024-02-29T23:59:59.999Z: a leap day, the last millisecond of it.
  const std::int64_t leap = (1709251199LL * 1000 + 999) * 1'000'000 + 123'456;
  CHECK(FormatUtc(leap) == "2024-02-29T23:59:59.999Z");
  CHECK(ParseUtc("2024-02-29T23:59:59.999Z") == leap - 123'456);
  CHECK(FormatUtc(-1'000'000) == "1969-12-31T23:59:59.999Z");
  CHECK(ParseUtc(FormatUtc(-1'000'000)) == -1'000'000);
  for (std::int64_t ms : {0LL, 1LL, 951782400000LL, 4102444800000LL, 1714567890123LL}) {
    CHECK(ParseUtc(FormatUtc(ms * 1'000'000)) == ms * 1'000'000);
  }
  CHECK_FALSE(ParseUtc("2024-02-29 23:59:59.999Z"));
  CHECK_FALSE(ParseUtc("2024-13-01T00:00:00.000Z"));
  CHECK_FALSE(ParseUtc("2024-01-01T00:00:00Z"));
  CHECK_FALSE(ParseUtc(""));
  CHECK_FALSE(ParseUtc("2024-0x-01T00:00:00.000Z"));
}

TEST_CASE("events: JSON fields have stable names, nulls for what is absent") {
  Event e;
  e.seq = 40;
  e.kind = EventKind::kExit;
  e.mono = Seconds(73.25);
  e.wall_ns = 1714564803250LL * 1'000'000;
  e.slot = 0;
  e.pid = 4242;
  e.generation = 1;
  e.exit = ExitStatus{true, 9};
  e.seconds = 3.2;
  CHECK(EventToJson(e) ==
        R"({"seq": 40, "time": "2024-05-01T12:00:03.250Z", "mono": 73.25, "event": "exit", )"
        R"("slot": 0, "pid": 4242, "generation": 1, "exit_code": null, "signal": 9, )"
        R"("during_drain": false, "seconds": 3.2, "from": null, "to": null, "by": null, )"
        R"("detail": null})");
  std::string fields;
  AppendEventJsonFields(fields, e, /*with_nulls=*/false);
  CHECK(fields ==
        R"("seq": 40, "time": "2024-05-01T12:00:03.250Z", "mono": 73.25, "event": "exit", )"
        R"("slot": 0, "pid": 4242, "generation": 1, "signal": 9, "during_drain": false, )"
        R"("seconds": 3.2)");
  Event r;
  r.kind = EventKind::kResize;
  r.from = 2;
  r.to = 3;
  r.by = "uid 1000 pid \"7\"\n";
  fields.clear();
  AppendEventJsonFields(fields, r, false);
  CHECK(fields.find(R"("event": "resize", "from": 2, "to": 3, "by": "uid 1000 pid \"7\"\n")") !=
        std::string::npos);
}

TEST_CASE("events: JSON strings are valid whatever the bytes") {
  CHECK(JsonString("a\"b\\c\n\t\x01\x7f") == R"("a\"b\\c\n\t\u0001\u007f")");
  CHECK(JsonString("caf\xc3\xa9") == "\"caf\xc3\xa9\"");
  CHECK(JsonString("bad \xff byte") == "\"bad \xEF\xBF\xBD byte\"");
  CHECK(JsonString("\xe2\x80\xa8") == R"("\u2028")");
  CHECK(JsonString("\xc3") == "\"\xEF\xBF\xBD\"");  // truncated sequence
}

TEST_CASE("events: the reply reads back as written") {
  EventsReply reply;
  reply.first_seq = 12;
  reply.last_seq = 14;
  Event a = Spawn(0, 100);
  a.seq = 12;
  a.wall_ns = 1714564803250LL * 1'000'000;
  a.mono = Seconds(1.5);
  Event b;
  b.seq = 13;
  b.kind = EventKind::kUpgradeRollback;
  b.from = 1;
  b.to = 2;
  b.seconds = 4.5;
  b.detail = "3 new workers failed (last: \"x\")\n\xff";
  Event c;
  c.seq = 14;
  c.kind = EventKind::kExit;
  c.slot = 1;
  c.pid = 7;
  c.generation = 2;
  c.exit = ExitStatus{false, 3};
  c.during_drain = true;
  reply.events = {a, b, c};
  const std::string yaml = EventsReplyToYaml(reply);
  CHECK(yaml.rfind("first_seq: 12\nlast_seq: 14\nevents:\n  - {\"seq\": 12,", 0) == 0);
  const Result<EventsReply> back = EventsReplyFromYaml(yaml);
  REQUIRE_MESSAGE(back.ok(), back.error());
  CHECK(back.value().first_seq == 12);
  CHECK(back.value().last_seq == 14);
  REQUIRE(back.value().events.size() == 3);
  CHECK(back.value().events[0] == a);
  b.detail = "3 new workers failed (last: \"x\")\n\xEF\xBF\xBD";  // as JSON carried it
  CHECK(back.value().events[1] == b);
  CHECK(back.value().events[2] == c);

  const Result<EventsReply> empty = EventsReplyFromYaml(EventsReplyToYaml(EventsReply{}));
  REQUIRE(empty.ok());
  CHECK(empty.value().events.empty());

  // A newer master's event kind is kept as "other", its name in the detail.
  const Result<EventsReply> newer = EventsReplyFromYaml(
      "first_seq: 1\nlast_seq: 1\nevents:\n  - {\"seq\": 1, \"time\": "
      "\"2024-05-01T12:00:03.250Z\", \"event\": \"teleport\", \"detail\": \"far\"}\n");
  REQUIRE_MESSAGE(newer.ok(), newer.error());
  CHECK(newer.value().events[0].kind == EventKind::kOther);
  CHECK(newer.value().events[0].detail == "teleport: far");
}

TEST_CASE("events: a reply that is not one is refused with the key path") {
  CHECK(EventsReplyFromYaml("- 1").error() == "events: expected a YAML mapping");
  CHECK(EventsReplyFromYaml("first_seq: 1\n").error() ==
        "events: last_seq: expected an unsigned integer");
  CHECK(EventsReplyFromYaml("first_seq: 1\nlast_seq: 2\nevents:\n  - {\"seq\": 1}\n").error() ==
        "events: events[0].time: expected a time");
  CHECK(EventsReplyFromYaml("first_seq: 1\nlast_seq: 2\nevents:\n  - {\"seq\": 1, \"time\": "
                            "\"yesterday\", \"event\": \"spawn\"}\n")
            .error()
            .find("events[0].time: expected a UTC time") != std::string::npos);
  CHECK(EventsReplyFromYaml("first_seq: 1\nlast_seq: 2\nevents: {a: 1}\n").error() ==
        "events: events: expected a list");
  CHECK_FALSE(EventsReplyFromYaml("{{{").ok());
}

TEST_CASE("events: summaries for people") {
  Event exit;
  exit.kind = EventKind::kExit;
  exit.exit = ExitStatus{true, 9};
  exit.seconds = 3.2;
  CHECK(EventSummary(exit) == "signal 9 after 3.200s");
  exit.during_drain = true;
  exit.exit = ExitStatus{false, 0};
  CHECK(EventSummary(exit) == "exit 0 after 3.200s, draining");
  Event resize;
  resize.kind = EventKind::kResize;
  resize.from = 1;
  resize.to = 3;
  resize.by = "uid 1000 pid 7";
  CHECK(EventSummary(resize) == "1 -> 3 by uid 1000 pid 7");
  Event rollback;
  rollback.kind = EventKind::kUpgradeRollback;
  rollback.from = 1;
  rollback.to = 2;
  rollback.seconds = 4;
  rollback.detail = "3 new workers failed";
  CHECK(EventSummary(rollback) == "generation 2 rolled back to 1 after 4.000s: 3 new workers failed");
  Event delay;
  delay.kind = EventKind::kRespawnDelay;
  delay.seconds = 1.5;
  delay.detail = "2 consecutive failures";
  CHECK(EventSummary(delay) == "in 1.500s (2 consecutive failures)");
  for (EventKind k : {EventKind::kSpawn, EventKind::kReload, EventKind::kStop}) {
    CHECK(ParseEventKind(EventKindName(k)) == k);
  }
  CHECK_FALSE(ParseEventKind("nope"));
}

}  // namespace
}  // namespace einhorn::core
