#include "ctl/client.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <dirent.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <fmt/format.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <optional>

namespace einhorn::ctl {
namespace {

using core::Result;
using core::Status;
using core::wire::Reply;
using Clock = std::chrono::steady_clock;

// A status reply carries one row per worker in a single line: 1,000 workers are ~150 KB, more
// than the master's request cap (wire::kMaxLineBytes), so the client allows far longer lines.
constexpr size_t kMaxReplyLine = 64 * 1024 * 1024;

std::string Hint() { return " (is einhorn-cpp running? use -d PATH or -c NAME)"; }

std::string SecondsText(double s) { return fmt::format("{:g}s", s); }

// Long or binary junk must not flood the terminal.
std::string Excerpt(const std::string& line) {
  constexpr size_t kMax = 120;
  std::string out = line.substr(0, kMax);
  for (char& c : out) {
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) c = '?';
  }
  return line.size() > kMax ? out + "..." : out;
}

// Other sockets named einhorn*.sock in the directory of `path`: a master started with -c NAME
// while we looked for the default, say. Only root's and our own, at most 5, sorted, names of
// at most 64 bytes, cleaned.
std::vector<std::string> NeighbourSockets(const std::string& path) {
  std::vector<std::string> found;
  const size_t slash = path.rfind('/');
  const std::string dir = slash == std::string::npos ? "." : path.substr(0, slash + 1);
  DIR* d = ::opendir(dir.c_str());
  if (d == nullptr) return found;
  size_t seen = 0;
  while (const dirent* e = ::readdir(d)) {
    if (++seen > 10000) break;  // a huge $TMPDIR costs no more than this
    const std::string name = e->d_name;
    if (!name.starts_with("einhorn") || !name.ends_with(".sock") || name.size() > 64) continue;
    if (dir + name == path) continue;
    struct stat st {};
    if (::fstatat(dirfd(d), name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISSOCK(st.st_mode)) {
      continue;
    }
    // In a shared $TMPDIR anyone can make a socket look like a master's: only root's and our
    // own are suggested.
    if (st.st_uid != 0 && st.st_uid != ::geteuid()) continue;
    found.push_back(Excerpt(name));
  }
  ::closedir(d);
  std::sort(found.begin(), found.end());
  if (found.size() > 5) found.resize(5);
  return found;
}

ConnectFailure DescribeFailure(const std::string& path, int err) {
  ConnectFailure f;
  f.path = path;
  f.err = err;
  f.self_uid = ::geteuid();
  struct stat st {};
  if (::lstat(path.c_str(), &st) == 0) {
    f.stat_ok = true;
    f.owner = st.st_uid;
    f.mode = st.st_mode & 07777;
    f.is_socket = S_ISSOCK(st.st_mode);
  }
  if (err == ENOENT) f.neighbours = NeighbourSockets(path);
  return f;
}

class SocketConnection : public Connection {
 public:
  SocketConnection(int fd, bool owned, bool shared, double timeout_seconds)
      : fd_(fd),
        owned_(owned),
        shared_(shared),
        timeout_seconds_(timeout_seconds),
        reply_timeout_seconds_(timeout_seconds),
        buffer_(kMaxReplyLine) {}
  ~SocketConnection() override {
    if (owned_) ::close(fd_);
  }
  SocketConnection(const SocketConnection&) = delete;
  SocketConnection& operator=(const SocketConnection&) = delete;

  Status Send(const std::string& line) override {
    size_t done = 0;
    while (done < line.size()) {
      // MSG_NOSIGNAL: a master that went away is an error to report, not a SIGPIPE.
      ssize_t n = ::send(fd_, line.data() + done, line.size() - done, MSG_NOSIGNAL);
      if (n < 0 && errno == ENOTSOCK) n = ::write(fd_, line.data() + done, line.size() - done);
      if (n < 0) {
        if (errno == EINTR) continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
          return Status::Error("the master stopped reading (no progress within " +
                               SecondsText(timeout_seconds_) + ")");
        }
        if (errno == EPIPE || errno == ECONNRESET) {
          // A master that turns a peer away (permission, too many connections) answers at
          // once and closes, often before the request is out: its reason is already waiting
          // here, and is what the user must see, not "the master closed the connection".
          if (TakeWaitingReply()) return Status::Ok();
          return Status::Error("the master closed the connection");
        }
        return Status::Error(std::string("cannot send to the master: ") + std::strerror(errno));
      }
      done += static_cast<size_t>(n);
    }
    return Status::Ok();
  }

  Result<Reply> Receive() override {
    const std::optional<Clock::time_point> deadline =
        reply_timeout_seconds_ ? std::optional(After(*reply_timeout_seconds_)) : std::nullopt;
    for (;;) {
      if (std::optional<std::string> line = buffer_.NextLine()) {
        std::optional<Reply> reply = core::wire::ParseReply(*line);
        if (!reply)
          return Result<Reply>::Error("unreadable reply from the master: " + Excerpt(*line));
        return *reply;
      }
      if (buffer_.overflowed()) return Result<Reply>::Error("reply from the master is too long");
      if (eof_) {
        return Result<Reply>::Error(buffer_.pending_bytes() > 0
                                        ? "the master closed the connection mid-reply"
                                        : "the master closed the connection");
      }
      const Status read = ReadSome(deadline, reply_timeout_seconds_.value_or(0), /*keep=*/true);
      if (!read.ok()) return Result<Reply>(read);
    }
  }

  void SetReplyTimeout(std::optional<double> seconds) override { reply_timeout_seconds_ = seconds; }

  Result<std::optional<Reply>> AwaitClose() override {
    using R = Result<std::optional<Reply>>;
    if (shared_) return R(std::nullopt);
    const Clock::time_point deadline = After(timeout_seconds_);
    std::optional<Reply> first;
    for (;;) {
      if (!first) {
        if (std::optional<std::string> line = buffer_.NextLine()) {
          first = core::wire::ParseReply(*line);
          if (!first) return R::Error("unreadable reply from the master: " + Excerpt(*line));
        }
      }
      if (eof_) break;
      const Status read =
          ReadSome(deadline, timeout_seconds_, /*keep=*/!first && !buffer_.overflowed());
      if (!read.ok()) return R(read);
    }
    return R(std::move(first));
  }

 private:
  static Clock::time_point After(double seconds) {
    return Clock::now() +
           std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds));
  }

  // After a failed send: reads what the master sent before it closed, without waiting. True if
  // that holds a whole reply line, which the next Receive returns (then the end of the stream).
  bool TakeWaitingReply() {
    char chunk[64 * 1024];
    for (;;) {
      const ssize_t n = ::recv(fd_, chunk, sizeof chunk, MSG_DONTWAIT);
      if (n > 0) {
        buffer_.Append(std::string_view(chunk, static_cast<size_t>(n)));
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      if (n == 0 || errno == ECONNRESET || errno == EPIPE) eof_ = true;
      break;
    }
    return buffer_.pending().find('\n') != std::string_view::npos;
  }

  // Waits for bytes until `deadline` (none: for ever), which is `seconds` after the wait began;
  // appends them to the line buffer when `keep`. Sets eof_.
  Status ReadSome(const std::optional<Clock::time_point>& deadline, double seconds, bool keep) {
    int poll_ms = -1;
    if (deadline) {
      const auto left = std::chrono::ceil<std::chrono::milliseconds>(*deadline - Clock::now());
      if (left.count() <= 0) {
        return Status::Error("no reply from the master within " + SecondsText(seconds));
      }
      poll_ms = static_cast<int>(std::min<long long>(left.count(), 1 << 30));
    }
    pollfd p{fd_, POLLIN, 0};
    const int ready = ::poll(&p, 1, poll_ms);
    if (ready < 0 && errno != EINTR) {
      return Status::Error(std::string("poll: ") + std::strerror(errno));
    }
    if (ready <= 0) return Status::Ok();  // the caller re-checks the deadline
    char chunk[64 * 1024];
    const ssize_t n = ::read(fd_, chunk, sizeof chunk);
    if (n == 0 || (n < 0 && errno == ECONNRESET)) {
      eof_ = true;
    } else if (n < 0) {
      if (errno != EINTR && errno != EAGAIN && errno != EWOULDBLOCK) {
        return Status::Error(std::string("cannot read from the master: ") + std::strerror(errno));
      }
    } else if (keep) {
      buffer_.Append(std::string_view(chunk, static_cast<size_t>(n)));
    }
    return Status::Ok();
  }

  int fd_;
  bool owned_;
  bool shared_;
  double timeout_seconds_;                       // connect, send, AwaitClose
  std::optional<double> reply_timeout_seconds_;  // each Receive (none: no limit)
  core::wire::LineBuffer buffer_;
  bool eof_ = false;
};

}  // namespace

Result<std::unique_ptr<Connection>> ConnectUnix(const std::string& path, double timeout_seconds) {
  using R = Result<std::unique_ptr<Connection>>;
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.empty() || path.size() >= sizeof addr.sun_path) {
    return R::Error("cannot connect to " + path + ": not a usable UNIX socket path (1 to " +
                    std::to_string(sizeof addr.sun_path - 1) + " bytes)" + Hint());
  }
  std::memcpy(addr.sun_path, path.data(), path.size());
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return R::Error(std::string("socket: ") + std::strerror(errno));
  auto conn =
      std::make_unique<SocketConnection>(fd, /*owned=*/true, /*shared=*/false, timeout_seconds);
  // On a UNIX socket SO_SNDTIMEO also bounds a blocking connect() to a master whose backlog is
  // full (Linux waits on the send timeout there), as well as every later send().
  const double whole = std::floor(timeout_seconds);
  timeval tv{};
  tv.tv_sec = static_cast<time_t>(whole);
  tv.tv_usec = static_cast<suseconds_t>((timeout_seconds - whole) * 1e6);
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  int rc;
  do {
    rc = ::connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr);
  } while (rc < 0 && errno == EINTR);
  if (rc < 0) {
    const int err = errno;
    if (err == EAGAIN) {
      return R::Error("cannot connect to " + path + ": the master is not accepting connections" +
                      " (no answer within " + SecondsText(timeout_seconds) + ")");
    }
    return R::Error(ConnectFailureText(DescribeFailure(path, err)));
  }
  return R(std::move(conn));
}

std::string ConnectFailureText(const ConnectFailure& f) {
  const std::string& path = f.path;
  switch (f.err) {
    case ENOENT:
    case ENOTDIR: {
      std::string text = "no master at " + path + " (no such socket";
      if (f.neighbours.empty()) return text + "; is einhorn-cpp running? use -d PATH or -c NAME)";
      text += "; sockets beside it:";
      for (size_t i = 0; i < f.neighbours.size(); ++i) {
        const std::string& n = f.neighbours[i];
        text += (i ? ", " : " ") + n;
        // einhorn-NAME.sock is what -c NAME names.
        if (n.starts_with("einhorn-") && n.size() > 13) {
          text += " (-c " + n.substr(8, n.size() - 13) + ")";
        }
      }
      return text + ")";
    }
    case ECONNREFUSED:
      if (f.stat_ok && !f.is_socket) {
        return "no master at " + path + " (it is not a socket; use -d PATH or -c NAME)";
      }
      return "no master at " + path +
             " (a socket file is there but nothing listens: the master that made it has "
             "exited; start one, or use -d PATH or -c NAME)";
    case EACCES:
    case EPERM: {
      if (!f.stat_ok) {
        return "permission denied on " + path + " (a directory on its path is not searchable " +
               "by uid " + std::to_string(f.self_uid) + ")";
      }
      return fmt::format(
          "permission denied on {} (socket owned by uid {}, mode {:04o}; you are uid {}: run "
          "einhornctl as uid {} or root, or start the master with --control-allow-uid {})",
          path, f.owner, f.mode, f.self_uid, f.owner, f.self_uid);
    }
    default:
      return "cannot connect to " + path + ": " + std::strerror(f.err) + Hint();
  }
}

Result<std::unique_ptr<Connection>> AdoptFd(int fd, double timeout_seconds) {
  using R = Result<std::unique_ptr<Connection>>;
  if (fd < 0 || ::fcntl(fd, F_GETFD) < 0) {
    return R::Error("EINHORN_SOCK_FD=" + std::to_string(fd) +
                    " is not an open file descriptor (einhorn -g passes it to workers only;"
                    " use -d PATH otherwise)");
  }
  return R(
      std::make_unique<SocketConnection>(fd, /*owned=*/false, /*shared=*/true, timeout_seconds));
}

}  // namespace einhorn::ctl
