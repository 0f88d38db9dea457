// Process-level test helpers for tests/sys and tests/e2e: temporary directories, child
// processes that are always cleaned up, polling with deadlines, /proc inspection and a tiny
// HTTP client. Everything here is deliberately independent of src/sys (it tests that code), and
// nothing sleeps for a fixed time: wait with PollUntil or Process::WaitExit.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "core/types.h"

namespace einhorn::test {

// A fresh directory under /tmp (mkdtemp), removed with everything in it on destruction.
class TempDir {
 public:
  TempDir();  // throws std::runtime_error if the directory cannot be created
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::string& path() const { return path_; }
  // path() + "/" + name
  std::string File(const std::string& name) const;

 private:
  std::string path_;
};

// A child process started with fork+execve in its own process group. Destroying a Process that
// is still running kills it: SIGKILL to its process group, to the pid, and to every descendant
// found in /proc (workers of a master sit in process groups of their own), then reaps it and,
// as a temporary subreaper, those descendants too.
class Process {
 public:
  struct Options {
    std::vector<std::string> argv;  // argv[0] is the program: a path, or a name found in PATH
    // "NAME=value" entries added to the inherited environment, replacing same-named ones.
    std::vector<std::string> extra_env;
    // Names removed from the inherited environment (e.g. NOTIFY_SOCKET, LISTEN_FDS).
    std::vector<std::string> unset_env;
    // When set, the whole environment (extra_env and unset_env still apply on top).
    std::optional<std::vector<std::string>> env;
    std::string stdin_path;   // "" = inherited
    std::string stdout_path;  // "" = inherited; otherwise created/truncated, mode 0644
    std::string stderr_path;  // "" = inherited; may equal stdout_path (shared file)
    std::string cwd;          // "" = the test's current directory
    // Placed at fds 3, 4, ... in the child, as systemd socket activation does. Every other fd
    // >= 3 is closed in the child.
    std::vector<int> pass_fds;
    bool set_listen_pid = false;  // appends LISTEN_PID=<the child's pid> to the environment
  };

  // Throws std::runtime_error if the program cannot be started (exec failure included).
  static Process Start(Options options);
  // Shorthand: argv only, stdout/stderr inherited.
  static Process Start(std::vector<std::string> argv);

  Process(Process&& other) noexcept;
  Process& operator=(Process&& other) noexcept;
  Process(const Process&) = delete;
  Process& operator=(const Process&) = delete;
  ~Process();

  pid_t pid() const { return pid_; }
  // True until the exit has been collected by WaitExit/Kill.
  bool running() const { return pid_ > 0 && !status_.has_value(); }

  // Polls waitpid(WNOHANG) until the child exits or `timeout` passes. Returns its status (also
  // on later calls), or nullopt if it is still running.
  std::optional<core::ExitStatus> WaitExit(std::chrono::milliseconds timeout);
  // kill(pid, sig); false if the process is gone or already reaped.
  bool Signal(int sig);
  // kill(-pid, sig): the child's whole process group.
  bool SignalGroup(int sig);
  // What the destructor does; afterwards running() is false.
  void Kill();

 private:
  explicit Process(pid_t pid) : pid_(pid) {}
  pid_t pid_ = -1;
  std::optional<core::ExitStatus> status_;
};

// Calls `cond` every `step` until it returns true (then true) or `timeout` passes (then one last
// call decides).
bool PollUntil(const std::function<bool()>& cond, std::chrono::milliseconds timeout,
               std::chrono::milliseconds step = std::chrono::milliseconds(10));

// The first executable regular file `name` in $PATH, or nullopt.
std::optional<std::string> LookUpInPath(const std::string& name);

// Whole file contents, or "" if it cannot be read.
std::string ReadFile(const std::string& path);
// Creates/truncates; throws std::runtime_error on failure.
void WriteFile(const std::string& path, const std::string& contents, mode_t mode = 0644);
// An executable /bin/sh script `name` in `d`, `DIR` set to d's path before `body`.
std::string WriteShellScript(const TempDir& d, const std::string& name, const std::string& body);
// True for any kind of file (lstat), including sockets and dangling symlinks.
bool FileExists(const std::string& path);

// Direct children of `pid`, from the ppid field of every /proc/*/stat.
std::vector<pid_t> ChildrenOf(pid_t pid);
// Children, grandchildren, ... of `pid` (not `pid` itself), parents before their children.
std::vector<pid_t> DescendantsOf(pid_t pid);
// kill(pid, 0) succeeds and the process is not a zombie.
bool ProcessAlive(pid_t pid);
// How many fds `pid` has open (entries of /proc/PID/fd), 0 if it is gone.
size_t OpenFds(pid_t pid);
// The one-letter state from /proc/PID/stat ('R', 'S', 'Z', ...), or '\0' if it is gone.
char ProcessState(pid_t pid);
// Parsed fields of /proc/PID/stat after the comm: index 0 is the state (field 3 in proc(5)),
// 1 ppid, 2 pgrp, 3 session, ..., 16 nice. Empty if the process is gone.
std::vector<std::string> ProcStatFields(pid_t pid);

// "GET / HTTP/1.0" over TCP (host is a numeric address or a name) or a UNIX socket, blocking
// sockets with SO_RCVTIMEO/SO_SNDTIMEO, read to EOF. HttpGet returns the body (what follows the
// blank line), HttpGetRaw the whole response; "" on any failure or after `timeout` overall.
std::string HttpGet(const std::string& host, int port, std::chrono::milliseconds timeout);
std::string HttpGetRaw(const std::string& host, int port, std::chrono::milliseconds timeout);
std::string HttpGetUnix(const std::string& path, std::chrono::milliseconds timeout);
std::string HttpGetUnixRaw(const std::string& path, std::chrono::milliseconds timeout);

}  // namespace einhorn::test
