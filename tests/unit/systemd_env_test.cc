#include "core/systemd_env.h"

#include <doctest/doctest.h>

#include <sys/un.h>

#include <tuple>
#include <vector>

namespace einhorn::core {
namespace {

constexpr std::int64_t kSelf = 4242;

std::string ListenError(const char* pid, const char* fds, const char* names = nullptr) {
  auto r = ParseListenFds(pid, fds, names, kSelf);
  REQUIRE_FALSE(r.ok());
  return r.error();
}

TEST_CASE("LISTEN_FDS: the fds passed to this pid, named or \"unknown\"") {
  auto r = ParseListenFds("4242", "2", nullptr, kSelf);
  REQUIRE(r.ok());
  CHECK(r.value().count == 2);
  CHECK(r.value().names.empty());
  CHECK(r.value().Name(0) == "unknown");
  CHECK(r.value().Name(1) == "unknown");

  r = ParseListenFds("4242", "3", "http:admin:metrics", kSelf);
  REQUIRE(r.ok());
  CHECK(r.value().count == 3);
  CHECK(r.value().names == std::vector<std::string>{"http", "admin", "metrics"});
  CHECK(r.value().Name(2) == "metrics");
  // Every ':' separates: empty names stay, as libsystemd keeps them.
  r = ParseListenFds("4242", "3", "a::b", kSelf);
  REQUIRE(r.ok());
  CHECK(r.value().names == std::vector<std::string>{"a", "", "b"});
  r = ParseListenFds("4242", "1", "", kSelf);
  REQUIRE(r.ok());
  CHECK(r.value().names == std::vector<std::string>{""});
  CHECK(kListenFdsStart == 3);
}

TEST_CASE("LISTEN_FDS: nothing passed when unset or meant for another process") {
  for (auto [pid, fds, names] : std::vector<std::tuple<const char*, const char*, const char*>>{
           {nullptr, nullptr, nullptr},
           {nullptr, "2", "a:b"},
           {"4242", nullptr, "a"},
           {"4243", "2", nullptr},
           {"1", "2", "a:b"},
           // Another process's variables are not ours to judge.
           {"4243", "zero", "x"},
       }) {
    auto r = ParseListenFds(pid, fds, names, kSelf);
    REQUIRE_MESSAGE(r.ok(), r.error());
    CHECK(r.value().count == 0);
    CHECK(r.value().names.empty());
  }
}

TEST_CASE("LISTEN_FDS: malformed variables are errors that quote them") {
  CHECK(ListenError("", "1") == "LISTEN_PID='' is not a process id");
  CHECK(ListenError("0", "1") == "LISTEN_PID='0' is not a process id");
  CHECK(ListenError("-4242", "1") == "LISTEN_PID='-4242' is not a process id");
  CHECK(ListenError("+4242", "1") == "LISTEN_PID='+4242' is not a process id");
  CHECK(ListenError(" 4242", "1") == "LISTEN_PID=' 4242' is not a process id");
  CHECK(ListenError("4242x", "1") == "LISTEN_PID='4242x' is not a process id");
  CHECK(ListenError("99999999999999999999999", "1") ==
        "LISTEN_PID='99999999999999999999999' is not a process id");
  CHECK(ListenError("2147483648", "1") == "LISTEN_PID='2147483648' is not a process id");
  for (const char* fds : {"0", "", "-1", "1e3", "0x3", "nan", "2147483645", "18446744073709551616"}) {
    CHECK(ListenError("4242", fds) ==
          "LISTEN_FDS='" + std::string(fds) + "' is not a count of fds (1 or more)");
  }
  // INT_MAX - 3, the most there can be: taken, and nothing allocated per fd for it.
  auto most = ParseListenFds("4242", "2147483644", nullptr, kSelf);
  REQUIRE(most.ok());
  CHECK(most.value().count == 2147483644);
  CHECK(most.value().names.empty());
  CHECK(ListenError("4242", "2", "one") ==
        "LISTEN_FDNAMES='one' names 1 fds, LISTEN_FDS passes 2");
  CHECK(ListenError("4242", "1", "a:b") ==
        "LISTEN_FDNAMES='a:b' names 2 fds, LISTEN_FDS passes 1");
}

TEST_CASE("WATCHDOG_USEC: for this pid, a positive finite number of microseconds") {
  CHECK(ParseWatchdog("200000", nullptr, kSelf) == std::optional<std::uint64_t>(200000));
  CHECK(ParseWatchdog("200000", "4242", kSelf) == std::optional<std::uint64_t>(200000));
  CHECK(ParseWatchdog("1", nullptr, kSelf) == std::optional<std::uint64_t>(1));
  CHECK(ParseWatchdog("18446744073709551614", nullptr, kSelf) ==
        std::optional<std::uint64_t>(18446744073709551614ull));
  CHECK_FALSE(ParseWatchdog(nullptr, nullptr, kSelf));
  CHECK_FALSE(ParseWatchdog(nullptr, "4242", kSelf));
  for (const char* bad : {"", "0", "-1", "1e6", "inf", "nan", " 5", "5 ", "0x10",
                          "18446744073709551615", "18446744073709551616", "99999999999999999999"}) {
    CHECK_MESSAGE(!ParseWatchdog(bad, nullptr, kSelf), bad);
  }
  // Meant for another process, or a pid that is not one.
  for (const char* pid : {"4243", "1", "", "0", "-4242", "x", "4242 "}) {
    CHECK_MESSAGE(!ParseWatchdog("200000", pid, kSelf), pid);
  }
}

TEST_CASE("NOTIFY_SOCKET: an absolute path or an abstract name, within sun_path") {
  constexpr std::size_t kMax = sizeof(sockaddr_un{}.sun_path);
  CHECK(NotifySocketPath("/run/systemd/notify", kMax) ==
        std::optional<std::string>(std::string("/run/systemd/notify\0", 20)));
  CHECK(NotifySocketPath("@einhorn/1", kMax) ==
        std::optional<std::string>(std::string("\0einhorn/1", 10)));
  for (const char* bad : {"", "/", "@", "run/notify", "vsock:2:1234", " /run/notify"}) {
    CHECK_MESSAGE(!NotifySocketPath(bad, kMax), bad);
  }
  CHECK_FALSE(NotifySocketPath(nullptr, kMax));
  // A path needs room for its NUL; an abstract name fills sun_path exactly.
  const std::string path = "/" + std::string(kMax - 2, 'p');
  CHECK(NotifySocketPath(path.c_str(), kMax)->size() == kMax);
  CHECK_FALSE(NotifySocketPath((path + "p").c_str(), kMax));
  const std::string name = "@" + std::string(kMax - 1, 'n');
  CHECK(NotifySocketPath(name.c_str(), kMax)->size() == kMax);
  CHECK_FALSE(NotifySocketPath((name + "n").c_str(), kMax));
}

}  // namespace
}  // namespace einhorn::core
