// The YAML config file with the real binaries: a master runs from the file alone, flags
// override it, --check-config prints the effective settings or the error with its line, and
// `reload` reads the file again: live settings change, a restart-only change is refused.
#include <doctest/doctest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>
#include <map>
#include <sstream>

#include "control_client.h"
#include "harness.h"
#include "pool_query.h"

namespace einhorn::test {
namespace {

void Write(const std::string& path, const std::string& text) {
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << text;
  }
  REQUIRE(rename(tmp.c_str(), path.c_str()) == 0);  // a reload never reads half a file
}

std::string WorkerCommand(const TempDir& dir, const std::string& reports) {
  return "command: [" + std::string(TEST_WORKER_BIN) + ", --report, " + dir.File(reports) + "]\n";
}

bool Has(const std::string& text, const std::string& needle) {
  return text.find(needle) != std::string::npos;
}

// argv of a process, space-joined.
std::string CmdlineOf(pid_t pid) {
  std::string raw = ReadFile("/proc/" + std::to_string(pid) + "/cmdline");
  for (char& c : raw) {
    if (c == '\0') c = ' ';
  }
  return raw;
}

void AskReload(const MasterRun& m) {
  ControlClient c(Sock(m));
  REQUIRE(c.connected());
  const auto r = c.Ask("{\"id\": 1, \"command\": \"reload\"}\n");
  REQUIRE(r.has_value());
  CHECK_FALSE(r->error);
}

TEST_CASE("config file: a master runs from the file, and flags override it") {
  TempDir cfg;
  REQUIRE(mkdir(cfg.File("reports").c_str(), 0755) == 0);
  const std::string file = cfg.File("app.yaml");
  Write(file, WorkerCommand(cfg, "reports") + "number: 2\nack_mode: 0.1\nbind: 127.0.0.1:0\n");
  {
    MasterRun m({"--config", file}, {});
    REQUIRE(PollUntil([&] { return PoolSettled(m, 2, 1); }, 20s));
    const auto st = Status(m);
    REQUIRE(st.has_value());
    CHECK(st->ack_mode == "timer 0.1s");
    CHECK(m.Port().has_value());
    CHECK(m.LogHas("settings from " + file));
    for (pid_t pid : Pids(m)) CHECK(Has(CmdlineOf(pid), cfg.File("reports")));
  }
  MasterRun over({"--config", file, "-n", "3", "-m", "manual"}, {});
  REQUIRE(PollUntil([&] { return Status(over) && Status(over)->booting == 3; }, 20s));
  CHECK(Status(over)->ack_mode == "manual");
}

TEST_CASE("config file: --check-config prints the effective settings or the error and its line") {
  TempDir cfg;
  const std::string file = cfg.File("app.yaml");
  // The command must exist now that --check-config checks it (issue 17.5): the test worker
  // stands in for the bin/work this test used.
  Write(file, "command: [" + std::string(TEST_WORKER_BIN) +
                  ", --queue, mail]\nnumber: 4\nbind: [127.0.0.1:8080]\n");
  const Finished ok = RunToExit({"--check-config", file, "-n", "6"});
  INFO(ok.err);
  CHECK(ok.status == core::ExitStatus{false, 0});
  CHECK(Has(ok.out, "number: 6\n"));
  CHECK(Has(ok.out, "  - 127.0.0.1:8080\n"));
  CHECK(Has(ok.out, "  - " + std::string(TEST_WORKER_BIN) + "\n"));
  CHECK(Has(ok.out, "# command: " + std::string(TEST_WORKER_BIN) + "\n"));

  // The commented sample in examples/ stays a valid file.
  const Finished sample = RunToExit({"--check-config", EXAMPLES_DIR "/einhorn-cpp.yaml"});
  INFO(sample.err);
  CHECK(sample.status == core::ExitStatus{false, 0});
  CHECK(Has(sample.out, "ack_mode: manual\n"));

  Write(file, "command: [w]\nnumber: 4\nnumbr: 5\n");
  const Finished bad = RunToExit({"--check-config", file});
  CHECK(bad.status == core::ExitStatus{false, 2});
  CHECK(bad.err == "einhorn-cpp: " + file + ":3: numbr: unknown key (did you mean number?)\n");
  const Finished run = RunToExit({"--config", file});
  CHECK(run.status == core::ExitStatus{false, 2});
  CHECK(run.err == bad.err);

  const Finished missing = RunToExit({"--config", cfg.File("nope.yaml")});
  CHECK(missing.status == core::ExitStatus{false, 2});
  CHECK(Has(missing.err, "cannot read the config file " + cfg.File("nope.yaml") +
                             ": No such file or directory"));
  const Finished dir = RunToExit({"--config", cfg.path()});
  CHECK(dir.status == core::ExitStatus{false, 2});
  CHECK(Has(dir.err, "is not a regular file"));

  Write(file, "# " + std::string(10 << 20, 'x') + "\n");
  const Finished big = RunToExit({"--check-config", file});
  CHECK(big.status == core::ExitStatus{false, 2});
  CHECK(Has(big.err, "larger than 1 MiB"));
}

// --check-config's output as key -> its text (the key's line and its list items).
std::map<std::string, std::string> SettingsOf(const std::string& out) {
  std::map<std::string, std::string> settings;
  std::string key;
  std::istringstream in(out);
  for (std::string line; std::getline(in, line);) {
    if (line.empty() || line[0] == '#') continue;
    if (line[0] != ' ') key = line.substr(0, line.find(':'));
    settings[key] += line + "\n";
  }
  return settings;
}

// The sample says which of its values are not the defaults: a key's line carries
// "NOT DEFAULT" exactly when its effective value differs from that of a file without it.
TEST_CASE("config file: the sample marks every value that is not the default, and only those") {
  const std::string sample = EXAMPLES_DIR "/einhorn-cpp.yaml";
  const Finished with = RunToExit({"--check-config", sample});
  REQUIRE(with.status.code == 0);
  TempDir cfg;
  const std::string bare = cfg.File("bare.yaml");
  Write(bare, "command: [python3, examples/python/worker.py]\n");
  const Finished without = RunToExit({"--check-config", bare});
  REQUIRE(without.status.code == 0);
  const auto ours = SettingsOf(with.out);
  const auto defaults = SettingsOf(without.out);
  std::istringstream text(ReadFile(sample));
  int checked = 0, marked = 0;
  for (std::string line; std::getline(text, line);) {
    if (line.empty() || line[0] == '#' || line[0] == ' ' || line[0] == '-') continue;
    const std::string key = line.substr(0, line.find(':'));
    if (key == "command") continue;  // required: no default to differ from
    INFO("key: ", key, " line: ", line);
    REQUIRE(ours.count(key) == 1);
    REQUIRE(defaults.count(key) == 1);
    const bool differs = ours.at(key) != defaults.at(key);
    CHECK(differs == Has(line, "NOT DEFAULT"));
    ++checked;
    marked += differs;
  }
  CHECK(checked > 25);  // every key is there
  CHECK(marked == 5);   // number, bind, ack_mode, signal_timeout, command_name
}

// --check-config runs the command lookup the master runs at startup, one line per refusal.
TEST_CASE("config file: --check-config checks that the worker command can run") {
  TempDir cfg;
  const std::string file = cfg.File("app.yaml");
  auto check = [&](const std::string& command, std::vector<std::string> env = {}) {
    Write(file, "command: [" + command + ", --flag]\nnumber: 2\n");
    return RunToExit({"--check-config", file}, 10s, std::move(env));
  };
  auto refused = [&](const Finished& f, const std::string& line) {
    INFO(f.err);
    CHECK(f.status == core::ExitStatus{false, 1});
    CHECK(f.err == "einhorn-cpp: " + file + ": command: " + line + "\n");
    CHECK(Has(f.out, "number: 2\n"));  // the settings are shown all the same
  };
  // Found in PATH, as execvp would find it.
  const Finished sh = check("sh", {"PATH=/usr/bin:/bin"});
  CHECK(sh.status == core::ExitStatus{false, 0});
  CHECK(Has(sh.out, "# command: /usr/bin/sh\n"));
  refused(check("no-such-worker-x", {"PATH=" + cfg.path() + ":/nonexistent"}),
          "could not find no-such-worker-x in PATH (" + cfg.path() + ":/nonexistent)");
  // A relative path, from the current directory (the master's, at start).
  char cwd[4096];
  REQUIRE(getcwd(cwd, sizeof cwd) != nullptr);
  refused(check("bin/no-such-work"), "bin/no-such-work: No such file or directory (relative to " +
                                         std::string(cwd) + ", the current directory)");
  // A directory, a file without the execute bit, a dangling symlink, a missing absolute path.
  REQUIRE(mkdir(cfg.File("dir").c_str(), 0755) == 0);
  refused(check(cfg.File("dir")), cfg.File("dir") + ": is a directory, not a program");
  WriteFile(cfg.File("plain.sh"), "#!/bin/sh\n", 0644);
  refused(check(cfg.File("plain.sh")), cfg.File("plain.sh") + ": not executable (mode 0644)");
  REQUIRE(symlink(cfg.File("releases/41/bin/work").c_str(), cfg.File("current").c_str()) == 0);
  refused(check(cfg.File("current")), cfg.File("current") + ": a symbolic link to " +
                                          cfg.File("releases/41/bin/work") +
                                          ", which does not exist");
  refused(check("/nonexistent/worker"), "/nonexistent/worker: No such file or directory");
  // Executable again: exit 0.
  REQUIRE(chmod(cfg.File("plain.sh").c_str(), 0755) == 0);
  CHECK(check(cfg.File("plain.sh")).status == core::ExitStatus{false, 0});
}

TEST_CASE("config file: reload applies live changes from the file") {
  TempDir cfg;
  REQUIRE(mkdir(cfg.File("a").c_str(), 0755) == 0);
  REQUIRE(mkdir(cfg.File("b").c_str(), 0755) == 0);
  const std::string file = cfg.File("app.yaml");
  Write(file, WorkerCommand(cfg, "a") + "number: 2\nack_mode: 0.1\n");
  MasterRun m({"--config", file}, {});
  REQUIRE(PollUntil([&] { return PoolSettled(m, 2, 1); }, 20s));
  const std::set<pid_t> before = Pids(m);

  Write(file, WorkerCommand(cfg, "b") + "number: 3\nack_mode: 0.1\nlog_level: debug\n");
  AskReload(m);
  REQUIRE(PollUntil([&] { return Status(m) && Status(m)->reloads == 1; }, 20s));
  REQUIRE(PollUntil([&] { return PoolSettled(m, 3, 1); }, 20s));
  CHECK_FALSE(Status(m)->last_reload_error.has_value());
  CHECK(Status(m)->verbosity == 0);
  CHECK(m.WaitForLog("number: 2 -> 3"));
  const std::set<pid_t> after = Pids(m);
  for (pid_t pid : before) CHECK(after.contains(pid));  // a reload touches no worker
  for (pid_t pid : after) {
    // The worker the resize added runs the new command; the old ones were left alone.
    CHECK(Has(CmdlineOf(pid), cfg.File(before.contains(pid) ? "a" : "b")));
  }
  // The next generation runs the new command everywhere.
  const UpgradeRun up = RunUpgrade(m);
  CHECK(up.ended);
  CHECK_FALSE(up.error);
  REQUIRE(PollUntil([&] { return PoolSettled(m, 3, 2); }, 30s));
  for (pid_t pid : Pids(m)) CHECK(Has(CmdlineOf(pid), cfg.File("b")));
}

TEST_CASE(
    "config file: reload refuses a broken file or a restart-only change, and changes nothing") {
  TempDir cfg;
  REQUIRE(mkdir(cfg.File("a").c_str(), 0755) == 0);
  const std::string file = cfg.File("app.yaml");
  const std::string good = WorkerCommand(cfg, "a") + "number: 2\nack_mode: 0.1\n";
  Write(file, good);
  MasterRun m({"--config", file}, {});
  REQUIRE(PollUntil([&] { return PoolSettled(m, 2, 1); }, 20s));
  const std::set<pid_t> before = Pids(m);

  Write(file, good + "bind: 127.0.0.1:0\n");
  AskReload(m);
  REQUIRE(PollUntil([&] { return Status(m) && Status(m)->last_reload_error.has_value(); }, 20s));
  std::string error = *Status(m)->last_reload_error;
  INFO(error);
  CHECK(Has(error, "only a restart of the master can change: bind ([] -> [127.0.0.1:0])"));
  CHECK(Status(m)->reloads == 0);

  Write(file, good + "number: [\n");
  AskReload(m);
  REQUIRE(PollUntil(
      [&] {
        const auto st = Status(m);
        return st && st->last_reload_error && Has(*st->last_reload_error, "not valid YAML");
      },
      20s));
  error = *Status(m)->last_reload_error;
  INFO(error);
  CHECK(Has(error, file + ":"));
  CHECK(Status(m)->reloads == 0);
  CHECK(Status(m)->target == 2);
  CHECK(Pids(m) == before);

  Write(file, good);
  AskReload(m);
  REQUIRE(PollUntil([&] { return Status(m) && Status(m)->reloads == 1; }, 20s));
  CHECK_FALSE(Status(m)->last_reload_error.has_value());
  CHECK(Pids(m) == before);
}

}  // namespace
}  // namespace einhorn::test
