// The bash and zsh completions (packaging/completion) against the binaries' own --help: every
// subcommand and option the CLI has is completed, and nothing is completed that it does not
// have, so that the scripts cannot drift from the CLI11 tables; and bash really completes.
#include <doctest/doctest.h>
#include <unistd.h>

#include <chrono>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "proc.h"

namespace einhorn::test {
namespace {

using namespace std::chrono_literals;
using Words = std::set<std::string>;

const std::string kDir = COMPLETION_DIR;

std::string Output(std::vector<std::string> argv) {
  TempDir d;
  Process::Options o;
  o.argv = std::move(argv);
  o.stdin_path = "/dev/null";
  o.stdout_path = d.File("out");
  o.stderr_path = d.File("err");
  Process p = Process::Start(o);
  const auto st = p.WaitExit(30s);
  REQUIRE(st.has_value());
  return ReadFile(d.File("out"));
}

// The lines of a CLI11 help section ("Options:", "Subcommands:"), up to the blank line.
std::vector<std::string> Section(const std::string& help, const std::string& title) {
  std::vector<std::string> lines;
  std::istringstream in(help);
  bool inside = false;
  for (std::string line; std::getline(in, line);) {
    if (line == title) {
      inside = true;
    } else if (inside && line.empty()) {
      break;
    } else if (inside) {
      lines.push_back(line);
    }
  }
  return lines;
}

// "  -n,--number INT   Number of ..." -> -n --number.
Words HelpOptions(const std::string& help) {
  Words opts;
  for (const std::string& line : Section(help, "Options:")) {
    if (!line.starts_with("  -")) continue;
    std::string names = line.substr(2, line.find(' ', 2) - 2);
    std::istringstream parts(names);
    for (std::string n; std::getline(parts, n, ',');) opts.insert(n);
  }
  return opts;
}

Words HelpSubcommands(const std::string& help) {
  Words subs;
  for (const std::string& line : Section(help, "Subcommands:")) {
    if (line.starts_with("  ") && line[2] != ' ')
      subs.insert(line.substr(2, line.find(' ', 2) - 2));
  }
  return subs;
}

Words Split(const std::string& text, const std::string& seps = " ") {
  Words w;
  size_t from = 0;
  while (from < text.size()) {
    const size_t end = text.find_first_of(seps, from);
    if (end != from) w.insert(text.substr(from, end - from));
    if (end == std::string::npos) break;
    from = end + 1;
  }
  return w;
}

// The words of `local NAME="..."` in a script.
Words Assigned(const std::string& script, const std::string& name) {
  std::smatch m;
  REQUIRE_MESSAGE(std::regex_search(script, m, std::regex("local " + name + "=\"([^\"]*)\"")),
                  name);
  return Split(m[1].str());
}

// `    SUB) opts="..."` of the per-subcommand case.
Words CaseOpts(const std::string& script, const std::string& sub) {
  std::smatch m;
  const std::regex line("\\n    " + sub + "\\) opts=\"([^\"]*)\"");
  if (!std::regex_search(script, m, line)) return {"(no case for " + sub + ")"};
  return Split(m[1].str());
}

// The options that take a value, in the loop that finds the worker command.
Words Valued(const std::string& script) {
  std::smatch m;
  REQUIRE(std::regex_search(script, m,
                            std::regex("\\n +(-n\\|--number\\|[^)]*)\\) \\(\\( ?i\\+\\+ ?\\)\\)")));
  return Split(m[1].str(), "|");
}

bool Subset(const Words& a, const Words& b) {
  for (const std::string& w : a) {
    if (!b.contains(w)) return false;
  }
  return true;
}

TEST_CASE("completion: einhornctl's scripts complete exactly its commands and options") {
  const std::string help = Output({EINHORNCTL_BIN, "--help"});
  const Words globals = HelpOptions(help);
  const Words subs = HelpSubcommands(help);
  REQUIRE(subs.contains("status"));
  REQUIRE(subs.contains("shell"));
  REQUIRE(globals.contains("--socket-path"));
  for (const std::string file : {"einhornctl.bash", "_einhornctl"}) {
    CAPTURE(file);
    const std::string script = ReadFile(kDir + "/" + file);
    REQUIRE_FALSE(script.empty());
    CHECK(Assigned(script, "global_opts") == globals);
    if (file.ends_with(".bash")) {
      CHECK(Assigned(script, "commands") == subs);
    } else {
      Words described;
      std::smatch m;
      const std::regex entry("\\n    '([a-z-]+):");
      for (auto it = std::sregex_iterator(script.begin(), script.end(), entry);
           it != std::sregex_iterator(); ++it) {
        described.insert((*it)[1].str());
      }
      CHECK(described == subs);
    }
    for (const std::string& sub : subs) {
      CAPTURE(sub);
      CHECK(CaseOpts(script, sub) == HelpOptions(Output({EINHORNCTL_BIN, sub, "--help"})));
    }
  }
}

TEST_CASE("completion: einhorn-cpp's scripts complete exactly its options") {
  const Words opts = HelpOptions(Output({EINHORN_BIN, "--help"}));
  REQUIRE(opts.contains("--metrics-listen-public"));
  for (const std::string file : {"einhorn-cpp.bash", "_einhorn-cpp"}) {
    CAPTURE(file);
    const std::string script = ReadFile(kDir + "/" + file);
    CHECK(Assigned(script, "opts") == opts);
    // The options that take a value are real ones, and the flags are not among them.
    const Words valued = Valued(script);
    CHECK(Subset(valued, opts));
    for (const char* flag : {"-k", "-q", "-v", "-g", "--subreaper", "--no-canary",
                             "--metrics-listen-public", "--help", "--version"}) {
      CHECK_FALSE(valued.contains(flag));
    }
  }
}

// What bash completes for `line` (the last word being completed), with only the script loaded.
std::string BashComplete(const std::string& file, const std::string& function,
                         const std::string& line) {
  const std::string program = "source '" + kDir + "/" + file + "'; COMP_WORDS=(" + line + "); " +
                              "[[ '" + line + "' == *' ' ]] && COMP_WORDS+=(''); " +
                              "COMP_CWORD=$((${#COMP_WORDS[@]} - 1)); " + function +
                              "; echo \"${COMPREPLY[*]}\"";
  std::string out = Output({"/bin/bash", "--norc", "--noprofile", "-c", program});
  if (!out.empty() && out.back() == '\n') out.pop_back();
  return out;
}

TEST_CASE("completion: bash completes subcommands, their options and values") {
  CHECK(BashComplete("einhornctl.bash", "_einhornctl", "einhornctl se") == "set");
  CHECK(BashComplete("einhornctl.bash", "_einhornctl", "einhornctl -d /tmp/x.sock up") ==
        "upgrade");
  CHECK(BashComplete("einhornctl.bash", "_einhornctl", "einhornctl upgrade --wa") ==
        "--wait --wait-timeout");
  CHECK(BashComplete("einhornctl.bash", "_einhornctl", "einhornctl log-level ") ==
        "debug info error");
  CHECK(BashComplete("einhorn-cpp.bash", "_einhorn_cpp", "einhorn-cpp --metrics-l") ==
        "--metrics-listen --metrics-listen-public");
  CHECK(BashComplete("einhorn-cpp.bash", "_einhorn_cpp", "einhorn-cpp --log-format j") == "json");
  // After the worker command, einhorn-cpp's options are the worker's business.
  CHECK(BashComplete("einhorn-cpp.bash", "_einhorn_cpp", "einhorn-cpp -n 2 ./w --metrics-l") == "");
}

TEST_CASE("completion: the zsh scripts parse") {
  if (::access("/usr/bin/zsh", X_OK) != 0 && ::access("/bin/zsh", X_OK) != 0) {
    MESSAGE("skipped: zsh is not installed (scripts/install-deps test installs it)");
    return;
  }
  for (const char* file : {"_einhornctl", "_einhorn-cpp"}) {
    CAPTURE(file);
    TempDir d;
    Process::Options o;
    o.argv = {"zsh", "-n", kDir + "/" + file};
    o.stderr_path = d.File("err");
    Process p = Process::Start(o);
    const auto st = p.WaitExit(30s);
    REQUIRE(st.has_value());
    CHECK_MESSAGE(st->code == 0, ReadFile(d.File("err")));
  }
}

}  // namespace
}  // namespace einhorn::test
