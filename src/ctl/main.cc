// einhornctl: the glue between the process (argv, environment, terminal, clock) and the
// commands in commands.h.
#include <pwd.h>
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <iostream>
#include <memory>
#include <thread>

#include "ctl/cli.h"
#include "ctl/client.h"
#include "ctl/commands.h"
#include "ctl/line_editor.h"

extern char** environ;

namespace {

using einhorn::ctl::Env;

class SteadyClock : public einhorn::ctl::Clock {
 public:
  double Now() override {
    return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch())
        .count();
  }
  void Sleep(double seconds) override {
    if (seconds > 0) std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
  }
};

Env CurrentEnv() {
  Env env;
  for (char** e = environ; *e != nullptr; ++e) {
    const std::string entry = *e;
    const size_t eq = entry.find('=');
    if (eq != std::string::npos) env.emplace(entry.substr(0, eq), entry.substr(eq + 1));
  }
  return env;
}

}  // namespace

int main(int argc, char** argv) {
  namespace ctl = einhorn::ctl;
  // Writes to a master that went away, or to a closed pipe on stdout (`| head`), are errors to
  // report, not a silent death.
  ::signal(SIGPIPE, SIG_IGN);

  const ctl::ParsedCommandLine parsed =
      ctl::ParseCommandLine(std::vector<std::string>(argv, argv + argc));
  if (!parsed.run) {
    std::cout << parsed.out << std::flush;
    std::cerr << parsed.err << std::flush;
    return parsed.exit_code;
  }
  const ctl::Invocation& inv = parsed.invocation;
  const Env env = CurrentEnv();
  const einhorn::core::Result<ctl::Target> target = ctl::ResolveTarget(inv, env);
  if (!target.ok()) {
    std::cerr << "einhornctl: " << target.error() << "\n";
    return ctl::kExitUnreachable;
  }

  SteadyClock clock;
  ctl::Context ctx;
  ctx.out = &std::cout;
  ctx.err = &std::cerr;
  ctx.in = &std::cin;
  ctx.stdin_tty = ::isatty(STDIN_FILENO) == 1;
  ctx.stdout_tty = ::isatty(STDOUT_FILENO) == 1;
  // Sent with ehlo, as einhornsh does; LOGNAME where USER is not set (cron, some containers).
  for (const char* name : {"USER", "LOGNAME"}) {
    const auto it = env.find(name);
    if (it != env.end() && !it->second.empty()) {
      ctx.user = it->second;
      break;
    }
  }
  if (ctx.user.empty()) {
    if (const passwd* pw = ::getpwuid(::getuid()); pw != nullptr) ctx.user = pw->pw_name;
  }
  // A shell-script worker runs `einhornctl ack` as its child: our parent is the worker.
  ctx.parent_pid = ::getppid();
  ctx.clock = &clock;
  const ctl::Target& where = target.value();
  ctx.connect = [&where, &inv]() {
    return where.fd ? ctl::AdoptFd(*where.fd, inv.timeout)
                    : ctl::ConnectUnix(where.path, inv.timeout);
  };
  // The shell on a terminal edits its lines with libedit and keeps a history.
  std::unique_ptr<ctl::LineReader> editor;
  if ((inv.command.empty() || inv.command == "shell") && ctx.stdin_tty) {
    const passwd* pw = ::getpwuid(::getuid());
    editor = ctl::OpenLineEditor(ctl::HistoryPath(env, pw != nullptr ? pw->pw_dir : ""),
                                 std::cerr);
    ctx.lines = editor.get();
  }
  const int code = ctl::Run(inv, ctx);
  std::cout.flush();
  return code;
}
