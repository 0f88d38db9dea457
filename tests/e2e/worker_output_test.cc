// --worker-output and --worker-log-dir with the real binaries: whole lines from many chatty
// workers at once, long lines cut and marked, a fast writer held by its pipe while the master's
// memory stays flat, the last lines of a worker that dies, the pipes across a reload, and the
// per-slot files (USR1 reopen, symlinks, FIFOs, a file that cannot grow).
#include <doctest/doctest.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>
#include <map>
#include <regex>
#include <set>
#include <sstream>

#include "control_client.h"
#include "harness.h"
#include "pool_query.h"

namespace einhorn::test {
namespace {

std::vector<std::string> Lines(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) out.push_back(line);
  return out;
}

size_t Count(const std::string& text, const std::string& needle) {
  size_t n = 0;
  for (size_t at = text.find(needle); at != std::string::npos; at = text.find(needle, at + 1)) ++n;
  return n;
}

// VmRSS of a process in KiB (0 if unknown).
long RssKib(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("VmRSS:", 0) == 0) return std::stol(line.substr(6));
  }
  return 0;
}

// Each worker writes 1500 lines "W<slot> L<i> <payload>", the payload i*37 % 9000 'x's, through
// awk's block buffer (so the writes cut lines anywhere), then "W<slot> done" and sleeps.
const char kChatty[] =
    "awk 'BEGIN{pad=\"x\"; while(length(pad)<9000) pad=pad pad; w=ENVIRON[\"EINHORN_CHILD_INDEX\"];"
    " for(i=0;i<1500;i++){printf \"W%s L%d %s\\n\", w, i, substr(pad,1,(i*37)%9000)}"
    " printf \"W%s done\\n\", w; fflush(); system(\"exec sleep 1000\")}'";

TEST_CASE("worker output: 8 workers at once, every line whole and tagged, none lost") {
  MasterRun m({"-n", "8", "-m", "0", "--worker-output", "prefix"}, {"sh", "-c", kChatty});
  for (int w = 0; w < 8; ++w) {
    REQUIRE_MESSAGE(m.WaitForLog("W" + std::to_string(w) + " done", 30s), "worker " << w);
  }
  const std::regex tagged(
      R"(^\S+ einhorn-cpp\[\d+\] info: worker slot=(\d) pid=(\d+) gen=1 stdout: W(\d) L(\d+) (x*)$)");
  std::map<int, std::set<int>> seen;
  size_t relayed = 0;
  for (const std::string& line : Lines(m.Log())) {
    if (line.find(" info: worker slot=") == std::string::npos) continue;
    if (line.find(" done") != std::string::npos) continue;
    ++relayed;
    std::smatch g;
    REQUIRE_MESSAGE(std::regex_match(line, g, tagged), line.substr(0, 200));
    CHECK(g[1] == g[3]);  // the slot in the tag is the worker's EINHORN_CHILD_INDEX
    const int i = std::stoi(g[4]);
    CHECK(g[5].length() == static_cast<size_t>((i * 37) % 9000));
    seen[std::stoi(g[3])].insert(i);
  }
  CHECK(relayed == 8 * 1500);
  for (int w = 0; w < 8; ++w) CHECK(seen[w].size() == 1500);
}

TEST_CASE("worker output: json lines carry pid, slot, generation and stream") {
  MasterRun m({"-n", "1", "-m", "0", "--log-format", "json"},
              {"sh", "-c", "echo 'to \"out\"'; echo to-err >&2; exec sleep 1000"});
  REQUIRE(m.WaitForLog("to-err"));
  REQUIRE(m.WaitForLog("to \\\"out\\\""));
  const pid_t w = *Pids(m).begin();
  const std::string tail = ", \"source\": \"worker\", \"stream\": \"stderr\", \"slot\": 0, \"pid\": " +
                           std::to_string(w) + ", \"generation\": 1}";
  CHECK(m.LogHas("\"message\": \"to-err\"" + tail));
  CHECK(m.LogHas("\"message\": \"to \\\"out\\\"\", \"source\": \"worker\", \"stream\": \"stdout\""));
  // Every line of the master's stream is one JSON object: no raw worker bytes in it.
  for (const std::string& line : Lines(m.Log())) {
    CHECK_MESSAGE(line.rfind("{\"time\": ", 0) == 0, line);
  }
}

TEST_CASE("worker output: a line over 16 KiB is cut at the limit and marked") {
  MasterRun m({"-n", "1", "-m", "0", "--worker-output", "prefix"},
              {"sh", "-c",
               "head -c 100000 /dev/zero | tr '\\0' y; echo; echo after; exec sleep 1000"});
  REQUIRE(m.WaitForLog("stdout: after"));
  const std::string log = m.Log();
  CHECK(log.find("stdout: " + std::string(16384, 'y') + " [cut at 16384 bytes]\n") !=
        std::string::npos);
  CHECK(log.find(std::string(16385, 'y')) == std::string::npos);
  CHECK(Count(log, "[cut at") == 1);
}

TEST_CASE("worker output: the last lines of a worker that dies, a partial one included") {
  // 300 lines, half a line, then SIGKILL: all of it is relayed, before the exit is logged.
  MasterRun m({"-n", "1", "-m", "0", "--worker-output", "prefix"},
              {"sh", "-c",
               "d={reports}; if [ -e $d/done ]; then exec sleep 1000; fi; touch $d/done; "
               "seq 1 300 | sed 's/^/line /'; printf 'last words'; kill -9 $$"});
  REQUIRE(m.WaitForLog("exited", 10s));
  const std::string log = m.Log();
  const size_t last = log.find("stdout: last words [no newline at exit]");
  const size_t exited = log.find(") exited");
  REQUIRE(last != std::string::npos);
  REQUIRE(exited != std::string::npos);
  CHECK(last < exited);
  CHECK(Count(log, "stdout: line ") == 300);
  CHECK(log.find("stdout: line 300\n") < last);
}

TEST_CASE("worker output: a worker faster than the master waits on its pipe, the master's memory stays flat") {
  // Slot 0 writes 3000-byte lines without end, slot 1 one endless line, as fast as they can.
  MasterRun m({"-n", "2", "-m", "0", "--worker-output", "json"},
              {"sh", "-c",
               "if [ $EINHORN_CHILD_INDEX = 0 ]; then exec base64 -w 3000 /dev/zero; fi; "
               "tr '\\0' z < /dev/zero"});
  REQUIRE(PollUntil([&] { return Pids(m).size() == 2; }, 10s));
  REQUIRE(m.WaitForLog("\"cut\": true", 10s));
  REQUIRE(m.WaitForLog("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\", \"source\": \"worker\"", 10s));
  const long start = RssKib(m.pid());
  std::set<pid_t> writers;
  for (pid_t w : Pids(m)) {
    writers.insert(w);
    for (pid_t d : DescendantsOf(w)) writers.insert(d);
  }
  // The master stopped: the writers fill their pipes and block in write(2), nothing piles up.
  REQUIRE(m.process().Signal(SIGSTOP));
  const bool blocked = PollUntil(
      [&] {
        size_t n = 0;
        for (pid_t d : writers) {
          // "pipe_write", "anon_pipe_write" (6.x): blocked writing to a full pipe.
          const std::string wchan = ReadFile("/proc/" + std::to_string(d) + "/wchan");
          if (wchan.find("pipe_write") != std::string::npos) ++n;
        }
        return n == 2;
      },
      10s);
  m.process().Signal(SIGCONT);
  CHECK_MESSAGE(blocked, "the writers did not both block in pipe_write while the master was stopped");
  // Relaying again, flat out, for a while: the RSS is sampled all along.
  const off_t log_at_start = static_cast<off_t>(m.Log().size());
  long peak = start;
  const auto until = std::chrono::steady_clock::now() + 3s;
  while (std::chrono::steady_clock::now() < until) {
    peak = std::max(peak, RssKib(m.pid()));
    usleep(20'000);
  }
  struct stat st {};
  REQUIRE(stat(m.dir().File("master.log").c_str(), &st) == 0);
  MESSAGE("master RSS: " << start << " KiB at the start of the flood, peak " << peak
                         << " KiB; relayed " << (st.st_size - log_at_start) / 1024 << " KiB");
  CHECK(st.st_size - log_at_start > 1024 * 1024);  // it did relay
  // The master's own buffers are a few hundred KiB; the bound leaves room for the sanitizers'
  // allocator.
  CHECK(peak - start < 32 * 1024);
  CHECK(ProcessAlive(m.pid()));
}

TEST_CASE("worker output: the pipes and a half-written line survive a reload") {
  MasterRun m({"-n", "1", "-m", "0", "--worker-output", "prefix"},
              {"sh", "-c",
               "echo before; printf 'half '; while [ ! -e {reports}/go ]; do sleep 0.05; done; "
               "echo rest; echo after; exec sleep 1000"});
  REQUIRE(m.WaitForLog("stdout: before"));
  const pid_t w = *Pids(m).begin();
  {
    ControlClient c(Sock(m));
    REQUIRE(c.connected());
    REQUIRE(c.Ask("{\"command\": \"reload\"}\n").has_value());
  }
  REQUIRE(m.WaitForLog("reloaded: einhorn-cpp", 20s));
  WriteFile(m.reports_dir() + "/go", "");
  REQUIRE(m.WaitForLog("stdout: after"));
  CHECK(m.LogHas("pid=" + std::to_string(w) + " gen=1 stdout: half rest\n"));
  CHECK(Pids(m) == std::set<pid_t>{w});
}

TEST_CASE("worker output: --worker-log-dir writes a file per slot, reopened on USR1") {
  TempDir logs;
  MasterRun m({"-n", "2", "-m", "0", "--worker-log-dir", logs.path()},
              {"sh", "-c",
               "echo hello $EINHORN_CHILD_INDEX; while [ ! -e {reports}/again ]; do sleep 0.05; "
               "done; echo again $EINHORN_CHILD_INDEX; exec sleep 1000"});
  const std::string f0 = logs.File("slot-0.log");
  const std::string f1 = logs.File("slot-1.log");
  REQUIRE(PollUntil([&] { return ReadFile(f1).find("stdout: hello 1\n") != std::string::npos; },
                    10s));
  REQUIRE(PollUntil([&] { return ReadFile(f0).find("stdout: hello 0\n") != std::string::npos; },
                    10s));
  CHECK(ReadFile(f0).find("hello 1") == std::string::npos);
  // inherit (the default) still gives the master's stderr the lines as the worker wrote them.
  CHECK(ReadFile(m.dir().File("master.out")).find("hello 0\n") != std::string::npos);
  // logrotate: move the file away, USR1, and the next lines go to a new file.
  REQUIRE(rename(f0.c_str(), (f0 + ".1").c_str()) == 0);
  REQUIRE(m.process().Signal(SIGUSR1));
  REQUIRE(m.WaitForLog("got SIGUSR1: reopening the worker logs"));
  WriteFile(m.reports_dir() + "/again", "");
  REQUIRE(PollUntil([&] { return ReadFile(f0).find("stdout: again 0\n") != std::string::npos; },
                    10s));
  CHECK(ReadFile(f0).find("hello 0") == std::string::npos);
  CHECK(ReadFile(f0 + ".1").find("again 0") == std::string::npos);
  CHECK(ProcessAlive(m.pid()));
}

TEST_CASE("worker output: a symlink, a FIFO or a file that cannot grow loses lines, not the master") {
  TempDir logs;
  const std::string target = logs.File("victim");
  WriteFile(target, "precious\n");
  REQUIRE(symlink(target.c_str(), logs.File("slot-0.log").c_str()) == 0);
  REQUIRE(mkfifo(logs.File("slot-1.log").c_str(), 0600) == 0);
  // slot 2's file is already at the file size limit (RLIMIT_FSIZE, 64 KiB, which the master's
  // own log stays under): each write fails with EFBIG, which must not be a fatal SIGXFSZ.
  WriteFile(logs.File("slot-2.log"), std::string(65536, '.'));
  MasterRun m({"-n", "3", "-m", "0", "--worker-log-dir", logs.path()},
              {"sh", "-c",
               "for i in 1 2 3 4 5; do echo \"slot $EINHORN_CHILD_INDEX line $i\" >&2; sleep 0.01; "
               "done; echo finished >&2; exec sleep 1000"},
              {}, {"prlimit", "--fsize=65536", "--"});
  REQUIRE(PollUntil([&] { return Count(m.Log(), "\nfinished\n") == 3; }, 30s));
  REQUIRE(m.WaitForLog("worker log " + logs.File("slot-2.log"), 10s));
  CHECK(m.LogHas("File too large"));
  CHECK(m.LogHas("worker log " + logs.File("slot-0.log")));
  CHECK(m.LogHas("worker log " + logs.File("slot-1.log")));
  CHECK(ProcessAlive(m.pid()));
  CHECK(ReadFile(target) == "precious\n");
  struct stat st {};
  REQUIRE(lstat(logs.File("slot-1.log").c_str(), &st) == 0);
  CHECK(S_ISFIFO(st.st_mode));
  REQUIRE(lstat(logs.File("slot-0.log").c_str(), &st) == 0);
  CHECK(S_ISLNK(st.st_mode));
  // 15 lines, each lost: one error per file (retried after 10 s), not one per line.
  CHECK(Count(m.Log(), "worker log ") <= 4);
  // The master still answers.
  CHECK(Status(m).has_value());
}

}  // namespace
}  // namespace einhorn::test
