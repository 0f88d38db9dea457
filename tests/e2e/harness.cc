#include "harness.h"

#include <algorithm>

#include <dirent.h>
#include <cerrno>
#include <unistd.h>
#include <sys/wait.h>
#include <grp.h>
#include <sys/stat.h>

#include <sstream>
#include <stdexcept>

namespace einhorn::test {
namespace {

Report ParseReport(const std::string& text) {
  Report r;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    const size_t eq = line.find('=');
    if (eq != std::string::npos) r[line.substr(0, eq)] = line.substr(eq + 1);
  }
  return r;
}

}  // namespace

MasterRun::MasterRun(std::vector<std::string> flags, std::vector<std::string> worker,
                     std::vector<std::string> extra_env, std::vector<std::string> launcher)
    : log_path_(dir_.File("master.log")),
      proc_([&] {
        if (mkdir(dir_.File("reports").c_str(), 0755) != 0) {
          throw std::runtime_error("mkdir reports");
        }
        Process::Options o;
        for (std::string l : launcher) {
          const size_t at = l.find("{dir}");
          if (at != std::string::npos) l.replace(at, 5, dir_.path());
          o.argv.push_back(l);
        }
        o.argv.push_back(EINHORN_BIN);
        o.argv.insert(o.argv.end(), flags.begin(), flags.end());
        o.argv.push_back("--");
        for (std::string w : worker) {
          const size_t at = w.find("{reports}");
          if (at != std::string::npos) w.replace(at, 9, dir_.File("reports"));
          o.argv.push_back(w);
        }
        o.extra_env = extra_env;
        o.extra_env.push_back("TMPDIR=" + dir_.path());
        o.stderr_path = log_path_;
        o.stdout_path = dir_.File("master.out");
        return Process::Start(o);
      }()) {}

bool MasterRun::WaitForLog(const std::string& needle, std::chrono::milliseconds timeout) const {
  return PollUntil([&] { return LogHas(needle); }, timeout);
}

std::map<pid_t, Report> MasterRun::Reports() const {
  std::map<pid_t, Report> out;
  DIR* d = opendir(reports_dir().c_str());
  if (d == nullptr) return out;
  while (dirent* e = readdir(d)) {
    const std::string name = e->d_name;
    if (name.size() > 4 && name.substr(name.size() - 4) == ".env") {
      const pid_t pid = static_cast<pid_t>(std::stol(name.substr(0, name.size() - 4)));
      out[pid] = ParseReport(ReadFile(reports_dir() + "/" + name));
    }
  }
  closedir(d);
  return out;
}

std::map<pid_t, Report> MasterRun::LiveWorkers() const {
  std::map<pid_t, Report> all = Reports();
  std::map<pid_t, Report> live;
  for (pid_t child : ChildrenOf(pid())) {
    if (!ProcessAlive(child)) continue;
    auto it = all.find(child);
    if (it != all.end()) live.insert(*it);
  }
  return live;
}

bool MasterRun::WaitForWorkers(size_t n, std::chrono::milliseconds timeout) const {
  return PollUntil(
      [&] {
        size_t alive = 0;
        for (pid_t c : ChildrenOf(pid())) alive += ProcessAlive(c) ? 1 : 0;
        return alive == n && LiveWorkers().size() == n;
      },
      timeout);
}

std::vector<std::string> MasterRun::SignalsOf(pid_t worker) const {
  std::vector<std::string> out;
  std::istringstream in(ReadFile(reports_dir() + "/" + std::to_string(worker) + ".signals"));
  std::string line;
  while (std::getline(in, line)) {
    if (!line.empty()) out.push_back(line);
  }
  return out;
}

std::optional<int> MasterRun::Port(size_t index) const {
  // Lines look like "listening on 127.0.0.1:41234 for -b ..." or "listening on [::1]:8080 ...".
  const std::string log = Log();
  const std::string marker = "listening on ";
  size_t at = 0;
  for (size_t i = 0; (at = log.find(marker, at)) != std::string::npos; ++i) {
    at += marker.size();
    const size_t end = log.find(' ', at);
    const std::string address = log.substr(at, end - at);
    if (address.rfind("unix:", 0) == 0) {
      --i;  // only TCP listeners have a port
      continue;
    }
    if (i == index) return std::stoi(address.substr(address.rfind(':') + 1));
  }
  return std::nullopt;
}

Finished RunToExit(std::vector<std::string> args, std::chrono::milliseconds timeout,
                   std::vector<std::string> extra_env) {
  args.insert(args.begin(), EINHORN_BIN);
  return RunProgram(std::move(args), timeout, std::move(extra_env));
}

Finished RunProgram(std::vector<std::string> argv, std::chrono::milliseconds timeout,
                    std::vector<std::string> extra_env) {
  TempDir dir;
  Process::Options o;
  const std::string program = argv.front();
  o.argv = std::move(argv);
  o.extra_env = extra_env;
  bool has_tmpdir = false;
  for (const std::string& e : extra_env) has_tmpdir |= e.rfind("TMPDIR=", 0) == 0;
  if (!has_tmpdir) o.extra_env.push_back("TMPDIR=" + dir.path());
  o.stderr_path = dir.File("err");
  o.stdout_path = dir.File("out");
  Process p = Process::Start(o);
  auto status = p.WaitExit(timeout);
  if (!status) throw std::runtime_error(program + " did not exit in time");
  return Finished{*status, ReadFile(dir.File("err")), ReadFile(dir.File("out"))};
}

pid_t AnsweringPid(const std::string& body) {
  const std::string prefix = "hello from worker ";
  if (body.rfind(prefix, 0) != 0) return 0;
  return static_cast<pid_t>(std::stol(body.substr(prefix.size())));
}

bool IsChild(pid_t master, pid_t pid) {
  const auto children = ChildrenOf(master);
  return std::find(children.begin(), children.end(), pid) != children.end();
}

int AsNobody(const std::function<int()>& body) {
  const pid_t pid = fork();
  if (pid < 0) return 97;
  if (pid == 0) {
    if (setgroups(0, nullptr) != 0 || setresgid(65534, 65534, 65534) != 0 ||
        setresuid(65534, 65534, 65534) != 0) {
      _exit(99);
    }
    _exit(body());
  }
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : 98;
}

}  // namespace einhorn::test
