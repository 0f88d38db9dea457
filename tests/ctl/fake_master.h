// Masters for einhornctl's tests. A Script decides what a master answers to each request; it
// runs either in memory behind the Connection seam (ScriptedConnection, for the commands' unit
// tests) or behind a real UNIX socket in a thread (FakeMaster, for the einhornctl binary). Both
// write replies with wire::EncodeReply, so the bytes are those of the real master.
#pragma once

#include <atomic>
#include <chrono>
#include <deque>
#include <functional>
#include <mutex>
#include <optional>
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
  // The time between two replies, as a master streaming an upgrade takes. FakeMaster sleeps;
  // ScriptedConnection only reports it (on_elapse), so that a fake clock can move.
  std::chrono::milliseconds pause{0};
};

using Script = std::function<Answer(const core::wire::Request&)>;

// Replies with one message; `wait` marks a non-final streamed one.
Answer Say(const std::string& message);
Answer Refuse(const std::string& message);
Answer Stream(const std::vector<std::string>& messages);  // wait on all but the last
Answer StatusAnswer(const core::PoolStatus& status);

// How a scripted upgrade ends.
enum class UpgradeEnd {
  kDone,     // ... "Upgrade done"
  kFailed,   // ... a final message with error: true
  kHangUp,   // after a progress line the master closes the connection
  kSilence,  // after a progress line the master says nothing more, connection open
};
// The messages of an upgrade of `workers` workers as einhorn-cpp streams them, for `verb`
// upgrade or upgrade_fleet: "Upgrading smoothly, as commanded" (or fleet), "Progress: ..." and
// "draining ..." lines, then the end. All but the last (kDone, kFailed) have wait: true.
Answer UpgradeAnswer(const std::string& verb, int workers, UpgradeEnd end);

// A pool of `target` workers with `ready` ready and `booting` booting ones.
core::PoolStatus MakeStatus(int target, int ready, int booting, int verbosity = 1);

// A script that answers the usual verbs like Einhorn, counts workers for inc/dec/set_workers
// and status, streams a successful upgrade (UpgradeAnswer) for upgrade and upgrade_fleet, and
// closes on worker:ack.
Script EinhornLike();

// In memory: Send runs the script, Receive pops its replies.
class ScriptedConnection : public ctl::Connection {
 public:
  ScriptedConnection(Script script, std::vector<core::wire::Request>* seen)
      : script_(std::move(script)), seen_(seen) {}
  core::Status Send(const std::string& line) override;
  // Pops the next reply. Time passes as with a real master: the answer's pause before each
  // reply but the first, and the whole reply timeout when that is shorter (then the reply stays
  // pending and Receive fails) or when nothing more will come on an open connection.
  core::Result<core::wire::Reply> Receive() override;
  void SetReplyTimeout(std::optional<double> seconds) override { reply_timeout_ = seconds; }
  core::Result<std::optional<core::wire::Reply>> AwaitClose() override;

  // Told how long each wait in Receive took, in seconds; nullopt for a wait without a timeout
  // for a reply that never comes (a real connection would hang). Tests move their clock here.
  std::function<void(std::optional<double>)> on_elapse;

 private:
  struct Pending {
    std::string line;  // an encoded reply, without '\n'
    double pause = 0;  // seconds before it is sent
  };

  void Elapse(std::optional<double> seconds) {
    if (on_elapse) on_elapse(seconds);
  }

  Script script_;
  std::vector<core::wire::Request>* seen_;
  std::optional<double> reply_timeout_ = 30;  // the default --timeout
  std::deque<Pending> pending_;
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
