#include "core/worker_env.h"

#include <doctest/doctest.h>

#include <algorithm>

namespace einhorn::core {
namespace {

bool Has(const std::vector<std::string>& env, const std::string& entry) {
  return std::find(env.begin(), env.end(), entry) != env.end();
}

bool HasName(const std::vector<std::string>& env, const std::string& name) {
  return std::any_of(env.begin(), env.end(),
                     [&](const std::string& e) { return e.rfind(name + "=", 0) == 0; });
}

TEST_CASE("sockets are announced the Einhorn way and the systemd way") {
  WorkerEnvInput in;
  in.base = {"PATH=/bin", "HOME=/root"};
  in.families = {BindSpec::Family::kInet, BindSpec::Family::kUnix};
  in.fd_names = {"127.0.0.1_8080", "unix_/run/a.sock"};
  in.master_pid = 42;
  in.sock_path = "/tmp/einhorn.sock";
  in.child_index = 3;
  const auto env = BuildWorkerEnv(in);
  CHECK(Has(env, "PATH=/bin"));
  CHECK(Has(env, "HOME=/root"));
  CHECK(Has(env, "EINHORN_FD_COUNT=2"));
  CHECK(Has(env, "EINHORN_FD_0=3"));
  CHECK(Has(env, "EINHORN_FD_1=4"));
  CHECK(Has(env, "EINHORN_FD_FAMILY_0=AF_INET"));
  CHECK(Has(env, "EINHORN_FD_FAMILY_1=AF_UNIX"));
  CHECK(Has(env, "EINHORN_FDS=3 4"));
  CHECK(Has(env, "EINHORN_MASTER_PID=42"));
  CHECK(Has(env, "EINHORN_SOCK_PATH=/tmp/einhorn.sock"));
  CHECK(Has(env, "EINHORN_CHILD_INDEX=3"));
  CHECK(Has(env, "LISTEN_FDS=2"));
  CHECK(Has(env, "LISTEN_FDNAMES=127.0.0.1_8080:unix_/run/a.sock"));
  CHECK_FALSE(HasName(env, "LISTEN_PID"));
}

TEST_CASE("without binds the count is still announced, and LISTEN_FDS is not") {
  WorkerEnvInput in;
  const auto env = BuildWorkerEnv(in);
  CHECK(Has(env, "EINHORN_FD_COUNT=0"));
  CHECK(Has(env, "EINHORN_FDS="));
  CHECK_FALSE(HasName(env, "LISTEN_FDS"));
  CHECK_FALSE(HasName(env, "LISTEN_FDNAMES"));
}

TEST_CASE("the service manager's and an outer supervisor's variables do not leak") {
  WorkerEnvInput in;
  in.base = {"NOTIFY_SOCKET=/run/systemd/notify", "LISTEN_PID=1", "LISTEN_FDS=9",
             "LISTEN_FDNAMES=x", "EINHORN_FD_0=7", "EINHORN_FD_COUNT=5", "EINHORN_SOCK_FD=9",
             "EINHORN_MASTER_PID=1", "EINHORN_CHILD_INDEX=8", "EINHORN_FD_FAMILY_0=AF_INET",
             "EINHORNISH=keep", "NOTIFY_SOCKETS=keep", "garbage-without-equals",
             "WATCHDOG_USEC=30000000", "WATCHDOG_PID=1"};
  const auto env = BuildWorkerEnv(in);
  CHECK_FALSE(HasName(env, "NOTIFY_SOCKET"));
  CHECK_FALSE(HasName(env, "WATCHDOG_USEC"));
  CHECK_FALSE(HasName(env, "WATCHDOG_PID"));
  CHECK_FALSE(HasName(env, "LISTEN_PID"));
  CHECK_FALSE(HasName(env, "LISTEN_FDS"));
  CHECK_FALSE(HasName(env, "EINHORN_FD_0"));
  CHECK_FALSE(HasName(env, "EINHORN_SOCK_FD"));
  CHECK_FALSE(HasName(env, "EINHORN_FD_FAMILY_0"));
  CHECK(Has(env, "EINHORN_FD_COUNT=0"));
  CHECK(Has(env, "EINHORN_MASTER_PID=0"));
  CHECK(Has(env, "EINHORN_CHILD_INDEX=0"));
  CHECK(Has(env, "EINHORNISH=keep"));
  CHECK(Has(env, "NOTIFY_SOCKETS=keep"));
  CHECK_FALSE(Has(env, "garbage-without-equals"));
  CHECK(std::count_if(env.begin(), env.end(), [](const std::string& e) {
          return e.rfind("EINHORN_FD_COUNT=", 0) == 0;
        }) == 1);
}

}  // namespace
}  // namespace einhorn::core
