// A preload zygote for the e2e tests (ZYGOTE-PROTOCOL v1), with fault modes. Run by
// einhorn-cpp --preload as the worker command:
//   test_zygote REPORT_DIR
// It reads its mode when it starts, from the file named by TEST_ZYGOTE_MODE_FILE (so that a test
// can change it between generations without restarting the master), else TEST_ZYGOTE_MODE:
//   ok                 load, say ready, fork workers
//   fail_load          say {"error": ...} and exit 1
//   exit_load          exit 3 without a word
//   never_ready        never say ready (waits for EOF)
//   slow_load:MS       sleep MS, then ready
//   die_after:N        exit 5 after the N-th worker
//   forge:one          reply with pid 1 instead of forking
//   forge:master       reply with the master's pid
//   forge:worker       fork the first worker; to later requests reply with that worker's pid
//   forge:grandchild   fork a worker but do not wait for the intermediate child: reply with the
//                      worker's pid while it is still the intermediate child's child
//   garbage            reply "not json"
//   oversized          reply with a 70,000-byte packet
//   no_reply           never reply to a spawn request
//   unsolicited        after ready, send a reply nobody asked for
// TEST_ZYGOTE_VERSION_FILE (optional): its content at load time is the "code version" every
// worker reports as version=.
// Each worker writes REPORT_DIR/<pid>.env (pid, ppid, pgid, EINHORN_*/LISTEN_* variables,
// sigign, sigblk, version, zygote) as test_worker does, then waits for a signal with default
// dispositions (SIGUSR2/SIGTERM end it). The zygote writes REPORT_DIR/zygote-<pid> with its mode.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

extern char** environ;

namespace {

std::string g_dir;
std::string g_version;

std::string ReadFileText(const char* path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  std::string s = ss.str();
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

void WriteFile(const std::string& path, const std::string& text) {
  const std::string tmp = path + ".tmp";
  std::ofstream(tmp) << text;
  rename(tmp.c_str(), path.c_str());
}

std::string StatusField(const char* name) {
  std::ifstream in("/proc/self/status");
  std::string line;
  const std::string prefix = std::string(name) + ":";
  while (std::getline(in, line)) {
    if (line.rfind(prefix, 0) == 0) {
      const size_t start = line.find_first_not_of(" \t", prefix.size());
      return start == std::string::npos ? "" : line.substr(start);
    }
  }
  return "";
}

void Send(int sock, const std::string& text) {
  send(sock, text.data(), text.size(), MSG_NOSIGNAL);
}

// The worker, in the grandchild: what every library must do (protocol, "How the zygote forks a
// worker", step 2), then the report.
[[noreturn]] void RunWorker(int sock, const int fds[3], const nlohmann::json& req) {
  setpgid(0, 0);
  for (int sig = 1; sig < NSIG; ++sig) {
    if (sig != SIGKILL && sig != SIGSTOP) signal(sig, SIG_DFL);
  }
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, nullptr);
  for (int i = 0; i < 3; ++i) dup2(fds[i], i);
  for (int i = 0; i < 3; ++i) {
    if (fds[i] > 2) close(fds[i]);
  }
  close(sock);
  clearenv();
  for (const auto& [name, value] : req["env"].items()) {
    setenv(name.c_str(), value.get<std::string>().c_str(), 1);
  }
  for (const auto& name : req["self_pid_vars"]) {
    setenv(name.get<std::string>().c_str(), std::to_string(getpid()).c_str(), 1);
  }
  std::string out = "pid=" + std::to_string(getpid()) + "\nppid=" + std::to_string(getppid()) +
                    "\npgid=" + std::to_string(getpgrp()) + "\n";
  for (char** env = environ; *env != nullptr; ++env) {
    const std::string entry = *env;
    if (entry.rfind("EINHORN_", 0) == 0 || entry.rfind("LISTEN_", 0) == 0 ||
        entry.rfind("NOTIFY_SOCKET=", 0) == 0 || entry.rfind("ZYGOTE_TEST_", 0) == 0) {
      out += entry + "\n";
    }
  }
  out += "sigign=" + StatusField("SigIgn") + "\nsigblk=" + StatusField("SigBlk") + "\n";
  out += "version=" + g_version + "\nzygote=" + std::to_string(getppid()) + "\n";
  WriteFile(g_dir + "/" + std::to_string(getpid()) + ".env", out);
  std::fprintf(stdout, "zygote worker %d up\n", static_cast<int>(getpid()));
  std::fflush(stdout);
  for (;;) pause();
}

// One packet with its fds; false at EOF.
bool Receive(int sock, std::string* text, std::vector<int>* fds) {
  std::vector<char> buf(70000);
  iovec iov{buf.data(), buf.size()};
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * 8)] = {};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof control;
  ssize_t n;
  do {
    n = recvmsg(sock, &msg, MSG_CMSG_CLOEXEC);
  } while (n < 0 && errno == EINTR);
  if (n <= 0) return false;
  text->assign(buf.data(), static_cast<size_t>(n));
  for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
    const size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    for (size_t i = 0; i < count; ++i) {
      int fd;
      std::memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof fd);
      fds->push_back(fd);
    }
  }
  return true;
}

// fork, fork, exit: the worker is orphaned and reparented to the subreaper (the master).
pid_t DoubleFork(int sock, const int fds[3], const nlohmann::json& req, bool wait_for_middle) {
  int p[2];
  if (pipe2(p, O_CLOEXEC) != 0) return -1;
  const pid_t middle = fork();
  if (middle < 0) return -1;
  if (middle == 0) {
    close(p[0]);
    const pid_t worker = fork();
    if (worker == 0) {
      close(p[1]);
      RunWorker(sock, fds, req);
    }
    [[maybe_unused]] ssize_t w = write(p[1], &worker, sizeof worker);
    if (!wait_for_middle) {
      sleep(2);  // the worker stays this process's child a while
    }
    _exit(0);
  }
  close(p[1]);
  pid_t worker = -1;
  if (read(p[0], &worker, sizeof worker) != sizeof worker) worker = -1;
  close(p[0]);
  if (wait_for_middle) waitpid(middle, nullptr, 0);
  return worker;
}

}  // namespace

int main(int argc, char** argv) {
  g_dir = argc > 1 ? argv[1] : ".";
  const char* fd_text = std::getenv("EINHORN_ZYGOTE_FD");
  if (fd_text == nullptr) {
    std::fprintf(stderr, "test_zygote: no EINHORN_ZYGOTE_FD\n");
    return 2;
  }
  const int sock = std::atoi(fd_text);
  std::string mode = "ok";
  if (const char* f = std::getenv("TEST_ZYGOTE_MODE_FILE")) {
    mode = ReadFileText(f);
  } else if (const char* m = std::getenv("TEST_ZYGOTE_MODE")) {
    mode = m;
  }
  if (const char* v = std::getenv("TEST_ZYGOTE_VERSION_FILE")) g_version = ReadFileText(v);
  std::string zygote_report = "mode=" + mode + "\nversion=" + g_version + "\nchild_index=" +
                              (std::getenv("EINHORN_CHILD_INDEX") ? "set" : "unset") + "\n";
  WriteFile(g_dir + "/zygote-" + std::to_string(getpid()), zygote_report);
  // Reap the intermediate children only when asked (waitpid), never by SIG_IGN: the workers'
  // exits belong to the master.
  if (mode == "fail_load") {
    Send(sock, R"({"error": "simulated load failure"})");
    return 1;
  }
  if (mode == "exit_load") return 3;
  if (mode == "never_ready") {
    std::string ignored;
    std::vector<int> fds;
    while (Receive(sock, &ignored, &fds)) {
    }
    return 0;
  }
  if (mode.rfind("slow_load:", 0) == 0) usleep(std::atoi(mode.c_str() + 10) * 1000);
  Send(sock, R"({"ready": true, "library": "test_zygote"})");
  if (mode == "unsolicited") Send(sock, R"({"spawned": 77, "pid": 12345})");
  int die_after = -1;
  if (mode.rfind("die_after:", 0) == 0) die_after = std::atoi(mode.c_str() + 10);
  int spawned = 0;
  pid_t first_worker = 0;
  for (;;) {
    std::string text;
    std::vector<int> fds;
    if (!Receive(sock, &text, &fds)) return 0;  // EOF: the master closed its end
    nlohmann::json req = nlohmann::json::parse(text, nullptr, false);
    if (req.is_discarded() || !req.contains("spawn") || fds.size() != 3) {
      std::fprintf(stderr, "test_zygote: bad request\n");
      return 4;
    }
    const long long id = req["spawn"].get<long long>();
    const std::string tag = "{\"spawned\": " + std::to_string(id) + ", \"pid\": ";
    if (mode == "no_reply") {
      for (int fd : fds) close(fd);
      continue;
    }
    if (mode == "garbage") {
      Send(sock, "not json");
    } else if (mode == "oversized") {
      Send(sock, "{\"x\": \"" + std::string(70000 - 10, 'a') + "\"}");
    } else if (mode == "forge:one") {
      Send(sock, tag + "1}");
    } else if (mode == "forge:master") {
      Send(sock, tag + std::to_string(getppid()) + "}");
    } else if (mode == "forge:worker" && first_worker > 0) {
      Send(sock, tag + std::to_string(first_worker) + "}");
    } else {
      const bool wait_middle = mode != "forge:grandchild";
      const pid_t worker = DoubleFork(sock, fds.data(), req, wait_middle);
      if (worker <= 0) {
        Send(sock, "{\"failed\": " + std::to_string(id) + ", \"error\": \"fork failed\"}");
      } else {
        if (first_worker == 0) first_worker = worker;
        Send(sock, tag + std::to_string(worker) + "}");
      }
      ++spawned;
    }
    for (int fd : fds) close(fd);
    if (die_after > 0 && spawned >= die_after) return 5;
  }
}
