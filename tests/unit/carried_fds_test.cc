// core/state.h's CarriedFds: the one list of the fds a master re-exec carries, which DecodeState
// checks and the old image un-CLOEXECs.
#include <doctest/doctest.h>

#include <map>

#include "core/state.h"

namespace einhorn::core {
namespace {

TEST_CASE("CarriedFds names every carried fd once, in the state's order") {
  MasterState s;
  s.listeners.resize(2);
  s.listeners[0].fd = 3;
  s.listeners[1].fd = 4;
  s.control.fd = 5;
  s.clients.resize(1);
  s.clients[0].fd = 6;
  s.notify_sockets.push_back({100, 7});
  s.metrics.fd = 8;
  s.stand_in_fd = 9;
  const std::vector<CarriedFd> fds = CarriedFds(s);
  std::vector<std::string> where;
  std::vector<int> numbers;
  for (const CarriedFd& c : fds) {
    where.push_back(c.where);
    numbers.push_back(c.fd);
  }
  CHECK(where == std::vector<std::string>{"listeners[0].fd", "listeners[1].fd", "control.fd",
                                          "clients[0].fd", "notify_sockets[0].fd", "lock_fd",
                                          "metrics.fd", "stand_in_fd"});
  CHECK(numbers == std::vector<int>{3, 4, 5, 6, 7, -1, 8, 9});
  // The optional ones may be -1 (none); the others are always open.
  for (const CarriedFd& c : fds) {
    CHECK(c.optional == (c.where == "control.fd" || c.where == "lock_fd" ||
                         c.where == "metrics.fd" || c.where == "stand_in_fd"));
  }
}

TEST_CASE("CarriedFds: the stand-in's channel is checked like any carried fd") {
  MasterState s;
  s.listeners.resize(1);
  s.listeners[0].fd = 3;
  s.stand_in_fd = 3;
  std::map<int, int> seen;
  for (const CarriedFd& c : CarriedFds(s)) {
    if (c.fd >= 0) ++seen[c.fd];
  }
  CHECK(seen[3] == 2);  // DecodeState refuses the pair (state_test)
}

// DecodeState's refusals by these names ("lock_fd: fd 3 is also listeners[0].fd") are in
// state_test.cc's "fds must be distinct and options valid".

}  // namespace
}  // namespace einhorn::core
