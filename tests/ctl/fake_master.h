// Masters for einhornctl's tests. A Script decides what a master answers to each request; it
// runs either in memory behind the Connection seam (ScriptedConnection, for the commands' unit
// tests) or behind a real UNIX socket in a thread (FakeMaster, for the einhornctl binary). Both
// write replies with wire::EncodeReply, so the bytes are those of the real master.
#pragma once

#include <atomic>
#include <deque>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "core/pool_status.h"
#include "core/wire.h"
#include "ctl/client.h"

namespace einhorn::test {

struct Answer {
  std::vector<core::wire::Reply> replies;  // request_id is filled in from the request's id
  bool close = false;                      // close the connection after the replies
  bool silent = false;                     // say nothing and keep the connection: a hung master
};

using Script = std::function<Answer(const core::wire::Request&)>;

// Replies with one message; `wait` marks a non-final streamed one.
Answer Say(const std::string& message);
Answer Refuse(const std::string& message);
Answer Stream(const std::vector<std::string>& messages);  // wait on all but the last
Answer StatusAnswer(const core::PoolStatus& status);

// A pool of `target` workers with `ready` ready and `booting` booting ones.
core::PoolStatus MakeStatus(int target, int ready, int booting, int verbosity = 1);

// A script that answers the usual verbs like Einhorn, counts workers for inc/dec/set_workers
// and status, and closes on worker:ack.
Script EinhornLike();

// In memory: Send runs the script, Receive pops its replies.
class ScriptedConnection : public ctl::Connection {
 public:
  ScriptedConnection(Script script, std::vector<core::wire::Request>* seen)
      : script_(std::move(script)), seen_(seen) {}
  core::Status Send(const std::string& line) override;
  core::Result<core::wire::Reply> Receive() override;
  core::Status AwaitClose() override;

 private:
  Script script_;
  std::vector<core::wire::Request>* seen_;
  std::deque<std::string> pending_;  // encoded reply lines
  bool closed_ = false;
  bool silent_ = false;
};

// A UNIX socket at `path` served by a thread, one connection at a time.
class FakeMaster {
 public:
  FakeMaster(const std::string& path, Script script);
  ~FakeMaster();
  FakeMaster(const FakeMaster&) = delete;
  FakeMaster& operator=(const FakeMaster&) = delete;

  std::vector<core::wire::Request> requests() const;
  std::vector<std::string> lines() const;  // raw request lines, unescaped
  int connections() const { return connections_.load(); }

 private:
  void Serve();
  void ServeConnection(int fd);

  Script script_;
  int listen_fd_ = -1;
  int stop_pipe_[2] = {-1, -1};
  std::atomic<int> connections_{0};
  mutable std::mutex mu_;
  std::vector<core::wire::Request> requests_;
  std::vector<std::string> lines_;
  std::thread thread_;
};

}  // namespace einhorn::test
