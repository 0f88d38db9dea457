#include "core/index_pool.h"

#include <doctest/doctest.h>

#include <cstdint>
#include <iterator>
#include <map>
#include <random>

namespace einhorn::core {
namespace {

// The smallest index no one holds, by a scan (what Supervisor::FreeIndex used to do).
int NaiveLowest(const std::map<int, int>& held) {
  int i = 0;
  while (held.contains(i)) ++i;
  return i;
}

TEST_CASE("index pool: the lowest free index, as a scan finds it, through random changes") {
  for (std::uint64_t seed = 1; seed <= 50; ++seed) {
    CAPTURE(seed);
    std::mt19937_64 rng(seed);
    IndexPool pool;
    std::map<int, int> held;  // index -> holders
    size_t count = 0;
    for (int step = 0; step < 2000; ++step) {
      const auto op = rng() % 10;
      if (op < 5) {
        const int i = pool.Acquire();
        CHECK(i == NaiveLowest(held));
        ++held[i];
        ++count;
      } else if (op < 8 && !held.empty()) {
        auto it = held.begin();
        std::advance(it, static_cast<long>(rng() % held.size()));
        const int i = it->first;
        pool.Release(i);
        if (--it->second == 0) held.erase(it);
        --count;
      } else if (op == 8) {
        // A restored worker's index: near the others, far above them, or a duplicate.
        const int i = rng() % 3 == 0 ? static_cast<int>(rng() % (1u << 30))
                                     : static_cast<int>(rng() % (count + 8));
        pool.Hold(i);
        ++held[i];
        ++count;
      } else {
        pool.Release(static_cast<int>(rng() % 100000) + 1'000'000'000);  // never held: ignored
        pool.Release(-1);
      }
      REQUIRE(pool.Lowest() == NaiveLowest(held));
      REQUIRE(pool.held() == count);
    }
  }
}

TEST_CASE("index pool: a huge restored index costs nothing until the frontier reaches it") {
  IndexPool pool;
  pool.Hold(1 << 30);
  pool.Hold(3);
  CHECK(pool.Lowest() == 0);
  for (int i = 0; i < 3; ++i) CHECK(pool.Acquire() == i);
  CHECK(pool.Acquire() == 4);
  pool.Release(3);
  CHECK(pool.Lowest() == 3);
  pool.Release(1 << 30);
  CHECK(pool.held() == 4);
}

}  // namespace
}  // namespace einhorn::core
