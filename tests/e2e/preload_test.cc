// --preload with real processes: einhorn-cpp and tests/support/test_zygote (ZYGOTE-PROTOCOL v1,
// with fault modes). Workers forked by the zygote must be the master's own children with an
// exec'd worker's environment; zygote faults, upgrades, reloads and forged replies.
#include <doctest/doctest.h>
#include <dirent.h>
#include <signal.h>
#include <unistd.h>

#include <fstream>
#include <sstream>
#include <set>

#include "control_client.h"
#include "harness.h"
#include "pool_query.h"

namespace einhorn::test {
namespace {

// What the zygotes wrote about themselves: pid -> REPORT_DIR/zygote-<pid>.
std::map<pid_t, std::string> Zygotes(const MasterRun& m) {
  std::map<pid_t, std::string> out;
  DIR* d = opendir(m.reports_dir().c_str());
  if (d == nullptr) return out;
  while (dirent* e = readdir(d)) {
    const std::string name = e->d_name;
    if (name.rfind("zygote-", 0) == 0 && name.find(".tmp") == std::string::npos) {
      out[static_cast<pid_t>(std::stol(name.substr(7)))] =
          ReadFile(m.reports_dir() + "/" + name);
    }
  }
  closedir(d);
  return out;
}

// The zygotes that are alive.
std::set<pid_t> LiveZygotes(const MasterRun& m) {
  std::set<pid_t> out;
  for (const auto& [pid, text] : Zygotes(m)) {
    if (ProcessAlive(pid) && IsChild(m.pid(), pid)) out.insert(pid);
  }
  return out;
}

// n workers have reported (the zygote, also a child, writes no .env report).
bool WaitWorkers(const MasterRun& m, size_t n) {
  return PollUntil([&] { return m.LiveWorkers().size() == n; }, 10s);
}

// The `victim` worker is gone and n workers have reported, the replacement among them.
bool Replaced(const MasterRun& m, pid_t victim, size_t n) {
  return PollUntil(
      [&] {
        const auto now = m.LiveWorkers();
        return now.size() == n && now.count(victim) == 0;
      },
      10s);
}

void WriteText(const std::string& path, const std::string& text) {
  std::ofstream(path) << text;
}

// A master with --preload and the test zygote; its mode and "code version" in files the test
// changes between generations.
struct Preload {
  explicit Preload(std::vector<std::string> flags, const std::string& mode = "ok",
                   std::vector<std::string> env = {})
      : mode_file(dir.File("mode")), version_file(dir.File("version")) {
    WriteText(mode_file, mode);
    WriteText(version_file, "v1");
    env.push_back("TEST_ZYGOTE_MODE_FILE=" + mode_file);
    env.push_back("TEST_ZYGOTE_VERSION_FILE=" + version_file);
    flags.insert(flags.begin(), "--zygote");
    m.emplace(flags, std::vector<std::string>{TEST_ZYGOTE_BIN, "{reports}"}, env);
  }
  TempDir dir;
  std::string mode_file;
  std::string version_file;
  std::optional<MasterRun> m;
};

std::string ParentOf(pid_t pid) {
  const std::string stat = ReadFile("/proc/" + std::to_string(pid) + "/stat");
  const size_t close = stat.rfind(')');
  if (close == std::string::npos) return "";
  std::istringstream rest(stat.substr(close + 1));
  std::string state, ppid;
  rest >> state >> ppid;
  return ppid;
}

TEST_CASE("preload: workers forked by the zygote are the master's children with an exec'd worker's environment") {
  Preload p({"-n", "3", "-m", "0.1", "-b", "127.0.0.1:0"});
  MasterRun& m = *p.m;
  REQUIRE(WaitWorkers(m, 3));
  REQUIRE(m.WaitForLog("is ready after"));
  const auto zygotes = LiveZygotes(m);
  REQUIRE(zygotes.size() == 1);
  const pid_t zygote = *zygotes.begin();
  std::set<std::string> indexes;
  for (const auto& [pid, r] : m.LiveWorkers()) {
    CHECK(ParentOf(pid) == std::to_string(m.pid()));  // the master's child, by /proc
    CHECK(r.at("EINHORN_MASTER_PID") == std::to_string(m.pid()));
    CHECK(r.at("EINHORN_FD_COUNT") == "1");
    CHECK(r.at("EINHORN_FD_0") == "3");
    CHECK(r.at("LISTEN_FDS") == "1");
    CHECK(r.at("LISTEN_PID") == std::to_string(pid));
    CHECK(r.at("EINHORN_SOCK_PATH") == m.dir().File("einhorn.sock"));
    CHECK(r.count("EINHORN_ZYGOTE_FD") == 0);
    CHECK(r.at("pgid") == std::to_string(pid));
    CHECK(r.at("sigblk") == "0000000000000000");
    CHECK(r.at("sigign") == "0000000000000000");
    CHECK(r.at("version") == "v1");
    indexes.insert(r.at("EINHORN_CHILD_INDEX"));
  }
  CHECK(indexes == std::set<std::string>{"0", "1", "2"});
  // The zygote: no EINHORN_CHILD_INDEX, its socket after the listeners.
  CHECK(Zygotes(m).at(zygote).find("child_index=unset") != std::string::npos);
  const std::string environ = ReadFile("/proc/" + std::to_string(zygote) + "/environ");
  CHECK(environ.find(std::string("EINHORN_ZYGOTE_FD=4") + '\0') != std::string::npos);
  const auto st = Status(m);
  REQUIRE(st.has_value());
  CHECK(st->workers.size() == 3);
  REQUIRE(st->zygotes.size() == 1);
  CHECK(st->zygotes[0].pid == zygote);
  CHECK(st->zygotes[0].generation == 1);
  CHECK(st->zygotes[0].state == "ready");
  CHECK(st->zygotes[0].spawns == 3);
  const Finished json = RunProgram({EINHORNCTL_BIN, "-d", Sock(m), "status", "--json"});
  INFO(json.out);
  CHECK(json.out.find("\"zygotes\"") != std::string::npos);
  CHECK(json.out.find("\"state\": \"ready\"") != std::string::npos);
  const Finished table = RunProgram({EINHORNCTL_BIN, "-d", Sock(m), "status"});
  CHECK(table.out.find("zygote " + std::to_string(zygote) + ": generation 1, ready, 3 workers forked") !=
        std::string::npos);
}

TEST_CASE("preload: a worker's exit is seen with its status and it is respawned through the zygote") {
  Preload p({"-n", "2", "-m", "0.1"});
  MasterRun& m = *p.m;
  REQUIRE(WaitWorkers(m, 2));
  const auto before = m.LiveWorkers();
  const pid_t victim = before.begin()->first;
  REQUIRE(kill(victim, SIGTERM) == 0);
  CHECK(m.WaitForLog("worker " + std::to_string(victim) + " (index"));
  CHECK(m.WaitForLog("exited with signal 15"));
  REQUIRE(Replaced(m, victim, 2));
  for (const auto& [pid, r] : m.LiveWorkers()) CHECK(ParentOf(pid) == std::to_string(m.pid()));
  CHECK(Zygotes(m).size() == 1);  // the same zygote forked the replacement
}

TEST_CASE("preload: a zygote that dies leaves its workers running and is respawned") {
  Preload p({"-n", "2", "-m", "0.1", "-s", "0.2"});
  MasterRun& m = *p.m;
  REQUIRE(WaitWorkers(m, 2));
  const auto workers = m.LiveWorkers();
  const auto zygotes = LiveZygotes(m);
  REQUIRE(zygotes.size() == 1);
  const pid_t old_zygote = *zygotes.begin();
  REQUIRE(kill(old_zygote, SIGKILL) == 0);
  CHECK(m.WaitForLog("died: exited with signal 9; its workers keep running; a new zygote starts in"));
  REQUIRE(PollUntil(
      [&] {
        const auto now = LiveZygotes(m);
        return now.size() == 1 && now.count(old_zygote) == 0;
      },
      10s));
  for (const auto& [pid, r] : workers) CHECK(ProcessAlive(pid));
  // The new zygote forks the next worker.
  REQUIRE(PollUntil([&] { return m.LogHas("is ready after") && Status(m).has_value(); }, 10s));
  const pid_t victim = workers.begin()->first;
  REQUIRE(kill(victim, SIGKILL) == 0);
  REQUIRE(Replaced(m, victim, 2));
}

TEST_CASE("preload: an upgrade loads the new code in a new zygote, and the old zygote goes once drained") {
  Preload p({"-n", "2", "-m", "0.1"});
  MasterRun& m = *p.m;
  REQUIRE(WaitWorkers(m, 2));
  const pid_t old_zygote = *LiveZygotes(m).begin();
  WriteText(p.version_file, "v2");
  const UpgradeRun up = RunUpgrade(m);
  REQUIRE(up.ended);
  CHECK_FALSE(up.error);
  CHECK(up.last == "Upgrade done");
  bool loading_said = false;
  for (const std::string& msg : up.messages) {
    loading_said = loading_said || msg.find("Loading the new code in zygote") != std::string::npos;
  }
  CHECK(loading_said);
  REQUIRE(PollUntil(
      [&] {
        const auto live = m.LiveWorkers();
        if (live.size() != 2) return false;
        for (const auto& [pid, r] : live) {
          if (r.at("version") != "v2") return false;
        }
        return true;
      },
      20s));
  CHECK(PollUntil([&] { return !ProcessAlive(old_zygote); }, 20s));
  CHECK(m.WaitForLog("after it was closed"));
  CHECK(LiveZygotes(m).size() == 1);
}

TEST_CASE("preload: a new zygote that fails to load rolls the upgrade back") {
  Preload p({"-n", "2", "-m", "0.1"}, "ok", {"EINHORN_CPP_TEST_ZYGOTE_LOAD_MS=1500"});
  MasterRun& m = *p.m;
  REQUIRE(WaitWorkers(m, 2));
  const auto workers = m.LiveWorkers();
  const pid_t old_zygote = *LiveZygotes(m).begin();
  for (const std::string mode : {"fail_load", "exit_load", "never_ready"}) {
    INFO(mode);
    WriteText(p.mode_file, mode);
    const UpgradeRun up = RunUpgrade(m);
    REQUIRE(up.ended);
    CHECK(up.error);
    CHECK(up.last.find("failed to load") != std::string::npos);
    CHECK(up.last.find("Rolled back") != std::string::npos);
    if (std::string(mode) == "fail_load") {
      CHECK(up.last.find("simulated load failure") != std::string::npos);
    }
    if (std::string(mode) == "never_ready") {
      CHECK(up.last.find("not ready within the load timeout") != std::string::npos);
    }
    for (const auto& [pid, r] : workers) CHECK(ProcessAlive(pid));
    CHECK(ProcessAlive(old_zygote));
  }
  const auto st = Status(m);
  REQUIRE(st.has_value());
  CHECK(st->generation == 1);
  REQUIRE(st->last_upgrade.has_value());
  CHECK_FALSE(st->last_upgrade->ok);
  // Fixed: the next upgrade works.
  WriteText(p.mode_file, "ok");
  const UpgradeRun good = RunUpgrade(m);
  CHECK(good.last == "Upgrade done");
}

TEST_CASE("preload: forged or broken replies are refused and the zygote is replaced") {
  struct Case {
    const char* mode;
    const char* line;
    int workers;
  };
  const Case cases[] = {
      {"forge:one", "replied with pid 1, which cannot be a new worker", 1},
      {"forge:master", "which cannot be a new worker", 1},
      {"forge:worker", "which is already a worker", 2},
      {"forge:grandchild", "which is not a child of the master", 1},
      {"garbage", "protocol error: not a JSON object", 1},
      {"oversized", "protocol error: a message of", 1},
      {"no_reply", "no reply to spawn request 1 within", 1},
      {"unsolicited", "protocol error: a message nobody asked for", 1},
  };
  for (const Case& c : cases) {
    INFO(c.mode);
    Preload p({"-n", std::to_string(c.workers), "-m", "0.1", "-s", "0.2"}, c.mode,
              {"EINHORN_CPP_TEST_ZYGOTE_REPLY_MS=500"});
    MasterRun& m = *p.m;
    CHECK(m.WaitForLog(c.line));
    CHECK(m.WaitForLog("; killing it"));
    // Replaced after the backoff.
    CHECK(PollUntil([&] { return Zygotes(m).size() >= 2; }, 10s));
    const auto st = Status(m);
    REQUIRE(st.has_value());
    for (const auto& w : st->workers) {
      CHECK(w.pid != 1);
      CHECK(w.pid != m.pid());
      CHECK(ParentOf(w.pid) == std::to_string(m.pid()));
    }
    CHECK(ProcessAlive(m.pid()));
  }
}

TEST_CASE("preload: a reload carries the zygote and its workers") {
  Preload p({"-n", "2", "-m", "0.1"});
  MasterRun& m = *p.m;
  REQUIRE(WaitWorkers(m, 2));
  const auto workers = m.LiveWorkers();
  const pid_t zygote = *LiveZygotes(m).begin();
  {
    ControlClient c(Sock(m));
    REQUIRE(c.connected());
    const auto r = c.Ask("{\"id\": 7, \"command\": \"reload\"}\n");
    REQUIRE(r.has_value());
    CHECK(r->message == "Reloading, as commanded");
  }
  REQUIRE(PollUntil([&] { const auto st = Status(m); return st && st->reloads == 1; }, 20s));
  CHECK(m.WaitForLog("1 zygotes kept"));
  for (const auto& [pid, r] : workers) CHECK(ProcessAlive(pid));
  CHECK(ProcessAlive(zygote));
  // The carried zygote still forks: a killed worker is replaced through it.
  const pid_t victim = workers.begin()->first;
  REQUIRE(kill(victim, SIGKILL) == 0);
  REQUIRE(Replaced(m, victim, 2));
  CHECK(Zygotes(m).size() == 1);
  CHECK(ProcessAlive(zygote));
  // And an upgrade after the reload closes it once its workers are gone.
  const UpgradeRun up = RunUpgrade(m);
  CHECK(up.last == "Upgrade done");
  CHECK(PollUntil([&] { return !ProcessAlive(zygote); }, 20s));
}

// Field 19 of /proc/PID/stat: the niceness.
std::string NiceOf(pid_t pid) {
  const std::string stat = ReadFile("/proc/" + std::to_string(pid) + "/stat");
  const size_t close = stat.rfind(')');
  if (close == std::string::npos) return "";
  std::istringstream rest(stat.substr(close + 1));
  std::string field;
  for (int i = 3; i <= 19 && rest >> field; ++i) {
  }
  return field;
}

TEST_CASE("preload: the zygote runs at the workers' --nice niceness, and its workers inherit it") {
  Preload p({"-n", "2", "-m", "0.1", "--nice", "0:7"});
  MasterRun& m = *p.m;
  REQUIRE(WaitWorkers(m, 2));
  const auto zygotes = LiveZygotes(m);
  REQUIRE(zygotes.size() == 1);
  CHECK(NiceOf(*zygotes.begin()) == "7");
  for (const auto& [pid, r] : m.LiveWorkers()) CHECK(NiceOf(pid) == "7");
  CHECK(NiceOf(m.pid()) == "0");
}

TEST_CASE("preload: the zygotes go when the master stops") {
  Preload p({"-n", "2", "-m", "0.1"});
  MasterRun& m = *p.m;
  REQUIRE(WaitWorkers(m, 2));
  const pid_t zygote = *LiveZygotes(m).begin();
  REQUIRE(kill(m.pid(), SIGTERM) == 0);
  const auto status = m.process().WaitExit(10s);
  REQUIRE(status.has_value());
  CHECK(PollUntil([&] { return !ProcessAlive(zygote); }, 10s));
}

}  // namespace
}  // namespace einhorn::test
