// A raw command-socket client for the tests: writes bytes exactly as given (so the tests can
// speak like Einhorn's own clients) and reads reply lines with deadlines.
#pragma once

#include <chrono>
#include <optional>
#include <string>

#include "core/wire.h"

namespace einhorn::test {

class ControlClient {
 public:
  // Connects; connected() tells whether it worked.
  explicit ControlClient(const std::string& path);
  ~ControlClient();
  ControlClient(const ControlClient&) = delete;
  ControlClient& operator=(const ControlClient&) = delete;

  bool connected() const { return fd_ >= 0; }
  int fd() const { return fd_; }
  bool Send(const std::string& bytes);
  // One line without its '\n'; nullopt on EOF, error or timeout.
  std::optional<std::string> ReadLine(std::chrono::milliseconds timeout);
  std::optional<core::wire::Reply> ReadReply(std::chrono::milliseconds timeout);
  // Sends `bytes` and reads one reply.
  std::optional<core::wire::Reply> Ask(const std::string& bytes,
                                       std::chrono::milliseconds timeout = std::chrono::seconds(10));
  // True once the master has closed the connection (EOF) within the timeout.
  bool WaitEof(std::chrono::milliseconds timeout);

 private:
  int fd_ = -1;
  std::string buffer_;
};

}  // namespace einhorn::test
