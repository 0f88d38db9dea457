#include "core/notify_message.h"

namespace einhorn::core {

NotifyMessage ParseNotifyMessage(std::string_view datagram) {
  NotifyMessage m;
  size_t start = 0;
  while (start <= datagram.size()) {
    size_t end = datagram.find('\n', start);
    if (end == std::string_view::npos) end = datagram.size();
    const std::string_view line = datagram.substr(start, end - start);
    start = end + 1;
    if (line == "READY=1") {
      m.ready = true;
    } else if (line == "STOPPING=1") {
      m.stopping = true;
    } else if (line == "WATCHDOG=1") {
      m.watchdog = true;
    } else if (line == "RECYCLE=1") {
      m.recycle = true;
    } else if (line.substr(0, 7) == "STATUS=") {
      std::string text(line.substr(7, kMaxNotifyStatus));
      for (char& c : text) {
        if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) c = '?';
      }
      m.status = std::move(text);
    }
    if (end == datagram.size()) break;
  }
  return m;
}

}  // namespace einhorn::core
