#include "core/log_limit.h"

namespace einhorn::core {
namespace {

bool IsPowerOfTen(std::uint64_t n) {
  while (n >= 10 && n % 10 == 0) n /= 10;
  return n == 1;
}

}  // namespace

LogLimiter::LogLimiter(Options options) : options_(options) {
  if (options_.quiet <= Duration::zero()) options_.quiet = Duration(1);
  if (options_.interval <= Duration::zero()) options_.interval = Duration(1);
}

LogLimiter::Verdict LogLimiter::Note(Time now) {
  Verdict v;
  v.ended = Settle(now);
  if (count_ == 0) first_ = now;
  ++count_;
  last_ = now;
  // Powers of ten keep a flood to a few lines; the interval keeps a slow, endless drip from
  // going unmentioned after its 1000th occurrence.
  v.count = count_;
  v.log = IsPowerOfTen(count_) || now - last_logged_ >= options_.interval;
  if (v.log) {
    v.skipped = skipped_;
    skipped_ = 0;
    last_logged_ = now;
  } else {
    ++skipped_;
    ++unlogged_;
  }
  return v;
}

std::optional<LogLimiter::Summary> LogLimiter::Settle(Time now, bool force) {
  if (count_ == 0) return std::nullopt;
  if (!force && now - last_ < options_.quiet) return std::nullopt;
  Summary s{count_, unlogged_, last_ - first_};
  count_ = 0;
  unlogged_ = 0;
  skipped_ = 0;
  return s;
}

std::optional<Time> LogLimiter::settle_at() const {
  if (count_ == 0) return std::nullopt;
  return last_ + options_.quiet;
}

}  // namespace einhorn::core
