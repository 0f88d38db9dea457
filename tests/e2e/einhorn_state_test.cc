// `state` as Ruby Einhorn answers it (core/einhorn_state.h), checked against Ruby Einhorn 1.1.1
// itself: both supervisors run the same workers (tests/e2e/ruby/einhorn_worker.rb, which acks
// and pings with Einhorn's own Ruby worker library), the same commands, and their `state`
// replies are loaded by Ruby the two ways Einhorn's users do (YAML.unsafe_load, and Psych's
// safe_load permitting Set, Symbol and Time with aliases, as Einhorn 1.1.1) and compared
// (tests/e2e/ruby/state_shape.rb). Skipped with the reason where ruby or Einhorn's source is
// missing (EINHORN_REFERENCE names the source; CMake's EINHORN_REFERENCE is the default).
#include <doctest/doctest.h>

#include <chrono>
#include <cstdlib>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "control_client.h"
#include "harness.h"
#include "pool_query.h"

namespace einhorn::test {
namespace {

using namespace std::chrono_literals;

const std::string kRubyDir = E2E_RUBY_DIR;

struct Reference {
  std::string ruby;
  std::string dir;  // Einhorn 1.1.1's source: lib/ and bin/
};

std::optional<Reference> FindReference() {
  const auto ruby = LookUpInPath("ruby");
  if (!ruby) {
    MESSAGE("skipped: ruby is not installed");
    return std::nullopt;
  }
  const char* env = std::getenv("EINHORN_REFERENCE");
  const std::string dir = env && *env ? env : EINHORN_REFERENCE_DIR;
  if (dir.empty() || !FileExists(dir + "/lib/einhorn/worker.rb") ||
      !FileExists(dir + "/bin/einhornsh")) {
    const std::string why =
        "skipped: Ruby Einhorn 1.1.1's source is not at '" + dir + "' (set EINHORN_REFERENCE to it)";
    MESSAGE(why);
    return std::nullopt;
  }
  return Reference{*ruby, dir};
}

std::vector<std::string> Worker(const Reference& ref, const std::string& mode) {
  return {ref.ruby, "-I" + ref.dir + "/lib", kRubyDir + "/einhorn_worker.rb", mode};
}

// `state`'s message, asked as einhornsh does (with an id), or "" when there is no answer.
std::string State(const std::string& sock) {
  ControlClient c(sock);
  if (!c.connected()) return "";
  const auto r = c.Ask("---%0Aid: 1%0Acommand: state%0Aargs: []%0A\n");
  return r ? r->message : "";
}

bool Ask(const std::string& sock, const std::string& verb) {
  ControlClient c(sock);
  return c.connected() && c.Ask("{\"id\": 1, \"command\": \"" + verb + "\"}\n").has_value();
}

size_t Count(const std::string& text, const std::string& needle) {
  size_t n = 0;
  for (size_t at = text.find(needle); at != std::string::npos; at = text.find(needle, at + 1)) {
    ++n;
  }
  return n;
}

// Polls `state` until `cond` holds for it; returns the last one.
std::string WaitState(const std::string& sock, const std::function<bool(const std::string&)>& cond,
                      std::chrono::milliseconds timeout = 20s) {
  std::string last;
  PollUntil([&] { return cond(last = State(sock)); }, timeout, 50ms);
  return last;
}

// state_shape.rb's verdict: "" when it holds, else its complaints (or how it failed).
std::string Shape(const Reference& ref, const std::vector<std::string>& args) {
  std::vector<std::string> argv = {ref.ruby, kRubyDir + "/state_shape.rb"};
  argv.insert(argv.end(), args.begin(), args.end());
  const Finished f = RunProgram(argv, 30s);
  if (f.status.signaled || f.status.code != 0) {
    return "state_shape.rb exited " + f.status.ToString() + ": " + f.out + f.err;
  }
  return "";
}

// Einhorn's scenario, run by either supervisor: 2 workers, one more (inc), one fewer (dec:
// the drained one ignores USR2 and stays, signalled), every worker pinged.
struct Replies {
  std::string settled;   // 2 workers, all pinged
  std::string grown;     // after inc: 3 pinged
  std::string drained;   // after dec: number 2, one worker signalled
};

Replies RunScenario(const std::string& sock, const std::string& mode) {
  Replies r;
  const auto pinged = [](size_t n) {
    return [n](const std::string& s) { return Count(s, ":pinged_request_id:") == n; };
  };
  r.settled = WaitState(sock, pinged(2));
  // In timer mode the workers are acked 1 s after they started: wait for it too, as the
  // reference's replies are compared field by field.
  if (mode == "timer") {
    r.settled = WaitState(sock, [](const std::string& s) {
      return Count(s, ":acked: true") == 2 && Count(s, ":pinged_request_id:") == 2;
    });
  }
  CHECK(Ask(sock, "inc"));
  r.grown = WaitState(sock, [](const std::string& s) {
    return Count(s, ":pinged_request_id:") == 3 && Count(s, ":acked: true") == 3;
  });
  CHECK(Ask(sock, "dec"));
  r.drained = WaitState(sock, [](const std::string& s) {
    return s.find("USR2: true") != std::string::npos;
  });
  return r;
}

void SaveAndCheck(const Reference& ref, const TempDir& dir, const std::string& name,
                  const std::string& text, int number) {
  INFO(name, ":\n", text);
  REQUIRE_FALSE(text.empty());
  WriteFile(dir.File(name), text);
  CHECK(Shape(ref, {"check", dir.File(name), std::to_string(number)}) == "");
}

TEST_CASE("einhorn state: einhorn-cpp's `state` has Ruby Einhorn 1.1.1's shape") {
  const auto ref = FindReference();
  if (!ref) return;
  for (const std::string mode : {"manual", "timer"}) {
    INFO("-m ", mode);
    const std::vector<std::string> flags = {"-n", "2", "-b", "127.0.0.1:0",
                                            "-m", mode == "manual" ? "manual" : "1"};
    TempDir out;
    // Ruby Einhorn 1.1.1, the reference.
    Replies einhorn;
    {
      TempDir dir;
      const std::string sock = dir.File("einhorn.sock");
      Process::Options o;
      o.argv = {ref->ruby, "-I" + ref->dir + "/lib", ref->dir + "/bin/einhorn", "-d", sock};
      o.argv.insert(o.argv.end(), flags.begin(), flags.end());
      o.argv.push_back("--");
      for (const std::string& w : Worker(*ref, mode)) o.argv.push_back(w);
      o.extra_env = {"TMPDIR=" + dir.path()};
      o.stderr_path = dir.File("einhorn.log");
      Process p = Process::Start(o);
      einhorn = RunScenario(sock, mode);
      INFO("einhorn's log:\n", ReadFile(dir.File("einhorn.log")));
      REQUIRE_FALSE(einhorn.drained.empty());
    }
    // einhorn-cpp.
    MasterRun m(flags, Worker(*ref, mode));
    const Replies cpp = RunScenario(Sock(m), mode);
    INFO("einhorn-cpp's log:\n", m.Log());

    SaveAndCheck(*ref, out, "einhorn-settled", einhorn.settled, 2);
    SaveAndCheck(*ref, out, "cpp-settled", cpp.settled, 2);
    SaveAndCheck(*ref, out, "einhorn-grown", einhorn.grown, 3);
    SaveAndCheck(*ref, out, "cpp-grown", cpp.grown, 3);
    SaveAndCheck(*ref, out, "einhorn-drained", einhorn.drained, 2);
    SaveAndCheck(*ref, out, "cpp-drained", cpp.drained, 2);
    for (const std::string step : {"settled", "grown", "drained"}) {
      INFO(step, "\nEinhorn:\n", ReadFile(out.File("einhorn-" + step)), "\neinhorn-cpp:\n",
           ReadFile(out.File("cpp-" + step)));
      CHECK(Shape(*ref, {"compare", out.File("einhorn-" + step), out.File("cpp-" + step)}) == "");
    }
    // The drained worker: signalled with USR2 (recorded, so :last_signaled_at is a time).
    CHECK(Count(cpp.drained, "          USR2: true\n") == 1);
    CHECK(Count(cpp.drained, ":last_signaled_at: 20") == 1);
  }
}

TEST_CASE("einhorn state: Einhorn's einhornsh prints einhorn-cpp's `state` as it reads it") {
  const auto ref = FindReference();
  if (!ref) return;
  MasterRun m({"-n", "2", "-m", "manual"}, Worker(*ref, "manual"));
  const std::string sock = Sock(m);
  const std::string message = WaitState(sock, [](const std::string& s) {
    return Count(s, ":pinged_request_id:") == 2;
  });
  REQUIRE(Count(message, ":pinged_request_id:") == 2);
  const Finished sh = RunProgram(
      {ref->ruby, "-I" + ref->dir + "/lib", ref->dir + "/bin/einhornsh", "-d", sock, "-e", "state"},
      30s);
  CHECK(sh.status.code == 0);
  // einhornsh prints each reply's message with `puts`; nothing else changed between the asks.
  CHECK(sh.out == message);
  CHECK(sh.out.rfind("---\n:state:\n  :children:\n", 0) == 0);
}

TEST_CASE("einhorn state: a worker:ping from Einhorn's Ruby library shows, and survives a reload") {
  const auto ref = FindReference();
  if (!ref) return;
  MasterRun m({"-n", "1", "-m", "manual"}, Worker(*ref, "manual"));
  const std::string sock = Sock(m);
  const std::string before = WaitState(sock, [](const std::string& s) {
    return Count(s, ":pinged_request_id:") == 1;
  });
  const auto st = Status(m);
  REQUIRE(st.has_value());
  REQUIRE(st->workers.size() == 1);
  const pid_t pid = st->workers[0].pid;
  const std::string id = "req-" + std::to_string(pid);
  // Einhorn::Worker.ping!("req-PID") sent a string request_id.
  CHECK(before.find("      :pinged_request_id: \"" + id + "\"\n") != std::string::npos);
  const size_t at = before.find("      :pinged_at: ");
  REQUIRE(at != std::string::npos);
  const std::string pinged_at = before.substr(at, before.find('\n', at) - at);
  CHECK(st->workers[0].pinged_request_id == id);
  REQUIRE(st->workers[0].pinged_ago.has_value());
  CHECK(*st->workers[0].pinged_ago >= 0);
  // einhornctl status --json shows them too.
  const Finished json = RunProgram({EINHORNCTL_BIN, "-d", sock, "status", "--json"}, 10s);
  CHECK(json.status.code == 0);
  CHECK(json.out.find("\"pinged_request_id\": \"" + id + "\"") != std::string::npos);
  CHECK(json.out.find("\"pinged_ago\": ") != std::string::npos);

  // Across a reload: the same worker, the same ping.
  CHECK(Ask(sock, "reload"));
  REQUIRE(PollUntil([&] {
    const auto s = Status(m);
    return s && s->reloads == 1;
  }, 20s));
  const std::string after = State(sock);
  INFO(after);
  CHECK(after.find("\n    " + std::to_string(pid) + ":\n") != std::string::npos);
  CHECK(after.find(pinged_at + "\n") != std::string::npos);
  CHECK(after.find("      :pinged_request_id: \"" + id + "\"\n") != std::string::npos);
  CHECK(after.find("  :generation: 1\n") != std::string::npos);
  const auto st2 = Status(m);
  REQUIRE(st2.has_value());
  REQUIRE(st2->workers.size() == 1);
  CHECK(st2->workers[0].pinged_request_id == id);
}

}  // namespace
}  // namespace einhorn::test
