#include "ctl/shell.h"

#include <istream>
#include <memory>
#include <optional>
#include <ostream>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

namespace einhorn::ctl {
namespace {

using core::Result;
using core::Status;

// The shell's one connection, lent to each command in turn: a command's Session owns what
// Context::connect gives it, and destroys it when the command ends.
class Borrowed : public Connection {
 public:
  explicit Borrowed(Connection& conn) : conn_(conn) {}
  Status Send(const std::string& line) override { return conn_.Send(line); }
  Result<core::wire::Reply> Receive() override { return conn_.Receive(); }
  void SetReplyTimeout(std::optional<double> seconds) override { conn_.SetReplyTimeout(seconds); }
  Result<std::optional<core::wire::Reply>> AwaitClose() override { return conn_.AwaitClose(); }

 private:
  Connection& conn_;
};

// Opens the master's connection on first use and lends it to every command after that.
class SharedConnection {
 public:
  SharedConnection(Context& ctx, double timeout) : ctx_(ctx), timeout_(timeout) {}

  // The context each command of the shell runs with: the shell's terminal, its connection and
  // its request ids.
  Context For() {
    Context c = ctx_;
    c.next_request_id = &next_id_;
    c.connect = [this]() -> Result<std::unique_ptr<Connection>> {
      if (!conn_) {
        Result<std::unique_ptr<Connection>> opened = ctx_.connect();
        if (!opened.ok()) return opened;
        conn_ = std::move(opened).value();
      }
      // A command that waited for ever (upgrade --wait) must not leave that to the next one.
      conn_->SetReplyTimeout(timeout_);
      return std::unique_ptr<Connection>(std::make_unique<Borrowed>(*conn_));
    };
    return c;
  }

 private:
  Context& ctx_;
  double timeout_;
  std::unique_ptr<Connection> conn_;
  std::int64_t next_id_ = 1;
};

std::vector<std::string> SplitWords(const std::string& line) {
  std::vector<std::string> words;
  std::istringstream in(line);
  for (std::string w; in >> w;) words.push_back(w);
  return words;
}

}  // namespace

int Shell(const Invocation& inv, Context& ctx) {
  SharedConnection shared(ctx, inv.timeout);
  auto run = [&](Invocation command) {
    command.json = inv.json;
    command.timeout = inv.timeout;
    Context c = shared.For();
    return Run(command, c);
  };
  Invocation ehlo;
  ehlo.command = "ehlo";
  if (const int code = run(ehlo); code == kExitUnreachable) return code;
  *ctx.out << "Enter 'help' if you're not sure what to do.\n"
           << "Type \"quit\" or \"exit\" to quit at any time.\n";
  for (;;) {
    *ctx.out << "einhorn> " << std::flush;
    std::string text;
    if (!std::getline(*ctx.in, text)) {
      *ctx.out << "\n" << std::flush;
      return kExitOk;
    }
    std::vector<std::string> words = SplitWords(text);
    if (words.empty()) continue;
    if (words[0] == "quit" || words[0] == "exit") return kExitOk;
    Invocation command;
    if (words[0] == "status" && words.size() == 1) {
      // The YAML is for programs; people get the table.
      command.command = "status";
    } else {
      command.command = "raw";
      command.verb = words[0];
      command.args.assign(words.begin() + 1, words.end());
    }
    if (const int code = run(command); code == kExitUnreachable) return code;
  }
}

}  // namespace einhorn::ctl
