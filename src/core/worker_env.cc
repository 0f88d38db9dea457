#include "core/worker_env.h"

#include <algorithm>
#include <array>
#include <string_view>

namespace einhorn::core {
namespace {

bool Inherited(std::string_view entry) {
  const std::string_view name = entry.substr(0, entry.find('='));
  // The service manager's, meant for the master (the master feeds its watchdog itself).
  if (name == "NOTIFY_SOCKET" || name == "LISTEN_PID" || name == "LISTEN_FDS" ||
      name == "LISTEN_FDNAMES" || name == "WATCHDOG_USEC" || name == "WATCHDOG_PID") {
    return false;
  }
  // Einhorn's announcements from an enclosing supervisor would be wrong for our workers.
  constexpr std::array<std::string_view, 4> kOurs{"EINHORN_FD", "EINHORN_MASTER_PID",
                                                  "EINHORN_SOCK_", "EINHORN_CHILD_INDEX"};
  return std::none_of(kOurs.begin(), kOurs.end(),
                      [name](std::string_view p) { return name.substr(0, p.size()) == p; });
}

const char* FamilyName(BindSpec::Family f) {
  switch (f) {
    case BindSpec::Family::kInet:
      return "AF_INET";
    case BindSpec::Family::kInet6:
      return "AF_INET6";
    case BindSpec::Family::kUnix:
      return "AF_UNIX";
  }
  return "AF_UNSPEC";
}

}  // namespace

std::vector<std::string> BuildWorkerEnv(const WorkerEnvInput& in) {
  std::vector<std::string> env;
  env.reserve(in.base.size() + 8 + 2 * in.families.size());
  for (const std::string& e : in.base) {
    if (e.find('=') != std::string::npos && Inherited(e)) env.push_back(e);
  }
  const int count = static_cast<int>(in.families.size());
  std::string fds;
  std::string names;
  for (int i = 0; i < count; ++i) {
    const std::string fd = std::to_string(kFirstListenFd + i);
    env.push_back("EINHORN_FD_" + std::to_string(i) + "=" + fd);
    // Read by Python baseplate, which otherwise assumes AF_INET.
    env.push_back("EINHORN_FD_FAMILY_" + std::to_string(i) + "=" +
                  FamilyName(in.families[static_cast<size_t>(i)]));
    fds += (i ? " " : "") + fd;
    if (i) names += ":";
    if (static_cast<size_t>(i) < in.fd_names.size()) names += in.fd_names[static_cast<size_t>(i)];
  }
  env.push_back("EINHORN_FD_COUNT=" + std::to_string(count));
  env.push_back("EINHORN_FDS=" + fds);  // removed in Einhorn 1.0, still read by old PHP clients
  env.push_back("EINHORN_MASTER_PID=" + std::to_string(in.master_pid));
  env.push_back("EINHORN_SOCK_PATH=" + in.sock_path);
  env.push_back("EINHORN_CHILD_INDEX=" + std::to_string(in.child_index));
  if (count > 0) {
    env.push_back("LISTEN_FDS=" + std::to_string(count));
    env.push_back("LISTEN_FDNAMES=" + names);
  }
  return env;
}

}  // namespace einhorn::core
