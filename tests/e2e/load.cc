#include "load.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace einhorn::test {

Load::Load(int port, int threads, std::chrono::milliseconds timeout)
    : port_(port), timeout_(timeout) {
  for (int i = 0; i < threads; ++i) threads_.emplace_back([this] { Run(); });
}

Load::~Load() { Stop(); }

void Load::Stop() {
  stop_ = true;
  for (std::thread& t : threads_) {
    if (t.joinable()) t.join();
  }
}

std::string Load::Summary() const {
  return "ok " + std::to_string(ok_) + ", connect errors " + std::to_string(connect_errors_) +
         ", resets " + std::to_string(resets_) + ", timeouts " + std::to_string(timeouts_) +
         ", bad responses " + std::to_string(bad_responses_);
}

void Load::Run() {
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port_));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  timeval tv{};
  tv.tv_sec = timeout_.count() / 1000;
  tv.tv_usec = (timeout_.count() % 1000) * 1000;
  const std::string request = "GET / HTTP/1.0\r\nHost: test\r\n\r\n";

  while (!stop_) {
    const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
      ++connect_errors_;
      continue;
    }
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
      ++(errno == EINPROGRESS || errno == EAGAIN ? timeouts_ : connect_errors_);
      close(fd);
      continue;
    }
    std::string response;
    bool failed = send(fd, request.data(), request.size(), MSG_NOSIGNAL) !=
                  static_cast<ssize_t>(request.size());
    char buf[4096];
    while (!failed) {
      const ssize_t n = recv(fd, buf, sizeof buf, 0);
      if (n > 0) {
        response.append(buf, static_cast<size_t>(n));
      } else if (n == 0) {
        break;
      } else {
        failed = true;
      }
    }
    const int err = errno;
    close(fd);
    if (failed) {
      ++(err == EAGAIN || err == EWOULDBLOCK ? timeouts_ : resets_);
    } else if (response.rfind("HTTP/1.1 200 ", 0) == 0 &&
               response.find("hello from worker") != std::string::npos) {
      ++ok_;
    } else {
      ++bad_responses_;
    }
  }
}

}  // namespace einhorn::test
