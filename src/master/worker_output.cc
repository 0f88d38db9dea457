#include "master/worker_output.h"

#include <fcntl.h>
#include <poll.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>

#include "core/events.h"
#include "sys/safe_path.h"

namespace einhorn::master {
namespace {

// A log file that failed is tried again this long after, or at the next USR1.
constexpr std::uint64_t kRetryAfterNs = 10'000'000'000ULL;
// WorkerExited reads at most this much from one pipe: a descendant of the worker that keeps
// writing to the inherited pipe must not hold the loop; the rest comes through the watcher.
constexpr size_t kMaxDrainBytes = 1 << 20;

// Writes all of `data` to `fd`, which may be non-blocking (a stderr shared with a program that
// set O_NONBLOCK on it): then it waits for room, as a blocking write would. False on an error
// (the reader went away: EPIPE, SIGPIPE being ignored).
bool WriteOut(int fd, std::string_view data) {
  while (!data.empty()) {
    const ssize_t n = write(fd, data.data(), data.size());
    if (n > 0) {
      data.remove_prefix(static_cast<size_t>(n));
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      pollfd p{fd, POLLOUT, 0};
      poll(&p, 1, 1000);
      continue;
    }
    return false;
  }
  return true;
}

}  // namespace

struct WorkerOutputRelay::Pipe {
  uv_poll_t poll{};
  WorkerOutputRelay* relay = nullptr;
  core::WorkerTag tag;
  int fd = -1;
  core::LineSplitter splitter;
};

WorkerOutputRelay::WorkerOutputRelay(uv_loop_t* loop, Settings settings)
    : loop_(loop), settings_(std::move(settings)), buffer_(kReadChunk) {}

WorkerOutputRelay::~WorkerOutputRelay() = default;

bool WorkerOutputRelay::Wanted() const {
  return settings_.mode != core::WorkerOutput::kInherit || !settings_.log_dir.empty();
}

core::Result<WorkerOutputRelay::Pipes> WorkerOutputRelay::Open() {
  using R = core::Result<Pipes>;
  int out[2];
  int err[2];
  if (pipe2(out, O_CLOEXEC) != 0) return R::Error(sys::PosixError("pipe2", errno));
  if (pipe2(err, O_CLOEXEC) != 0) {
    const int e = errno;
    close(out[0]);
    close(out[1]);
    return R::Error(sys::PosixError("pipe2", e));
  }
  // Only the master's end is non-blocking: the worker's write end stays blocking, so that a
  // full pipe makes the worker wait instead of failing its writes.
  for (int fd : {out[0], err[0]}) fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
  return Pipes{out[0], out[1], err[0], err[1]};
}

void WorkerOutputRelay::Attach(const core::WorkerTag& tag, int out_read, int err_read) {
  core::WorkerTag t = tag;
  t.stream = core::OutputStream::kStdout;
  Watch(t, out_read, core::LineSplitter());
  t.stream = core::OutputStream::kStderr;
  Watch(t, err_read, core::LineSplitter());
}

void WorkerOutputRelay::Watch(const core::WorkerTag& tag, int fd, core::LineSplitter splitter) {
  auto* p = new Pipe;
  p->relay = this;
  p->tag = tag;
  p->fd = fd;
  p->splitter = std::move(splitter);
  p->poll.data = p;
  if (uv_poll_init(loop_, &p->poll, fd) != 0) {
    spdlog::error("worker {}: cannot watch its {} pipe (fd {}); its output there is lost",
                  tag.pid, core::OutputStreamName(tag.stream), fd);
    close(fd);
    delete p;
    return;
  }
  pipes_[fd] = p;
  uv_poll_start(&p->poll, UV_READABLE | UV_DISCONNECT, [](uv_poll_t* h, int status, int) {
    auto* pipe = static_cast<Pipe*>(h->data);
    try {
      if (status < 0) {
        // EBADF and the like: nothing more will come.
        pipe->relay->Relay(pipe, {}, true);
        pipe->relay->Forget(pipe);
        return;
      }
      pipe->relay->ReadOnce(pipe);
    } catch (const std::exception& e) {
      spdlog::error("internal error while relaying worker output: {}", e.what());
    }
  });
}

bool WorkerOutputRelay::ReadOnce(Pipe* pipe) {
  ssize_t n;
  do {
    n = read(pipe->fd, buffer_.data(), buffer_.size());
  } while (n < 0 && errno == EINTR);
  if (n > 0) {
    Relay(pipe, std::string_view(buffer_.data(), static_cast<size_t>(n)), false);
    return true;
  }
  if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return true;
  // EOF: every writer is gone. An error (EIO...) ends it the same way.
  Relay(pipe, {}, true);
  Forget(pipe);
  return false;
}

void WorkerOutputRelay::Relay(Pipe* pipe, std::string_view bytes, bool eof) {
  StampTime();
  const core::WorkerTag& tag = pipe->tag;
  pipe->splitter.Feed(bytes, [&](std::string_view line, bool cut) {
    AppendLine(tag, line, core::LineMarks{cut, false});
  });
  if (eof) {
    if (const auto last = pipe->splitter.Finish()) {
      AppendLine(tag, *last, core::LineMarks{false, true});
    }
  }
  Flush(tag);
}

void WorkerOutputRelay::AppendLine(const core::WorkerTag& tag, std::string_view line,
                                   core::LineMarks marks) {
  switch (settings_.mode) {
    case core::WorkerOutput::kPrefix:
      core::AppendTextWorkerLine(to_stderr_, time_text_, settings_.master_pid, settings_.journal,
                                 tag, line, marks);
      break;
    case core::WorkerOutput::kJson:
      core::AppendJsonWorkerLine(to_stderr_, time_utc_, tag, line, marks);
      break;
    case core::WorkerOutput::kInherit: {
      // As the worker wrote it, to the stream it wrote it to; a cut line keeps its mark.
      std::string& out = tag.stream == core::OutputStream::kStdout ? to_stdout_ : to_stderr_;
      out += line;
      if (marks.cut) out += " [cut at 16384 bytes]";
      out += '\n';
      break;
    }
  }
  if (settings_.log_dir.empty()) return;
  if (settings_.mode == core::WorkerOutput::kJson) {
    core::AppendJsonWorkerLine(to_file_, time_utc_, tag, line, marks);
  } else {
    core::AppendTextWorkerLine(to_file_, time_text_, settings_.master_pid, false, tag, line,
                               marks);
  }
}

void WorkerOutputRelay::Flush(const core::WorkerTag& tag) {
  // A reader of ours that went away (EPIPE) loses these lines, as the master's own log does.
  if (!to_stdout_.empty()) WriteOut(STDOUT_FILENO, to_stdout_);
  if (!to_stderr_.empty()) WriteOut(STDERR_FILENO, to_stderr_);
  to_stdout_.clear();
  to_stderr_.clear();
  if (!to_file_.empty()) WriteFile(tag.slot);
  to_file_.clear();
  // A burst of long lines must not leave a large buffer behind for good.
  for (std::string* s : {&to_stdout_, &to_stderr_, &to_file_}) {
    if (s->capacity() > 4 * kReadChunk) s->shrink_to_fit();
  }
}

void WorkerOutputRelay::WriteFile(int slot) {
  LogFile& f = files_[slot];
  const std::string path = settings_.log_dir + "/" + core::WorkerLogFileName(slot);
  if (!f.fd.valid()) {
    if (f.failed && uv_hrtime() < f.retry_at_ns) return;  // lost while the file is failing
    auto parent = sys::OpenParent(path);
    if (!parent.ok()) {
      f.failed = true;
      f.retry_at_ns = uv_hrtime() + kRetryAfterNs;
      return FileError(f, "cannot open worker log " + path + ": " + parent.error());
    }
    struct stat st {};
    auto opened = sys::OpenEntry(parent.value(), O_WRONLY | O_CREAT | O_APPEND, 0640,
                                 "worker log " + path, &st);
    if (opened.ok() && !S_ISREG(st.st_mode)) {
      // A FIFO or a device: a write there could block the loop, or go nowhere we know.
      opened = core::Result<sys::UniqueFd>::Error("worker log " + path +
                                                 ": not a regular file; refused");
    }
    if (!opened.ok()) {
      f.failed = true;
      f.retry_at_ns = uv_hrtime() + kRetryAfterNs;
      return FileError(f, opened.error());
    }
    f.fd = std::move(opened).value();
    if (f.reported) spdlog::info("worker log {}: writing again", path);
    f.failed = false;
    f.reported = false;
  }
  if (!WriteOut(f.fd.get(), to_file_)) {
    const int e = errno;
    f.fd.reset();
    f.failed = true;
    f.retry_at_ns = uv_hrtime() + kRetryAfterNs;
    FileError(f, "cannot write worker log " + path + ": " + sys::ErrnoText(e) +
              "; its lines are dropped until it works again");
  }
}

void WorkerOutputRelay::FileError(LogFile& file, const std::string& what) {
  // The first failure of each file is always told (there is one file per slot); its retries,
  // every kRetryAfterNs, and the other files' go through the limiter.
  if (!file.reported) {
    file.reported = true;
    spdlog::error("{}", what);
    return;
  }
  const core::Time now{static_cast<core::Time::rep>(uv_hrtime())};
  const core::LogLimiter::Verdict v = file_errors_.Note(now);
  if (v.ended && v.ended->unlogged > 0) {
    spdlog::error("worker logs: {} errors in the previous run", v.ended->count);
  }
  if (!v.log) return;
  spdlog::error("{}{}", what,
                v.count == 1 ? std::string()
                             : " (" + std::to_string(v.count) + " worker log errors in this run)");
}

void WorkerOutputRelay::StampTime() {
  timespec ts{};
  clock_gettime(CLOCK_REALTIME, &ts);
  const std::int64_t ns = static_cast<std::int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
  time_utc_ = core::FormatUtc(ns);
  tm local{};
  localtime_r(&ts.tv_sec, &local);
  char buf[40];
  const size_t n = strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &local);
  time_text_.assign(buf, n);
  char ms[8];
  std::snprintf(ms, sizeof ms, ".%03d", static_cast<int>((ts.tv_nsec / 1'000'000) % 1000));
  time_text_ += ms;
}

void WorkerOutputRelay::Drain(Pipe* p, bool finish) {
  size_t read_total = 0;
  while (read_total < kMaxDrainBytes) {
    ssize_t n;
    do {
      n = read(p->fd, buffer_.data(), buffer_.size());
    } while (n < 0 && errno == EINTR);
    if (n > 0) {
      read_total += static_cast<size_t>(n);
      Relay(p, std::string_view(buffer_.data(), static_cast<size_t>(n)), false);
      continue;
    }
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;  // a descendant holds it
    // EOF (or an error): finished.
    finish = true;
    break;
  }
  if (!finish) return;
  Relay(p, {}, true);
  Forget(p);
}

void WorkerOutputRelay::WorkerExited(pid_t pid) {
  std::vector<Pipe*> mine;
  for (const auto& [fd, p] : pipes_) {
    if (p->tag.pid == pid) mine.push_back(p);
  }
  for (Pipe* p : mine) Drain(p, false);
}

size_t WorkerOutputRelay::Reopen() {
  size_t closed = 0;
  for (auto& [slot, f] : files_) {
    if (f.fd.valid()) ++closed;
    f.fd.reset();
    f.failed = false;
  }
  return closed;
}

std::vector<WorkerOutputRelay::Carried> WorkerOutputRelay::Export() const {
  std::vector<Carried> out;
  for (const auto& [fd, p] : pipes_) {
    out.push_back(Carried{p->tag, fd, p->splitter.pending(), p->splitter.dropping()});
  }
  return out;
}

void WorkerOutputRelay::Restore(const Carried& c) {
  fcntl(c.fd, F_SETFD, FD_CLOEXEC);
  fcntl(c.fd, F_SETFL, fcntl(c.fd, F_GETFL) | O_NONBLOCK);
  Watch(c.tag, c.fd, core::LineSplitter(c.pending, c.dropping));
}

void WorkerOutputRelay::Close() {
  // What is there now is relayed; a pipe still open elsewhere ends with its partial line.
  while (!pipes_.empty()) Drain(pipes_.begin()->second, true);
  files_.clear();
}

void WorkerOutputRelay::Forget(Pipe* p) {
  pipes_.erase(p->fd);
  uv_poll_stop(&p->poll);
  uv_close(reinterpret_cast<uv_handle_t*>(&p->poll), [](uv_handle_t* h) {
    auto* pipe = static_cast<Pipe*>(h->data);
    close(pipe->fd);
    delete pipe;
  });
}

}  // namespace einhorn::master
