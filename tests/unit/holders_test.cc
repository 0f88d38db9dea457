// core/holders.h: /proc's tables read into holders, and the refusal's words. The input is any
// process's doing, so junk is skipped, never trusted.
#include "core/holders.h"

#include <doctest/doctest.h>

namespace einhorn::core {
namespace {

const char* const kTcp =
    "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout "
    "inode\n"
    "   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 "
    "4242 1 0000000030d61e8e 100 0 0 10 0\n"
    "   1: 00000000:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 "
    "4243 1 0000000030d61e8e 100 0 0 10 0\n"
    "   2: 0100007F:1F90 0100007F:C350 06 00000000:00000000 03:00000F6C 00000000     0        0 "
    "0 3 0000000000000000\n"  // TIME_WAIT: no inode
    "   3: 0100007F:1F91 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 "
    "5000 1 0000000030d61e8e 100 0 0 10 0\n"
    "garbage line\n"
    "   4: 0100007F:ZZZZ 00000000:0000 0A 0 0 0 0 0 6000\n";

const char* const kTcp6 =
    "  sl  local_address                         remote_address                        st "
    "tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"
    "   0: 00000000000000000000000000000000:1F90 00000000000000000000000000000000:0000 0A "
    "00000000:00000000 00:00000000 00000000     0        0 7777 1 0000000000000000 100 0 0 10 0\n";

TEST_CASE("holders: sockets on a port from /proc/net/tcp and tcp6") {
  CHECK(SocketInodesOnPort(kTcp, 8080) == std::vector<std::uint64_t>{4242, 4243});
  CHECK(SocketInodesOnPort(kTcp, 8081) == std::vector<std::uint64_t>{5000});
  CHECK(SocketInodesOnPort(kTcp6, 8080) == std::vector<std::uint64_t>{7777});
  CHECK(SocketInodesOnPort(kTcp, 9).empty());
  CHECK(SocketInodesOnPort("", 8080).empty());
  CHECK(SocketInodesOnPort(std::string(100000, ':'), 8080).empty());
}

TEST_CASE("holders: lock holders from /proc/locks") {
  const char* const locks =
      "1: FLOCK  ADVISORY  WRITE 1234 08:02:131090 0 EOF\n"
      "1: -> FLOCK  ADVISORY  WRITE 999 08:02:131090 0 EOF\n"  // a waiter
      "2: POSIX  ADVISORY  WRITE 77 fd:01:131090 0 EOF\n"       // another device
      "3: OFDLCK ADVISORY  WRITE -1 08:02:131090 0 EOF\n"       // no process
      "4: FLOCK  ADVISORY  WRITE 4321 08:02:5 0 EOF\n"
      "5: FLOCK junk\n";
  CHECK(LockHolderPids(locks, 8, 2, 131090) == std::vector<long>{1234});
  CHECK(LockHolderPids(locks, 0xfd, 1, 131090) == std::vector<long>{77});
  CHECK(LockHolderPids(locks, 8, 2, 6).empty());
  CHECK(LockHolderPids("", 8, 2, 131090).empty());
}

TEST_CASE("holders: command lines are cleaned and bounded") {
  CHECK(CommandLineText(std::string("einhorn-cpp\0-n\0004\0", 17)) == "einhorn-cpp -n 4");
  CHECK(CommandLineText("evil\x1b[2J\n") == "evil?[2J?");
  CHECK(CommandLineText(std::string(500, 'x')) == std::string(120, 'x') + "...");
  CHECK(CommandLineText("").empty());
}

TEST_CASE("holders: the words of a refusal") {
  CHECK(HeldBy({}) == "held by another process");
  CHECK(HeldBy({{12, "einhorn-cpp -n 4"}}) == "held by pid 12 (einhorn-cpp -n 4)");
  CHECK(HeldBy({{12, ""}}) == "held by pid 12");
  CHECK(HeldBy({{12, "master"}, {13, "w"}}) == "held by pid 12 (master) and 1 other process");
  CHECK(HeldBy({{12, "master"}, {13, "w"}, {14, "w"}}) ==
        "held by pid 12 (master) and 2 other processes");
}

}  // namespace
}  // namespace einhorn::core
