#include "fake_master.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <stdexcept>

namespace einhorn::test {
namespace {

using core::wire::Reply;
using core::wire::Request;

// Decodes a request line as the master would: unescape, parse.
core::wire::ParseResult Decode(std::string line) {
  if (!line.empty() && line.back() == '\n') line.pop_back();
  return core::wire::ParseRequest(core::wire::Unescape(line));
}

std::vector<std::string> Encode(const Request& request, Answer answer) {
  std::vector<std::string> out;
  for (Reply& r : answer.replies) {
    if (!r.request_id) r.request_id = request.id;
    out.push_back(core::wire::EncodeReply(r));
  }
  return out;
}

int Arg(const Request& r, int fallback) {
  return r.args.empty() ? fallback : std::atoi(r.args[0].c_str());
}

}  // namespace

Answer Say(const std::string& message) {
  Answer a;
  a.replies.push_back(Reply{message, std::nullopt, false, false});
  return a;
}

Answer Refuse(const std::string& message) {
  Answer a;
  a.replies.push_back(Reply{message, std::nullopt, false, true});
  return a;
}

Answer Stream(const std::vector<std::string>& messages) {
  Answer a;
  for (size_t i = 0; i < messages.size(); ++i) {
    a.replies.push_back(Reply{messages[i], std::nullopt, i + 1 < messages.size(), false});
  }
  return a;
}

Answer StatusAnswer(const core::PoolStatus& status) { return Say(core::PoolStatusToYaml(status)); }

Answer UpgradeAnswer(const std::string& verb, int workers, UpgradeEnd end) {
  const bool fleet = verb == "upgrade_fleet";
  const std::string n = std::to_string(workers);
  const auto progress = [&n](int ready, int drained) {
    return "Progress: " + std::to_string(ready) + "/" + n + " new ready, " +
           std::to_string(drained) + "/" + n + " old told to drain";
  };
  std::vector<std::string> lines = {
      fleet ? "Upgrading fleet, as commanded" : "Upgrading smoothly, as commanded", progress(0, 0)};
  Answer a;
  switch (end) {
    case UpgradeEnd::kDone:
      for (int i = 1; i <= workers; ++i) {
        lines.push_back(progress(i, i - 1));
        lines.push_back("draining worker " + std::to_string(5000 + i - 1) + " (index " +
                        std::to_string(i - 1) + ", generation 1): replaced by a ready worker");
        lines.push_back(progress(i, i));
      }
      lines.push_back("Upgraded successfully to generation 2.");
      lines.push_back("Upgrade done");
      return Stream(lines);
    case UpgradeEnd::kFailed:
      lines.push_back(
          "Upgrade to generation 2 failed: 3 new workers failed (the last: worker 5102 exited "
          "with status 3 before it was ready). Rolled back: generation 1 keeps serving (" +
          n + " ready)");
      a = Stream(lines);
      a.replies.back().error = true;
      return a;
    case UpgradeEnd::kHangUp:
    case UpgradeEnd::kSilence:
      for (const std::string& l : lines) a.replies.push_back(Reply{l, std::nullopt, true, false});
      a.close = end == UpgradeEnd::kHangUp;
      return a;
  }
  return a;
}

core::PoolStatus MakeStatus(int target, int ready, int booting, int verbosity) {
  core::PoolStatus s;
  s.master_pid = 4242;
  s.version = "0.1.0";
  s.target = target;
  s.ack_mode = "timer 1s";
  s.verbosity = verbosity;
  s.ready = ready;
  s.booting = booting;
  for (int i = 0; i < ready + booting; ++i) {
    core::WorkerStatus w;
    w.slot = i;
    w.index = i;
    w.pid = 5000 + i;
    w.state = i < ready ? "ready" : "booting";
    if (i < ready) w.time_to_ready = 1.0;
    w.uptime = 35.2;
    s.workers.push_back(w);
  }
  return s;
}

Script EinhornLike() {
  auto target = std::make_shared<int>(2);
  auto verbosity = std::make_shared<int>(1);
  return [target, verbosity](const Request& r) -> Answer {
    const std::string& c = r.command;
    const int from = *target;
    if (c == "inc") {
      ++*target;
      return Say("Incrementing number of workers from " + std::to_string(from) + " -> " +
                 std::to_string(*target));
    }
    if (c == "dec") {
      if (*target <= 1) {
        Answer a = Refuse(
            "Can't decrease number of workers (already at 1).  Run kill <pid> if you really "
            "want to kill einhorn.");
        return a;
      }
      --*target;
      return Say("Decrementing number of workers from " + std::to_string(from) + " -> " +
                 std::to_string(*target));
    }
    if (c == "set_workers") {
      const int n = Arg(r, 0);
      if (n < 1)
        return Refuse("Invalid count: '" + r.args.at(0) + "'. Must be an integer in [1,1000).");
      *target = n;
      return Say("Altering worker count, " + std::to_string(from) + " -> " + std::to_string(n) +
                 ". Will spin up additional workers.");
    }
    if (c == "status") return StatusAnswer(MakeStatus(*target, *target, 0, *verbosity));
    if (c == "quieter" || c == "louder") {
      *verbosity = std::clamp(*verbosity + (c == "quieter" ? 1 : -1), 0, 2);
      return Say("Verbosity set to " + std::to_string(*verbosity));
    }
    if (c == "ehlo") {
      return Say("Welcome, " + r.user +
                 "! You are speaking to Einhorn Master Process 4242.\nThis is Einhorn 0.8.2.\n");
    }
    if (c == "signal") return Say("");
    if (c == "die") return Say("Einhorn is going down! ");
    if (c == "help") return Say("You are speaking to the Einhorn command socket.\n");
    if (c == "upgrade" || c == "upgrade_fleet") return UpgradeAnswer(c, *target, UpgradeEnd::kDone);
    if (c == "reload") return Say("Reloading, as commanded");
    if (c == "worker:ack") {
      Answer a;
      a.close = true;
      return a;
    }
    return Refuse("Unrecognized command: \"" + c + "\"");
  };
}

// --- ScriptedConnection ---------------------------------------------------------------------

core::Status ScriptedConnection::Send(const std::string& line) {
  if (closed_) return core::Status::Error("the master closed the connection");
  const core::wire::ParseResult parsed = Decode(line);
  if (parsed.kind != core::wire::ParseResult::Kind::kOk) {
    return core::Status::Error("test: einhornctl sent an unparsable line: " + line);
  }
  seen_->push_back(parsed.request);
  Answer answer = script_(parsed.request);
  silent_ = answer.silent;
  closed_ = answer.close;
  const double pause = std::chrono::duration<double>(answer.pause).count();
  bool first = true;
  for (std::string& l : Encode(parsed.request, std::move(answer))) {
    l.pop_back();  // the '\n': Receive gets lines as a LineBuffer hands them out
    pending_.push_back(Pending{std::move(l), first ? 0 : pause});
    first = false;
  }
  return core::Status::Ok();
}

core::Result<core::wire::Reply> ScriptedConnection::Receive() {
  const auto timed_out = [this]() {
    char seconds[32];
    std::snprintf(seconds, sizeof seconds, "%gs", *reply_timeout_);
    return core::Result<Reply>::Error(std::string("no reply from the master within ") + seconds);
  };
  if (pending_.empty()) {
    if (closed_) return core::Result<Reply>::Error("the master closed the connection");
    Elapse(reply_timeout_);
    if (!reply_timeout_) return core::Result<Reply>::Error("test: a real client would hang here");
    return timed_out();
  }
  Pending& next = pending_.front();
  if (next.pause > 0) {
    if (reply_timeout_ && *reply_timeout_ < next.pause) {
      Elapse(*reply_timeout_);
      next.pause -= *reply_timeout_;
      return timed_out();
    }
    Elapse(next.pause);
  }
  std::optional<Reply> r = core::wire::ParseReply(next.line);
  pending_.pop_front();
  if (!r) return core::Result<Reply>::Error("unreadable reply from the master");
  return *r;
}

core::Result<std::optional<core::wire::Reply>> ScriptedConnection::AwaitClose() {
  using R = core::Result<std::optional<core::wire::Reply>>;
  return closed_ ? R(std::nullopt) : R::Error("no reply from the master within 30s");
}

// --- FakeMaster ------------------------------------------------------------------------------

FakeMaster::FakeMaster(const std::string& path, Script script) : script_(std::move(script)) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof addr.sun_path) throw std::runtime_error("socket path too long");
  std::memcpy(addr.sun_path, path.c_str(), path.size());
  listen_fd_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (listen_fd_ < 0 || ::bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      ::listen(listen_fd_, 16) != 0 || ::pipe2(stop_pipe_, O_CLOEXEC) != 0) {
    throw std::runtime_error(std::string("fake master: ") + std::strerror(errno));
  }
  thread_ = std::thread([this] { Serve(); });
}

FakeMaster::~FakeMaster() {
  (void)!::write(stop_pipe_[1], "x", 1);
  thread_.join();
  ::close(listen_fd_);
  ::close(stop_pipe_[0]);
  ::close(stop_pipe_[1]);
}

std::vector<Request> FakeMaster::requests() const {
  std::lock_guard<std::mutex> lock(mu_);
  return requests_;
}

std::vector<std::string> FakeMaster::lines() const {
  std::lock_guard<std::mutex> lock(mu_);
  return lines_;
}

void FakeMaster::Serve() {
  for (;;) {
    pollfd p[2] = {{listen_fd_, POLLIN, 0}, {stop_pipe_[0], POLLIN, 0}};
    if (::poll(p, 2, -1) < 0 && errno != EINTR) return;
    if (p[1].revents != 0) return;
    if (p[0].revents == 0) continue;
    const int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) continue;
    ++connections_;
    ServeConnection(fd);
    ::close(fd);
  }
}

void FakeMaster::ServeConnection(int fd) {
  core::wire::LineBuffer buffer;
  for (;;) {
    pollfd p[2] = {{fd, POLLIN, 0}, {stop_pipe_[0], POLLIN, 0}};
    if (::poll(p, 2, -1) < 0 && errno != EINTR) return;
    if (p[1].revents != 0) return;
    if (p[0].revents == 0) continue;
    char chunk[4096];
    const ssize_t n = ::read(fd, chunk, sizeof chunk);
    if (n <= 0) return;
    buffer.Append(std::string_view(chunk, static_cast<size_t>(n)));
    while (std::optional<std::string> line = buffer.NextLine()) {
      const core::wire::ParseResult parsed = Decode(*line);
      {
        std::lock_guard<std::mutex> lock(mu_);
        lines_.push_back(core::wire::Unescape(*line));
        if (parsed.kind == core::wire::ParseResult::Kind::kOk) requests_.push_back(parsed.request);
      }
      if (parsed.kind != core::wire::ParseResult::Kind::kOk) {
        const std::string bad =
            core::wire::EncodeReply(Reply{"Could not parse command", {}, false, false});
        (void)!::send(fd, bad.data(), bad.size(), MSG_NOSIGNAL);
        continue;
      }
      Answer answer = script_(parsed.request);
      const bool close = answer.close;
      const std::chrono::milliseconds pause = answer.pause;
      bool first = true;
      for (const std::string& out : Encode(parsed.request, std::move(answer))) {
        if (!first && pause.count() > 0) {
          // Sleep, but wake for the destructor.
          pollfd stop{stop_pipe_[0], POLLIN, 0};
          if (::poll(&stop, 1, static_cast<int>(pause.count())) > 0) return;
        }
        first = false;
        if (::send(fd, out.data(), out.size(), MSG_NOSIGNAL) < 0) return;
      }
      if (close) return;
    }
  }
}

}  // namespace einhorn::test
