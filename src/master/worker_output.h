// --worker-output prefix|json and --worker-log-dir: the master reads each worker's stdout and
// stderr from a pipe of its own and relays whole lines (core/worker_output.h has the rules).
//
// - Where lines go: under prefix and json, to the master's stderr (its log stream), tagged;
//   under inherit (pipes only because of --worker-log-dir), as they were written, to the
//   master's stdout or stderr like the worker's own stream. With --worker-log-dir, each slot's
//   lines also go to DIR/slot-N.log (text, or json under json), opened through sys/safe_path.h.
// - Flow control: one read of at most kReadChunk bytes per pipe per turn of the loop, and the
//   lines written before the next read. A worker that writes faster than the master relays
//   fills its pipe and blocks in write(2); the master holds at most kMaxWorkerLineBytes of a
//   pending line per pipe, so its memory does not grow with what workers write.
// - A worker that exits: its pipes are read to the end (or as far as the kernel has them: a
//   descendant may still hold the write end, and the pipe is then watched until it closes) before
//   the exit is handled, and a last line without a newline is relayed too.
// - Log files: a file that cannot be opened or written (a symlink, someone else's file in a
//   shared directory, a FIFO, a full disk) loses those lines, never the master; the error is
//   logged at a limited rate and the file is tried again after kRetryAfter or on Reopen (USR1).
// - A master re-exec carries each pipe's fd and half-read line (Export, Restore).
#pragma once

#include <uv.h>

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/log_limit.h"
#include "core/options.h"
#include "core/status.h"
#include "core/worker_output.h"
#include "sys/posix.h"

namespace einhorn::master {

class WorkerOutputRelay {
 public:
  static constexpr size_t kReadChunk = 4 * 1024;

  struct Settings {
    core::WorkerOutput mode = core::WorkerOutput::kInherit;
    std::string log_dir;  // empty: no files
    pid_t master_pid = 0;
    bool journal = false;  // text lines get sd-daemon priority prefixes
  };

  WorkerOutputRelay(uv_loop_t* loop, Settings settings);
  ~WorkerOutputRelay();
  WorkerOutputRelay(const WorkerOutputRelay&) = delete;
  WorkerOutputRelay& operator=(const WorkerOutputRelay&) = delete;

  // Whether new workers get pipes (prefix, json, or a log directory).
  bool Wanted() const;

  // A new worker's two pipes: the write ends go to the spawn plan and are closed by the caller
  // after the spawn; the read ends go to Attach (or are closed when the spawn failed). All
  // CLOEXEC.
  struct Pipes {
    int out_read = -1, out_write = -1, err_read = -1, err_write = -1;
  };
  core::Result<Pipes> Open();
  // Starts relaying the read ends (owned from now on) for the worker `tag` (stream ignored).
  void Attach(const core::WorkerTag& tag, int out_read, int err_read);

  // The worker has exited: its pipes are read as far as they go, before the caller goes on.
  void WorkerExited(pid_t pid);

  // SIGUSR1: every log file is closed and opened again at its next line (logrotate's
  // create/copytruncate both work). Returns the number of files closed.
  size_t Reopen();

  // Across a master re-exec: each pipe's fd (left open), tag and half-read line.
  struct Carried {
    core::WorkerTag tag;
    int fd = -1;
    std::string pending;
    bool dropping = false;
  };
  std::vector<Carried> Export() const;
  void Restore(const Carried& carried);

  // At exit: what the pipes still hold is relayed, and they are closed.
  void Close();

  size_t open_pipes() const { return pipes_.size(); }

 private:
  struct Pipe;
  struct LogFile {
    sys::UniqueFd fd;
    bool failed = false;
    bool reported = false;          // this failure was logged (once per file, until it works)
    std::uint64_t retry_at_ns = 0;  // uv_hrtime
  };

  void Watch(const core::WorkerTag& tag, int fd, core::LineSplitter splitter);
  // One read; false once the pipe is finished (EOF or an error) and closed.
  bool ReadOnce(Pipe* pipe);
  // Reads what the pipe holds (up to kMaxDrainBytes); at EOF, or with `finish`, relays the
  // partial line and closes it.
  void Drain(Pipe* pipe, bool finish);
  void Relay(Pipe* pipe, std::string_view bytes, bool eof);
  void AppendLine(const core::WorkerTag& tag, std::string_view line, core::LineMarks marks);
  void Flush(const core::WorkerTag& tag);
  void WriteFile(int slot);
  void Forget(Pipe* pipe);
  void StampTime();
  void FileError(LogFile& file, const std::string& what);

  uv_loop_t* loop_;
  Settings settings_;
  std::map<int, Pipe*> pipes_;  // by fd
  std::map<int, LogFile> files_;  // by slot
  std::vector<char> buffer_;
  std::string to_stderr_;
  std::string to_stdout_;
  std::string to_file_;
  std::string time_text_;  // local, the master's text format
  std::string time_utc_;   // json
  core::LogLimiter file_errors_;
};

}  // namespace einhorn::master
