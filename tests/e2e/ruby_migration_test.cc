// Live migration from a running Ruby Einhorn 1.1.1 (the reference source, run with the system
// ruby) to einhorn-cpp: Ruby is started with --reexec-as=einhorn-cpp, and its next upgrade or
// reload execs us with its Ruby YAML state. Skipped where ruby or the reference is absent.
#include <dirent.h>
#include <doctest/doctest.h>
#include <signal.h>
#include <unistd.h>

#include <cstdlib>
#include <map>
#include <set>

#include "control_client.h"
#include "core/pool_status.h"
#include "harness.h"

namespace einhorn::test {
namespace {

using Report = std::map<std::string, std::string>;

std::string ReferenceDir() {
  const char* dir = std::getenv("EINHORN_REFERENCE");
  return dir && *dir ? dir : EINHORN_REFERENCE_DIR;
}

// Why the test cannot run here, or "".
std::string SkipReason() {
  if (!FileExists(ReferenceDir() + "/bin/einhorn")) {
    return "Ruby Einhorn's source is not at " + ReferenceDir() + " (EINHORN_REFERENCE)";
  }
  if (RunProgram({"/bin/sh", "-c", "command -v ruby"}, 10s).status.code != 0) {
    return "ruby is not installed";
  }
  return "";
}

std::map<pid_t, Report> Reports(const std::string& dir) {
  std::map<pid_t, Report> out;
  DIR* d = opendir(dir.c_str());
  if (d == nullptr) return out;
  while (dirent* e = readdir(d)) {
    const std::string name = e->d_name;
    if (name.size() <= 4 || name.substr(name.size() - 4) != ".env") continue;
    Report r;
    const std::string text = ReadFile(dir + "/" + name);
    size_t at = 0;
    while (at < text.size()) {
      size_t nl = text.find('\n', at);
      if (nl == std::string::npos) nl = text.size();
      const std::string line = text.substr(at, nl - at);
      const size_t eq = line.find('=');
      if (eq != std::string::npos) r[line.substr(0, eq)] = line.substr(eq + 1);
      at = nl + 1;
    }
    out[static_cast<pid_t>(std::stol(name.substr(0, name.size() - 4)))] = r;
  }
  closedir(d);
  return out;
}

std::vector<std::string> SignalsOf(const std::string& dir, pid_t pid) {
  std::vector<std::string> out;
  const std::string text = ReadFile(dir + "/" + std::to_string(pid) + ".signals");
  size_t at = 0;
  while (at < text.size()) {
    size_t nl = text.find('\n', at);
    if (nl == std::string::npos) nl = text.size();
    if (nl > at) out.push_back(text.substr(at, nl - at));
    at = nl + 1;
  }
  return out;
}

std::optional<core::PoolStatus> CppStatus(const std::string& sock) {
  ControlClient c(sock);
  if (!c.connected()) return std::nullopt;
  auto reply = c.Ask("{\"id\": 1, \"command\": \"status\"}\n");
  if (!reply) return std::nullopt;
  auto status = core::PoolStatusFromYaml(reply->message);
  if (!status.ok()) return std::nullopt;
  return status.value();
}

// /proc/PID/exe's target.
std::string Exe(pid_t pid) {
  char buf[4096];
  const ssize_t n = readlink(("/proc/" + std::to_string(pid) + "/exe").c_str(), buf, sizeof buf);
  return n > 0 ? std::string(buf, static_cast<size_t>(n)) : "";
}

struct RubyMaster {
  TempDir dir;
  std::string sock = dir.File("einhorn.sock");
  std::string reports = dir.File("reports");
  std::string log = dir.File("ruby.log");
  std::optional<Process> proc;

  // Ruby Einhorn with -d, -e in the test directory and --reexec-as `reexec`.
  void Start(const std::string& reexec, std::vector<std::string> flags,
             std::vector<std::string> worker) {
    REQUIRE(RunProgram({"/bin/mkdir", "-p", reports}, 10s).status.code == 0);
    Process::Options o;
    o.argv = {"ruby", "-I" + ReferenceDir() + "/lib", ReferenceDir() + "/bin/einhorn", "-d", sock,
              "-e",   dir.File("einhorn.pid"),        "--reexec-as=" + reexec};
    o.argv.insert(o.argv.end(), flags.begin(), flags.end());
    o.argv.push_back("--");
    o.argv.insert(o.argv.end(), worker.begin(), worker.end());
    o.extra_env = {"TMPDIR=" + dir.path()};
    o.stderr_path = log;
    o.stdout_path = log;
    proc.emplace(Process::Start(o));
  }
  // Whatever fails, no worker outlives the test: a master that exits (the old code could
  // not read the state) leaves its workers to init, out of Process's reach.
  ~RubyMaster() {
    for (const auto& [pid, r] : Reports(reports)) {
      if (ProcessAlive(pid)) kill(pid, SIGKILL);
    }
  }
  // Live workers that wrote their report.
  std::map<pid_t, Report> Live() const {
    std::map<pid_t, Report> out;
    for (auto& [pid, r] : Reports(reports)) {
      if (ProcessAlive(pid) && IsChild(proc->pid(), pid)) out[pid] = r;
    }
    return out;
  }
};

TEST_CASE("a live Ruby Einhorn upgraded into einhorn-cpp: same pid, sockets, workers drained") {
  if (const std::string why = SkipReason(); !why.empty()) {
    MESSAGE("skipped: " << why);
    return;
  }
  RubyMaster m;
  m.Start(EINHORN_BIN, {"-b", "127.0.0.1:0", "-n", "2", "-m", "manual"},
          {TEST_WORKER_BIN, "--serve", "--ack", "ruby", "--report", m.reports});
  REQUIRE(PollUntil(
      [&] { return ReadFile(m.log).find("Up to 2 / 2 manual ACKs") != std::string::npos; }, 30s));
  const std::map<pid_t, Report> ruby_workers = m.Live();
  REQUIRE(ruby_workers.size() == 2);
  const Report& any = ruby_workers.begin()->second;
  const std::string bound = any.at("sockname_" + any.at("EINHORN_FD_0"));
  REQUIRE(bound.rfind("127.0.0.1:", 0) == 0);
  const int port = std::stoi(bound.substr(10));
  CHECK(HttpGet("127.0.0.1", port, 5s).rfind("pid ", 0) == 0);
  const pid_t master = m.proc->pid();

  // The upgrade, as a client subscribed to its progress (einhornsh does the same).
  ControlClient client(m.sock);
  REQUIRE(client.connected());
  REQUIRE(client.Send("{\"id\": \"mig\", \"command\": \"upgrade\"}\n"));
  std::vector<std::string> messages;
  std::optional<core::wire::Reply> last;
  while (auto r = client.ReadReply(60s)) {
    messages.push_back(r->message);
    if (!r->wait) {
      last = r;
      break;
    }
  }
  INFO(ReadFile(m.log));
  REQUIRE(last.has_value());
  CHECK(last->message == "Upgrade done");
  CHECK_FALSE(last->error);
  REQUIRE(last->request_id.has_value());
  CHECK(last->request_id->text == "mig");
  CHECK(messages.front() == "Upgrading smoothly, as commanded");  // Ruby's first reply

  // The same process, now einhorn-cpp, answering einhorn-cpp's `status`.
  CHECK(m.proc->running());
  CHECK(Exe(master) == EINHORN_BIN);
  std::optional<core::PoolStatus> st;
  REQUIRE(PollUntil(
      [&] {
        st = CppStatus(m.sock);
        return st && st->ready == 2 && st->workers.size() == 2;
      },
      30s));
  CHECK(st->master_pid == master);
  CHECK(st->generation == 2);
  for (const auto& w : st->workers) {
    CHECK_FALSE(ruby_workers.contains(w.pid));
    CHECK(IsChild(master, w.pid));
  }
  // Ruby's workers got the drain signal and are gone; the new ones serve the same port.
  for (const auto& [pid, r] : ruby_workers) {
    CHECK(PollUntil([&] { return !ProcessAlive(pid); }, 10s));
    CHECK(SignalsOf(m.reports, pid) == std::vector<std::string>{"USR2"});
  }
  std::set<pid_t> answered;
  for (int i = 0; i < 20 && answered.size() < 2; ++i) {
    const std::string body = HttpGet("127.0.0.1", port, 5s);
    if (body.rfind("pid ", 0) == 0) answered.insert(std::stoi(body.substr(4)));
  }
  CHECK_FALSE(answered.empty());
  for (pid_t p : answered) CHECK_FALSE(ruby_workers.contains(p));
  for (const auto& [pid, r] : m.Live()) {
    // New workers: einhorn-cpp's fd numbering, the same socket.
    CHECK(r.at("EINHORN_FD_0") == "3");
    CHECK(r.at("sockname_3") == bound);
    CHECK(r.at("EINHORN_MASTER_PID") == std::to_string(master));
  }

  // Its next reload is an einhorn-cpp one (through Ruby's --reexec-as, kept), workers kept.
  std::set<pid_t> before;
  for (const auto& w : st->workers) before.insert(w.pid);
  {
    ControlClient c(m.sock);
    const auto reply = c.Ask("{\"command\": \"reload\"}\n");
    REQUIRE(reply.has_value());
    CHECK(reply->message == "Reloading, as commanded");
  }
  REQUIRE(PollUntil(
      [&] {
        st = CppStatus(m.sock);
        return st && st->reloads == 2;
      },
      30s));
  std::set<pid_t> after;
  for (const auto& w : st->workers) after.insert(w.pid);
  CHECK(after == before);
  CHECK(st->master_pid == master);

  // einhorn-cpp stops it as its own: the socket file and pidfile go.
  REQUIRE(m.proc->Signal(SIGTERM));
  const auto exit = m.proc->WaitExit(20s);
  REQUIRE(exit.has_value());
  CHECK(exit->code == 0);
  CHECK_FALSE(FileExists(m.sock));
}

TEST_CASE("a Ruby worker that dies during the exec is dropped and respawned, and the rest adopted") {
  if (const std::string why = SkipReason(); !why.empty()) {
    MESSAGE("skipped: " << why);
    return;
  }
  RubyMaster m;
  // Stands in for einhorn-cpp at the exec: kills one worker first and waits until it is a
  // zombie (it died while no image watched), then execs the real binary. In perl: a shell
  // reaps children it did not start as soon as it waits for anything.
  const std::string wrapper = m.dir.File("einhorn-cpp.pl");
  WriteFile(wrapper,
            "#!/usr/bin/perl\n"
            "if ($ARGV[0] eq '--with-state-fd' && open(my $f, '<', '" +
                m.dir.File("victim") +
                "')) {\n"
                "  my $v = <$f>; chomp $v;\n"
                "  kill 'KILL', $v;\n"
                "  while (1) { open(my $s, '<', \"/proc/$v/stat\") or last; my $l = <$s>;\n"
                "    last if $l =~ /\\) Z /; }\n"
                "}\n"
                "exec '" EINHORN_BIN "', @ARGV;\n",
            0755);
  m.Start(wrapper, {"-b", "127.0.0.1:0", "-n", "2", "-m", "0.2"},
          {TEST_WORKER_BIN, "--serve", "--report", m.reports});
  REQUIRE(PollUntil([&] { return m.Live().size() == 2; }, 30s));
  REQUIRE(PollUntil(
      [&] { return ReadFile(m.log).find("Up to 2 / 2 timer ACKs") != std::string::npos; }, 30s));
  const std::map<pid_t, Report> ruby_workers = m.Live();
  const pid_t victim = ruby_workers.begin()->first;
  const pid_t survivor = std::next(ruby_workers.begin())->first;
  WriteFile(m.dir.File("victim"), std::to_string(victim));

  ControlClient client(m.sock);
  REQUIRE(client.connected());
  const auto r = client.Ask("{\"command\": \"reload\"}\n");
  REQUIRE(r.has_value());
  CHECK(r->message == "Reloading, as commanded");

  INFO(ReadFile(m.log));
  std::optional<core::PoolStatus> st;
  REQUIRE(PollUntil(
      [&] {
        st = CppStatus(m.sock);
        return st && st->workers.size() == 2 && st->ready == 2;
      },
      30s));
  std::set<pid_t> pids;
  for (const auto& w : st->workers) pids.insert(w.pid);
  CHECK(pids.contains(survivor));
  CHECK_FALSE(pids.contains(victim));
  CHECK(st->master_pid == m.proc->pid());
  CHECK(st->generation == 1);  // a reload: the survivor is kept, not upgraded
  CHECK(SignalsOf(m.reports, survivor).empty());
  CHECK(ReadFile(m.log).find("exited during the exec") != std::string::npos);
}

TEST_CASE("Ruby state einhorn-cpp cannot use is said loudly, and the workers are left serving") {
  if (const std::string why = SkipReason(); !why.empty()) {
    MESSAGE("skipped: " << why);
    return;
  }
  RubyMaster m;
  // Ruby's state with its :cmd removed on the way: nothing to run new workers with.
  const std::string wrapper = m.dir.File("einhorn-cpp.sh");
  WriteFile(wrapper,
            "#!/bin/bash\n"
            "if [ \"$1\" = --with-state-fd ]; then\n"
            "  fd=$2; shift 2\n"
            "  eval \"cat <&$fd\" | sed '/^  :cmd:/,/^  :script_name:/d' > '" +
                m.dir.File("state") +
                "'\n"
                "  exec 63< '" +
                m.dir.File("state") +
                "'\n"
                "  exec '" EINHORN_BIN
                "' --with-state-fd 63 \"$@\"\n"
                "fi\n"
                "exec '" EINHORN_BIN "' \"$@\"\n",
            0755);
  m.Start(wrapper, {"-b", "127.0.0.1:0", "-n", "1", "-m", "0.2"},
          {TEST_WORKER_BIN, "--serve", "--report", m.reports});
  REQUIRE(PollUntil([&] { return m.Live().size() == 1; }, 30s));
  const pid_t worker = m.Live().begin()->first;
  ControlClient client(m.sock);
  REQUIRE(client.connected());
  REQUIRE(client.Ask("{\"command\": \"reload\"}\n").has_value());
  const auto exit = m.proc->WaitExit(30s);
  REQUIRE(exit.has_value());
  CHECK(exit->code == 1);
  const std::string log = ReadFile(m.log);
  CHECK(log.find("cannot take over from Ruby Einhorn: Ruby Einhorn's state has no :cmd. Its "
                 "workers keep running and serving, unsupervised") != std::string::npos);
  CHECK(ProcessAlive(worker));
}

}  // namespace
}  // namespace einhorn::test
