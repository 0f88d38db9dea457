#include "core/service_notify.h"

#include <chrono>

namespace einhorn::core {

std::string ServiceStatusLine(const ServiceFacts& f) {
  std::string s = std::to_string(f.ready) + "/" + std::to_string(f.target) + " ready";
  if (f.booting > 0) s += ", " + std::to_string(f.booting) + " booting";
  if (f.draining > 0) s += ", " + std::to_string(f.draining) + " draining";
  s += ", generation " + std::to_string(f.generation);
  if (f.upgrading_to) {
    s += ", upgrading to generation " + std::to_string(*f.upgrading_to) + " (" +
         std::to_string(f.upgrade_new_ready) + "/" + std::to_string(f.target) + " new ready)";
  }
  if (f.reloading) s += ", reloading the master";
  if (f.stopping) s += ", stopping";
  if (f.last_upgrade_failure) s += ", upgrade rolled back: " + *f.last_upgrade_failure;
  if (f.last_reload_error) {
    // The reason is kept whole (up to 4000 characters) for `einhornctl reload`; one status
    // line for `systemctl status` shows its start, as it always did.
    constexpr size_t kMaxShown = 400;
    const std::string& why = *f.last_reload_error;
    s += ", reload failed: " + (why.size() > kMaxShown ? why.substr(0, kMaxShown) + "..." : why);
  }
  for (char& c : s) {
    if (c == '\n' || c == '\r') c = ' ';
  }
  return s;
}

std::optional<std::string> ServiceNotifier::Update(const ServiceFacts& f, Time now) {
  std::string msg;
  const bool busy = f.upgrading_to.has_value() || f.reloading;
  if (f.stopping) {
    if (phase_ != Phase::kStopping) msg = "STOPPING=1\n";
    phase_ = Phase::kStopping;
  } else if (phase_ == Phase::kStarting && !busy && f.ready >= f.target) {
    msg = "READY=1\n";
    phase_ = Phase::kReady;
  } else if (phase_ == Phase::kReady && busy) {
    const auto usec = std::chrono::duration_cast<std::chrono::microseconds>(now).count();
    msg = "RELOADING=1\nMONOTONIC_USEC=" + std::to_string(usec) + "\n";
    phase_ = Phase::kReloading;
  } else if (phase_ == Phase::kReloading && !busy) {
    // Whatever the outcome: the manager's reload job must end (a rollback is in STATUS).
    msg = "READY=1\n";
    phase_ = Phase::kReady;
  }
  std::string status = ServiceStatusLine(f);
  if (msg.empty() && status == status_) return std::nullopt;
  status_ = std::move(status);
  return msg + "STATUS=" + status_;
}

}  // namespace einhorn::core
