// A datagram a worker sends on its NOTIFY_SOCKET (systemd's sd_notify protocol, -m notify):
// newline-separated KEY=VALUE assignments. Unknown keys are ignored, as systemd does; what the
// master acts on is parsed here. Untrusted bytes: never throws, bounded by the datagram.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace einhorn::core {

struct NotifyMessage {
  bool ready = false;     // READY=1
  bool stopping = false;  // STOPPING=1
  bool watchdog = false;  // WATCHDOG=1
  bool recycle = false;   // RECYCLE=1 (einhorn-cpp's own): replace me, then drain me
  std::optional<std::string> status;  // STATUS=..., control bytes replaced, capped
};

inline constexpr size_t kMaxNotifyStatus = 256;

NotifyMessage ParseNotifyMessage(std::string_view datagram);

}  // namespace einhorn::core
