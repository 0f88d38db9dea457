// A bounded HTTP load generator for the upgrade tests: a few threads each send one request per
// connection to 127.0.0.1:PORT, back to back, and count every outcome. A zero-downtime claim is
// "failed() == 0 while ok() grows", so every way a request can go wrong is counted apart.
#pragma once

#include <atomic>
#include <chrono>
#include <string>
#include <thread>
#include <vector>

namespace einhorn::test {

class Load {
 public:
  Load(int port, int threads, std::chrono::milliseconds timeout = std::chrono::seconds(5));
  ~Load();  // stops and joins
  Load(const Load&) = delete;
  Load& operator=(const Load&) = delete;

  void Stop();
  long ok() const { return ok_; }
  long failed() const { return connect_errors_ + resets_ + timeouts_ + bad_responses_; }
  // "ok 1234, connect errors 0, resets 0, timeouts 0, bad responses 0"
  std::string Summary() const;

 private:
  void Run();
  int port_;
  std::chrono::milliseconds timeout_;
  std::atomic<bool> stop_{false};
  std::atomic<long> ok_{0}, connect_errors_{0}, resets_{0}, timeouts_{0}, bad_responses_{0};
  std::vector<std::thread> threads_;
};

}  // namespace einhorn::test
