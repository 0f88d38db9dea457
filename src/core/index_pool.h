// The EINHORN_CHILD_INDEX values live workers hold, and the smallest one none holds (Einhorn
// gives a new worker that one), in O(log n) per change: an ordered set of the free indexes
// below a frontier. Supervisor::FreeIndex used to scan every worker for each spawn, which made
// starting n workers O(n^2).
//
// Indexes are counted (two workers may hold the same one after a takeover of an odd Ruby
// state). An index far above the ones in use (more than twice the number held, from a restored
// state) is kept aside until the frontier reaches it, so a stray huge index costs no memory.
#pragma once

#include <cstddef>
#include <map>
#include <set>
#include <vector>

namespace einhorn::core {

class IndexPool {
 public:
  void Hold(int index);
  // Of an index held (an index not held is ignored).
  void Release(int index);
  // The smallest index >= 0 no one holds.
  int Lowest() const;
  // Holds Lowest() and returns it.
  int Acquire();
  std::size_t held() const { return held_; }

 private:
  void Grow();                // moves the frontier up by one, taking in an index kept aside
  std::vector<int> holders_;  // holders of each index below the frontier
  std::set<int> free_;        // the indexes below the frontier that no one holds
  std::map<int, int> aside_;  // holders of indexes at or above the frontier
  std::size_t held_ = 0;
};

}  // namespace einhorn::core
