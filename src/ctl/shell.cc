#include "ctl/shell.h"

#include <istream>
#include <memory>
#include <optional>
#include <ostream>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/shell_words.h"

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

// Reads `in` line by line; the prompt goes to `out`, on a terminal only.
class StreamReader : public LineReader {
 public:
  StreamReader(std::istream& in, std::ostream* prompt_to) : in_(in), prompt_to_(prompt_to) {}
  std::optional<std::string> Read(const std::string& prompt) override {
    if (prompt_to_ != nullptr) *prompt_to_ << prompt << std::flush;
    std::string line;
    if (!std::getline(in_, line)) return std::nullopt;
    return line;
  }
  void Remember(const std::string&) override {}

 private:
  std::istream& in_;
  std::ostream* prompt_to_;
};

// einhornsh splits a line on ';' before anything else (a ';' inside quotes too).
std::vector<std::string> SplitCommands(const std::string& line) {
  std::vector<std::string> parts;
  size_t from = 0;
  for (size_t semi; (semi = line.find(';', from)) != std::string::npos; from = semi + 1) {
    parts.push_back(line.substr(from, semi - from));
  }
  parts.push_back(line.substr(from));
  return parts;
}

constexpr std::string_view kUsageHint = "Run 'einhornctl --help' for usage.\n";

// A line that is not one of our commands: to the master as it is, as einhornsh sends every line.
Invocation RawCommand(const std::vector<std::string>& words) {
  Invocation raw;
  raw.command = "raw";
  raw.verb = words[0];
  raw.args.assign(words.begin() + 1, words.end());
  return raw;
}

// --help, or a usage error: einhornctl's text without its hint, which the shell has no use for.
int ShowParseOutcome(ParsedCommandLine& parsed, Context& ctx) {
  if (parsed.err.ends_with(kUsageHint)) parsed.err.resize(parsed.err.size() - kUsageHint.size());
  *ctx.out << parsed.out << std::flush;
  *ctx.err << parsed.err << std::flush;
  return parsed.exit_code;
}

// Why the shell does not run `command` ("": it does).
std::string Refusal(const Invocation& command) {
  if (command.command.empty()) {
    return "which command? (help lists the master's, --help einhornctl's)";
  }
  if (!command.socket_path.empty() || !command.name.empty()) {
    return "the shell talks to one master: give -d or -c before `shell`";
  }
  if (command.command == "shell") return "already in the shell";
  if (command.command == "ack") {
    return "ack is for workers (the master hangs up after it), not for the shell";
  }
  return "";
}

}  // namespace

int Shell(const Invocation& inv, Context& ctx) {
  const bool interactive = ctx.stdin_tty;
  SharedConnection shared(ctx, inv.timeout);
  auto run = [&](Invocation command) {
    command.json = command.json || inv.json;
    command.timeout = inv.timeout;
    Context c = shared.For();
    return Run(command, c);
  };
  // One command of a line: its exit code.
  auto run_words = [&](const std::vector<std::string>& words) {
    // Not one of ours: to the master as it is, as einhornsh sends every line.
    if (!words[0].starts_with("-") && !IsCommand(words[0])) return run(RawCommand(words));
    std::vector<std::string> argv{"einhornctl"};
    argv.insert(argv.end(), words.begin(), words.end());
    ParsedCommandLine parsed = ParseCommandLine(argv);
    if (!parsed.run) return ShowParseOutcome(parsed, ctx);  // --help, or a usage error
    const Invocation& command = parsed.invocation;
    if (const std::string refusal = Refusal(command); !refusal.empty()) {
      *ctx.err << "einhornctl: " << refusal << "\n" << std::flush;
      return kExitUsage;
    }
    return run(command);
  };

  if (interactive) {
    Invocation ehlo;
    ehlo.command = "ehlo";
    if (const int code = run(ehlo); code == kExitUnreachable) return code;
    *ctx.out << "Enter 'help' if you're not sure what to do.\n"
             << "Type \"quit\" or \"exit\" to quit at any time.\n";
  }
  StreamReader plain(*ctx.in, interactive ? ctx.out : nullptr);
  LineReader& reader = ctx.lines != nullptr ? *ctx.lines : plain;
  int last = kExitOk;
  for (;;) {
    const std::optional<std::string> text = reader.Read("einhorn> ");
    if (!text) {
      if (!interactive) return last;
      *ctx.out << "\n" << std::flush;
      return kExitOk;
    }
    // Whatever was typed, even a line with a typo: the up arrow brings it back to be fixed.
    if (text->find_first_not_of(" \t") != std::string::npos) reader.Remember(*text);
    for (const std::string& part : SplitCommands(*text)) {
      const Result<std::vector<std::string>> words = core::ShellSplit(part);
      if (!words.ok()) {
        *ctx.err << "einhornctl: " << words.error() << "\n" << std::flush;
        last = kExitUsage;
        break;
      }
      if (words.value().empty()) continue;
      const std::string& first = words.value().front();
      if (first == "quit" || first == "exit") return kExitOk;
      last = run_words(words.value());
      if (last == kExitUnreachable) return last;
    }
  }
}

}  // namespace einhorn::ctl
