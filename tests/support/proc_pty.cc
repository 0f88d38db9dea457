#include "proc_pty.h"

#include <poll.h>
#include <pty.h>
#include <signal.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include <stdexcept>

extern char** environ;

namespace einhorn::test {

using Clock = std::chrono::steady_clock;

Pty::Pty(const std::vector<std::string>& argv, const std::vector<std::string>& env) {
  // The inherited environment, minus the names `env` sets, then `env`.
  std::vector<std::string> envs;
  for (char** e = environ; *e != nullptr; ++e) {
    const std::string entry = *e;
    const std::string prefix = entry.substr(0, entry.find('=') + 1);
    bool overridden = false;
    for (const std::string& x : env) overridden = overridden || x.starts_with(prefix);
    if (!overridden) envs.push_back(entry);
  }
  envs.insert(envs.end(), env.begin(), env.end());
  std::vector<char*> cargv, cenv;
  for (const std::string& a : argv) cargv.push_back(const_cast<char*>(a.c_str()));
  cargv.push_back(nullptr);
  for (const std::string& e : envs) cenv.push_back(const_cast<char*>(e.c_str()));
  cenv.push_back(nullptr);
  struct winsize ws {};
  ws.ws_row = 24;
  ws.ws_col = 200;
  pid_ = ::forkpty(&master_, nullptr, nullptr, &ws);
  if (pid_ < 0) throw std::runtime_error("forkpty failed");
  if (pid_ == 0) {
    ::execve(cargv[0], cargv.data(), cenv.data());
    ::_exit(127);
  }
}

Pty::~Pty() {
  if (pid_ > 0 && !status_) {
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
  }
  if (master_ >= 0) ::close(master_);
}

void Pty::Type(const std::string& keys) {
  // Keys typed before the line editor has the terminal would meet the kernel's cooked mode
  // (echoed as they are, an arrow as three bytes): wait a little for the program to switch the
  // terminal out of canonical mode. tcgetattr on the master reads the slave's settings.
  const auto deadline = Clock::now() + std::chrono::seconds(2);
  termios t{};
  while (tcgetattr(master_, &t) == 0 && (t.c_lflag & ICANON) != 0 && Clock::now() < deadline) {
    ReadSome(5);
  }
  size_t done = 0;
  while (done < keys.size()) {
    const ssize_t n = ::write(master_, keys.data() + done, keys.size() - done);
    if (n <= 0) throw std::runtime_error("cannot write to the pty");
    done += static_cast<size_t>(n);
  }
}

bool Pty::WaitFor(const std::string& needle, std::chrono::milliseconds within) {
  const auto deadline = Clock::now() + within;
  for (;;) {
    const size_t at = out_.find(needle, seen_);
    if (at != std::string::npos) {
      seen_ = at + needle.size();
      return true;
    }
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    if (left.count() <= 0 || !ReadSome(static_cast<int>(left.count()))) return false;
  }
}

std::optional<int> Pty::WaitExit(std::chrono::milliseconds within) {
  const auto deadline = Clock::now() + within;
  while (!status_ && Clock::now() < deadline) {
    int st = 0;
    if (::waitpid(pid_, &st, WNOHANG) == pid_) {
      status_ = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
      break;
    }
    ReadSome(10);
  }
  return status_;
}

bool Pty::ReadSome(int ms) {
  pollfd p{master_, POLLIN, 0};
  if (::poll(&p, 1, ms) <= 0) return true;
  char buf[4096];
  const ssize_t n = ::read(master_, buf, sizeof buf);
  if (n <= 0) return false;  // EIO: the program closed the terminal
  out_.append(buf, static_cast<size_t>(n));
  return true;
}

}  // namespace einhorn::test
