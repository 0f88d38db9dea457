// A program on a real terminal, for tests of interactive programs (einhornctl's shell): the
// slave side of a new pty (forkpty) is its controlling terminal, so Ctrl-C is a SIGINT as at a
// keyboard. The test types keys and reads what the terminal shows.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <optional>
#include <string>
#include <vector>

namespace einhorn::test {

class Pty {
 public:
  // Starts argv[0] (a path) with the inherited environment, `env` ("NAME=value") replacing
  // same-named entries. Throws std::runtime_error if forkpty fails.
  Pty(const std::vector<std::string>& argv, const std::vector<std::string>& env);
  ~Pty();  // SIGKILL and reap if still running
  Pty(const Pty&) = delete;
  Pty& operator=(const Pty&) = delete;

  // Writes keys to the terminal ("\r" is Enter, "\x03" Ctrl-C, "\x1b[A" the up arrow).
  void Type(const std::string& keys);
  // Reads the terminal until `needle` appears after the previous match; false after `within`.
  bool WaitFor(const std::string& needle,
               std::chrono::milliseconds within = std::chrono::seconds(10));
  // The exit code (-1 for a signal), or nullopt if it did not exit within `within`.
  std::optional<int> WaitExit(std::chrono::milliseconds within = std::chrono::seconds(10));
  // Everything the terminal showed so far.
  const std::string& out() const { return out_; }

 private:
  bool ReadSome(int ms);

  pid_t pid_ = -1;
  int master_ = -1;
  std::string out_;
  size_t seen_ = 0;
  std::optional<int> status_;
};

}  // namespace einhorn::test
