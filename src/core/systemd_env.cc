#include "core/systemd_env.h"

#include <climits>
#include <cstring>

namespace einhorn::core {
namespace {

// Decimal digits only, no sign or space: what systemd writes. (libsystemd also takes octal
// and hex here; a manager that sent those would be refused with a clear error.)
std::optional<std::uint64_t> Decimal(const char* text) {
  if (text == nullptr || *text == '\0') return std::nullopt;
  std::uint64_t value = 0;
  for (const char* p = text; *p != '\0'; ++p) {
    if (*p < '0' || *p > '9') return std::nullopt;
    const auto digit = static_cast<std::uint64_t>(*p - '0');
    if (value > (UINT64_MAX - digit) / 10) return std::nullopt;
    value = value * 10 + digit;
  }
  return value;
}

std::optional<std::int64_t> Pid(const char* text) {
  const std::optional<std::uint64_t> v = Decimal(text);
  if (!v || *v == 0 || *v > static_cast<std::uint64_t>(INT_MAX)) return std::nullopt;
  return static_cast<std::int64_t>(*v);
}

std::string Quoted(const char* name, const char* value) {
  return std::string(name) + "='" + value + "'";
}

}  // namespace

Result<ListenFds> ParseListenFds(const char* listen_pid, const char* listen_fds,
                                 const char* listen_fdnames, std::int64_t self_pid) {
  using R = Result<ListenFds>;
  if (listen_pid == nullptr) return ListenFds{};
  const std::optional<std::int64_t> pid = Pid(listen_pid);
  if (!pid) return R::Error(Quoted("LISTEN_PID", listen_pid) + " is not a process id");
  if (*pid != self_pid || listen_fds == nullptr) return ListenFds{};
  const std::optional<std::uint64_t> n = Decimal(listen_fds);
  if (!n || *n == 0 || *n > static_cast<std::uint64_t>(INT_MAX - kListenFdsStart)) {
    return R::Error(Quoted("LISTEN_FDS", listen_fds) + " is not a count of fds (1 or more)");
  }
  ListenFds out;
  out.count = static_cast<int>(*n);
  if (listen_fdnames == nullptr) return out;
  // Split on every ':', empty names kept: "a::b" names three fds.
  for (const char* p = listen_fdnames;; ++p) {
    const char* end = std::strchr(p, ':');
    if (end == nullptr) {
      out.names.emplace_back(p);
      break;
    }
    out.names.emplace_back(p, end);
    p = end;
  }
  if (out.names.size() != static_cast<size_t>(out.count)) {
    return R::Error(Quoted("LISTEN_FDNAMES", listen_fdnames) + " names " +
                    std::to_string(out.names.size()) + " fds, LISTEN_FDS passes " +
                    std::to_string(out.count));
  }
  return out;
}

std::optional<std::uint64_t> ParseWatchdog(const char* watchdog_usec, const char* watchdog_pid,
                                           std::int64_t self_pid) {
  const std::optional<std::uint64_t> usec = Decimal(watchdog_usec);
  if (!usec || *usec == 0 || *usec == UINT64_MAX) return std::nullopt;
  if (watchdog_pid != nullptr) {
    const std::optional<std::int64_t> pid = Pid(watchdog_pid);
    if (!pid || *pid != self_pid) return std::nullopt;
  }
  return usec;
}

std::optional<std::string> NotifySocketPath(const char* notify_socket, std::size_t max_path) {
  if (notify_socket == nullptr) return std::nullopt;
  const std::size_t length = std::strlen(notify_socket);
  if (length < 2) return std::nullopt;
  if (notify_socket[0] == '/') {
    if (length + 1 > max_path) return std::nullopt;  // the path and its NUL
    return std::string(notify_socket, length + 1);
  }
  if (notify_socket[0] == '@') {
    if (length > max_path) return std::nullopt;
    std::string path(notify_socket, length);
    path[0] = '\0';
    return path;
  }
  return std::nullopt;
}

}  // namespace einhorn::core
