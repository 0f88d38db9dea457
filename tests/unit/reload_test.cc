// core/reload.h: when a master re-exec may start, how requests during one merge, and what the
// pre-flight check's exit means.
#include "core/reload.h"

#include <doctest/doctest.h>

namespace einhorn::core {
namespace {

TEST_CASE("reload: a plain reload starts the check and replies with Einhorn's text") {
  Reload r;
  const Reload::Begin b = r.Request(std::nullopt, false);
  CHECK(b.accepted);
  CHECK(b.start_check);
  CHECK(b.message == "Reloading, as commanded");
  CHECK(r.running());
  CHECK(r.then_upgrades().empty());
}

TEST_CASE("reload: upgrades name their strategy and are carried to the new image") {
  Reload r;
  CHECK(r.Request(UpgradeStrategy::kSmooth, false).message == "Upgrading smoothly, as commanded");
  CHECK(r.then_upgrades() == std::vector{UpgradeStrategy::kSmooth});
  Reload f;
  CHECK(f.Request(UpgradeStrategy::kFleet, false).message == "Upgrading fleet, as commanded");
  CHECK(f.then_upgrades() == std::vector{UpgradeStrategy::kFleet});
}

TEST_CASE("reload: requests during a reload join it and every upgrade is carried, in order") {
  Reload r;
  CHECK(r.Request(std::nullopt, false).start_check);
  const Reload::Begin second = r.Request(UpgradeStrategy::kFleet, false);
  CHECK(second.accepted);
  CHECK_FALSE(second.start_check);
  CHECK(second.message == "Upgrading fleet, as commanded");
  const Reload::Begin third = r.Request(UpgradeStrategy::kSmooth, false);
  CHECK_FALSE(third.start_check);
  // A plain reload adds nothing to do after the exec.
  CHECK_FALSE(r.Request(std::nullopt, false).start_check);
  CHECK(r.then_upgrades() == std::vector{UpgradeStrategy::kFleet, UpgradeStrategy::kSmooth});
  r.Clear();
  CHECK_FALSE(r.running());
  CHECK(r.then_upgrades().empty());
  CHECK(r.Request(std::nullopt, false).start_check);
}

TEST_CASE("reload: refused while the master stops, with a reason per kind") {
  Reload r;
  const Reload::Begin b = r.Request(std::nullopt, true);
  CHECK_FALSE(b.accepted);
  CHECK_FALSE(b.start_check);
  CHECK(b.message == "Not reloading: the master is shutting down");
  CHECK_FALSE(r.running());
  CHECK(r.Request(UpgradeStrategy::kSmooth, true).message ==
        "The master is shutting down; not upgrading");
  CHECK_FALSE(r.running());
}

TEST_CASE("reload: a stand-in only for a check that offers one, on a line of its own") {
  const std::string line(Reload::kTakesStandIn);
  CHECK(Reload::TakesStandIn("einhorn-cpp 1.0: upgrade check\n" + line + "\ndigest\n"));
  CHECK(Reload::TakesStandIn(line));
  CHECK(Reload::TakesStandIn(line + "\r\n"));
  // A binary from before the stand-in, or a wrapper that echoes it inside another line.
  CHECK_FALSE(Reload::TakesStandIn("einhorn-cpp 0.1.0: upgrade check\ndigest\n"));
  CHECK_FALSE(Reload::TakesStandIn("said: " + line + "\n"));
  CHECK_FALSE(Reload::TakesStandIn(line + " not\n"));
  CHECK_FALSE(Reload::TakesStandIn(""));
}

TEST_CASE("reload: the check's exit decides, and a failure names the binary, status and its words") {
  const std::string proof = Reload::ProofLine("state");
  CHECK_FALSE(Reload::CheckExited("/usr/bin/einhorn-cpp", ExitStatus{false, 0},
                                  "einhorn-cpp 1.0\n" + proof + "\n", proof));
  const auto failed =
      Reload::CheckExited("/usr/bin/einhorn-cpp", ExitStatus{false, 1},
                          "einhorn-cpp 2.0\nstate: version 3 is newer than 2\n\n", proof);
  REQUIRE(failed.has_value());
  CHECK(*failed ==
        "the upgrade check of /usr/bin/einhorn-cpp failed (exit 1): state: version 3 is newer "
        "than 2");
  const auto killed = Reload::CheckExited("/x", ExitStatus{true, 11}, "", proof);
  REQUIRE(killed.has_value());
  CHECK(*killed == "the upgrade check of /x failed (signal 11)");
  CHECK(Reload::CheckTimedOut("/x", Seconds(30)) ==
        "the upgrade check of /x did not finish within 30 s");
  CHECK(Reload::FailureText("why") == "Reload failed, the master keeps running as it was: why");
  CHECK(Reload::UpgradeFailureText("why") ==
        "Upgrade failed: the master could not reload first, so nothing changed: why");
}

TEST_CASE("reload: a failed check's reason keeps its whole last line, up to 4000 characters") {
  // A config naming many restart-only keys: longer than the 300 characters kept before.
  const std::string line = "config /etc/x.yaml: the config changes what only a restart of the "
                           "master can change: " + std::string(900, 'k');
  const auto failed = Reload::CheckExited("/x", ExitStatus{false, 1}, "start\n" + line + "\n",
                                          Reload::ProofLine("s"));
  REQUIRE(failed.has_value());
  CHECK(*failed == "the upgrade check of /x failed (exit 1): " + line);
  // A flood is still cut, and says so.
  const auto flood = Reload::CheckExited("/x", ExitStatus{false, 1}, std::string(10000, 'z'),
                                         Reload::ProofLine("s"));
  REQUIRE(flood.has_value());
  CHECK(flood->ends_with(std::string(kMaxReasonChars, 'z') + "..."));
}

TEST_CASE("reload: an exit 0 passes only with the digest of the very state it was given") {
  const std::string proof = Reload::ProofLine("format: einhorn-cpp-state\n");
  CHECK(proof.rfind("einhorn-cpp upgrade check: state digest ", 0) == 0);
  CHECK(proof.size() == std::string("einhorn-cpp upgrade check: state digest ").size() + 16);
  // Deterministic, and any other bytes give another digest.
  CHECK(proof == Reload::ProofLine("format: einhorn-cpp-state\n"));
  CHECK(proof != Reload::ProofLine("format: einhorn-cpp-state \n"));
  CHECK(Reload::ProofLine("") != Reload::ProofLine(std::string(1, '\0')));

  // A stub that exits 0 and says nothing, or something else.
  for (const std::string& output :
       {std::string(""), std::string("ok\n"), Reload::ProofLine("another state") + "\n",
        // Not on a line of its own.
        "echo " + proof + "\n", proof + "0\n"}) {
    INFO(output);
    const auto failed = Reload::CheckExited("/opt/stub", ExitStatus{false, 0}, output, proof);
    REQUIRE(failed.has_value());
    CHECK(failed->rfind("the upgrade check of /opt/stub exited 0 but did not show it read the "
                        "state",
                        0) == 0);
  }
  CHECK(*Reload::CheckExited("/opt/stub", ExitStatus{false, 0}, "hello\n", proof) ==
        "the upgrade check of /opt/stub exited 0 but did not show it read the state (no state "
        "digest in its output; is it einhorn-cpp, of this version or later?); its last line: "
        "hello");
  // An empty expectation never passes (no state was given: nothing to prove).
  CHECK(Reload::CheckExited("/x", ExitStatus{false, 0}, "\n", "").has_value());
  // Anywhere in the output, CRLF too; a failing exit still fails with the proof printed.
  CHECK_FALSE(Reload::CheckExited("/x", ExitStatus{false, 0}, "a\n" + proof + "\r\nb\n", proof));
  CHECK(Reload::CheckExited("/x", ExitStatus{false, 2}, proof + "\n", proof).has_value());
}

TEST_CASE("reload: LastLine trims, skips blank lines, neutralises control bytes and caps") {
  CHECK(LastLine("") == "");
  CHECK(LastLine("\n \n\t\n") == "");
  CHECK(LastLine("one\ntwo  \n\n") == "two");
  CHECK(LastLine("  lead") == "lead");
  CHECK(LastLine("a\x1b[31mred\r\n") == "a?[31mred");
  CHECK(LastLine(std::string(500, 'x'), 10) == "xxxxxxxxxx...");
}

}  // namespace
}  // namespace einhorn::core
