// core/service_notify.h: what systemd hears, for every phase of the master's life.
#include "core/service_notify.h"

#include <doctest/doctest.h>

namespace einhorn::core {
namespace {

ServiceFacts Pool(int ready, int target = 4) {
  ServiceFacts f;
  f.target = target;
  f.ready = ready;
  f.booting = target - ready;
  return f;
}

TEST_CASE("service notify: READY=1 once the first generation is all ready, STATUS on changes") {
  ServiceNotifier n;
  auto m = n.Update(Pool(0), Seconds(1));
  REQUIRE(m);
  CHECK(*m == "STATUS=0/4 ready, 4 booting, generation 1");
  CHECK_FALSE(n.Update(Pool(0), Seconds(2)));  // nothing changed: nothing sent
  CHECK(*n.Update(Pool(3), Seconds(3)) == "STATUS=3/4 ready, 1 booting, generation 1");
  CHECK(*n.Update(Pool(4), Seconds(4)) == "READY=1\nSTATUS=4/4 ready, generation 1");
  CHECK_FALSE(n.Update(Pool(4), Seconds(5)));
  // A worker lost later is a STATUS change, never a second READY.
  CHECK(*n.Update(Pool(3), Seconds(6)) == "STATUS=3/4 ready, 1 booting, generation 1");
  CHECK(*n.Update(Pool(4), Seconds(7)) == "STATUS=4/4 ready, generation 1");
}

TEST_CASE("service notify: an upgrade is RELOADING=1 with MONOTONIC_USEC, then READY=1") {
  ServiceNotifier n;
  n.Update(Pool(4), Seconds(1));
  ServiceFacts f = Pool(4);
  f.generation = 2;
  f.upgrading_to = 2;
  f.booting = 1;
  CHECK(*n.Update(f, Seconds(2) + std::chrono::microseconds(5)) ==
        "RELOADING=1\nMONOTONIC_USEC=2000005\nSTATUS=4/4 ready, 1 booting, generation 2, "
        "upgrading to generation 2 (0/4 new ready)");
  f.upgrade_new_ready = 1;
  CHECK(n.Update(f, Seconds(3))->rfind("STATUS=", 0) == 0);
  ServiceFacts done = Pool(4);
  done.generation = 2;
  CHECK(*n.Update(done, Seconds(4)) == "READY=1\nSTATUS=4/4 ready, generation 2");
}

TEST_CASE("service notify: a rollback still ends the reload, and says why in STATUS") {
  ServiceNotifier n;
  n.Update(Pool(4), Seconds(1));
  ServiceFacts f = Pool(4);
  f.upgrading_to = 2;
  REQUIRE(n.Update(f, Seconds(2))->rfind("RELOADING=1\n", 0) == 0);
  ServiceFacts back = Pool(4);
  back.last_upgrade_failure = "3 new workers failed\nbefore ready";
  CHECK(*n.Update(back, Seconds(3)) ==
        "READY=1\nSTATUS=4/4 ready, generation 1, upgrade rolled back: 3 new workers failed "
        "before ready");
}

TEST_CASE("service notify: a master reload is RELOADING=1 here and READY=1 from the new image") {
  ServiceNotifier old_image;
  old_image.Update(Pool(2, 2), Seconds(1));
  ServiceFacts f = Pool(2, 2);
  f.reloading = true;
  CHECK(old_image.Update(f, Seconds(2))->rfind("RELOADING=1\nMONOTONIC_USEC=2000000\n", 0) == 0);
  ServiceNotifier new_image(/*reloaded=*/true);
  CHECK(*new_image.Update(Pool(2, 2), Seconds(3)) == "READY=1\nSTATUS=2/2 ready, generation 1");
  // A reload that failed also ends it, in the old image.
  ServiceFacts failed = Pool(2, 2);
  failed.last_reload_error = "the upgrade check of /x failed (exit 1)";
  CHECK(*old_image.Update(failed, Seconds(4)) ==
        "READY=1\nSTATUS=2/2 ready, generation 1, reload failed: the upgrade check of /x failed "
        "(exit 1)");
}

TEST_CASE("service notify: a long reload failure shows its first 400 characters in STATUS") {
  ServiceFacts f = Pool(2, 2);
  f.last_reload_error = std::string(390, 'a') + std::string(1000, 'b');
  const std::string line = ServiceStatusLine(f);
  CHECK(line.ends_with(", reload failed: " + std::string(390, 'a') + std::string(10, 'b') + "..."));
  f.last_reload_error = std::string(400, 'c');
  CHECK(ServiceStatusLine(f).ends_with(", reload failed: " + std::string(400, 'c')));
}

TEST_CASE("service notify: STOPPING=1 once, from any phase, then only STATUS") {
  for (int ready : {0, 4}) {
    ServiceNotifier n;
    n.Update(Pool(ready), Seconds(1));
    ServiceFacts f = Pool(ready);
    f.stopping = true;
    CHECK(n.Update(f, Seconds(2))->rfind("STOPPING=1\nSTATUS=", 0) == 0);
    f.ready = 0;
    f.draining = 4;
    f.booting = 0;
    CHECK(*n.Update(f, Seconds(3)) == "STATUS=0/4 ready, 4 draining, generation 1, stopping");
    CHECK_FALSE(n.Update(f, Seconds(4)));
  }
}

TEST_CASE("service notify: a pool that never gets ready never says READY=1") {
  ServiceNotifier n;
  ServiceFacts f = Pool(3);
  for (int i = 0; i < 5; ++i) {
    const auto m = n.Update(f, Seconds(i));
    if (m) CHECK(m->find("READY=1") == std::string::npos);
  }
}

}  // namespace
}  // namespace einhorn::core
