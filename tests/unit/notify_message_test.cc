// core/notify_message.h: a worker's sd_notify datagram, as systemd reads it.
#include "core/notify_message.h"

#include <doctest/doctest.h>

#include <string>

namespace einhorn::core {
namespace {

TEST_CASE("notify message: the assignments the master acts on") {
  const NotifyMessage m = ParseNotifyMessage("READY=1\nSTATUS=serving 12 req/s\nMAINPID=7");
  CHECK(m.ready);
  CHECK_FALSE(m.stopping);
  CHECK_FALSE(m.watchdog);
  REQUIRE(m.status);
  CHECK(*m.status == "serving 12 req/s");
  CHECK(ParseNotifyMessage("STOPPING=1\n").stopping);
  CHECK(ParseNotifyMessage("WATCHDOG=1").watchdog);
  CHECK(ParseNotifyMessage("STATUS=x\nRECYCLE=1\n").recycle);
  CHECK_FALSE(m.recycle);
  for (const char* d : {"RECYCLE=0", "RECYCLE=1 ", "recycle=1", "RECYCLE"}) {
    CHECK_FALSE(ParseNotifyMessage(d).recycle);
  }
}

TEST_CASE("notify message: anything else is ignored, values must match exactly") {
  for (const char* d : {"", "\n", "READY=0", "READY=1 ", "ready=1", "READY", "=1", "X=READY=1",
                        "WATCHDOG=trigger", "\0READY=1"}) {
    INFO(d);
    const NotifyMessage m = ParseNotifyMessage(d);
    CHECK_FALSE(m.ready);
    CHECK_FALSE(m.watchdog);
    CHECK_FALSE(m.status);
  }
  CHECK(ParseNotifyMessage(std::string("X=1\0\nREADY=1", 12)).ready);
}

TEST_CASE("notify message: STATUS is one printable line, capped, the last one wins") {
  const NotifyMessage m = ParseNotifyMessage("STATUS=a\tb\x1b[0m\nSTATUS=second");
  CHECK(*m.status == "second");
  CHECK(*ParseNotifyMessage("STATUS=a\tb\x1b[0m").status == "a?b?[0m");
  CHECK(ParseNotifyMessage("STATUS=" + std::string(1000, 'x')).status->size() == kMaxNotifyStatus);
  CHECK(*ParseNotifyMessage("STATUS=").status == "");
}

}  // namespace
}  // namespace einhorn::core
