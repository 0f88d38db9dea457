// einhornctl's commands: what each one sends and what it prints. Nothing here touches the OS:
// the socket is a Connection (client.h), time is a Clock, the terminal is a pair of streams and
// two flags, so every command runs in the unit tests against a scripted master.
#pragma once

#include <cstdint>
#include <functional>
#include <iosfwd>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/status.h"
#include "core/types.h"
#include "ctl/cli.h"
#include "ctl/client.h"

namespace CLI {
class App;
class Validator;
}

namespace einhorn::ctl {

class LineReader;  // shell.h

// One request, before it gets its id.
struct RequestSpec {
  std::string verb;
  std::vector<std::string> args;
  bool operator==(const RequestSpec&) const = default;
};

// The requests of the commands that are a fixed list of them (inc N, dec N, set, signal, die,
// quieter, louder, help, state, raw, upgrade, reload). Empty for the others: status, set --wait
// after its first request, log-level, ack and ehlo need replies or special shapes, and Run
// handles them. (upgrade's and reload's one request is here; how they listen to the replies
// and wait for the outcome is Run's.)
std::vector<RequestSpec> PlanRequests(const Invocation& invocation);

// Adds every command of the command table (commands.cc) to einhornctl's command line, with its
// help and arguments, in the order --help lists them.
void AddCommands(CLI::App& app, Invocation& invocation);

// Whether `name` is one of einhornctl's commands (the shell sends any other word as it is).
bool IsCommand(const std::string& name);

// A number of seconds for einhornctl's waits: finite, above 0 (or 0 when `zero_ok`, which
// means no limit) and at most the master's own cap on durations (1e6 s). CLI11's
// PositiveNumber lets nan through, and 1e10 overflowed the clock arithmetic.
CLI::Validator SecondsValidator(bool zero_ok);

// Time for the waits (set --wait, upgrade --wait, reload, wait), faked in tests.
class Clock {
 public:
  virtual ~Clock() = default;
  virtual double Now() = 0;  // seconds, monotonic
  virtual void Sleep(double seconds) = 0;
};

// Everything a command needs from the world.
struct Context {
  std::ostream* out = nullptr;
  std::ostream* err = nullptr;
  std::istream* in = nullptr;  // the interactive shell's input
  LineReader* lines = nullptr;  // the shell's line editor on a terminal (else `in` is read)
  bool stdin_tty = false;
  bool stdout_tty = false;
  std::string user;          // $USER, for ehlo
  core::Pid parent_pid = 0;  // the default pid for ack
  Clock* clock = nullptr;
  // Called by commands that talk to the master: once, or again after the connection was lost
  // (reload's wait, across the master's re-exec).
  std::function<core::Result<std::unique_ptr<Connection>>()> connect;
  // The shell runs one command after another on one connection: the request ids go on from
  // one command to the next (an upgrade streams its progress with its own id, which a later
  // request must not reuse). Null: each command counts from 1.
  std::int64_t* next_request_id = nullptr;
};

// Runs a parsed command line and returns the exit code.
int Run(const Invocation& invocation, Context& context);

}  // namespace einhorn::ctl
