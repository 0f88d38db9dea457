#include "core/index_pool.h"

namespace einhorn::core {

void IndexPool::Grow() {
  const int i = static_cast<int>(holders_.size());
  int n = 0;
  if (const auto it = aside_.find(i); it != aside_.end()) {
    n = it->second;
    aside_.erase(it);
  }
  holders_.push_back(n);
  if (n == 0) free_.insert(i);
}

void IndexPool::Hold(int index) {
  if (index < 0) return;
  ++held_;
  const auto frontier = static_cast<std::size_t>(index);
  if (frontier >= holders_.size() && frontier > 2 * held_ + 64) {
    ++aside_[index];
    return;
  }
  while (holders_.size() <= frontier) Grow();
  if (holders_[frontier]++ == 0) free_.erase(index);
}

void IndexPool::Release(int index) {
  if (index < 0) return;
  const auto i = static_cast<std::size_t>(index);
  if (i >= holders_.size()) {
    const auto it = aside_.find(index);
    if (it == aside_.end()) return;
    --held_;
    if (--it->second == 0) aside_.erase(it);
    return;
  }
  if (holders_[i] == 0) return;
  --held_;
  if (--holders_[i] == 0) free_.insert(index);
  // Free indexes at the frontier go: the set holds only gaps below the highest index in use.
  while (!holders_.empty() && holders_.back() == 0) {
    free_.erase(static_cast<int>(holders_.size() - 1));
    holders_.pop_back();
  }
}

int IndexPool::Lowest() const {
  if (!free_.empty()) return *free_.begin();
  // The frontier, unless an index kept aside sits right there (Acquire takes it in).
  int i = static_cast<int>(holders_.size());
  for (auto it = aside_.find(i); it != aside_.end() && it->first == i; ++it) ++i;
  return i;
}

int IndexPool::Acquire() {
  while (free_.empty()) Grow();
  const int i = *free_.begin();
  Hold(i);
  return i;
}

}  // namespace einhorn::core
