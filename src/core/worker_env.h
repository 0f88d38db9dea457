// The environment a worker is started with: the master's own, minus anything that would
// mislead the worker (the service manager's NOTIFY_SOCKET, socket-activation and Einhorn
// variables meant for the master itself), plus Einhorn's and systemd's announcements of the
// inherited sockets. LISTEN_PID is not here: only the child knows its pid (src/sys/spawn).
#pragma once

#include <string>
#include <vector>

#include "core/bind_spec.h"
#include "core/types.h"

namespace einhorn::core {

struct WorkerEnvInput {
  std::vector<std::string> base;          // "NAME=value", the master's startup environment
  std::vector<BindSpec::Family> families;  // one per inherited listener, at fd 3, 4, ...
  std::vector<std::string> fd_names;       // LISTEN_FDNAMES entries, same order
  Pid master_pid = 0;
  std::string sock_path;
  int child_index = 0;
};

inline constexpr int kFirstListenFd = 3;

std::vector<std::string> BuildWorkerEnv(const WorkerEnvInput& in);

}  // namespace einhorn::core
