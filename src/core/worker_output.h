// The workers' output under --worker-output prefix|json (and --worker-log-dir): the master reads
// each worker's stdout and stderr from a pipe and relays whole lines, each tagged with the
// worker's pid, slot (EINHORN_CHILD_INDEX), generation and stream. This is the pure part: cutting
// the bytes of one pipe into lines, and writing one tagged line (master/worker_output.h reads
// the pipes and writes the lines).
//
// The rules, which the documentation states:
//  - A line is the bytes up to a newline, which is not part of it. Lines are only ever emitted
//    whole, so two workers' lines never mix.
//  - A line longer than kMaxWorkerLineBytes is cut: its first kMaxWorkerLineBytes bytes are
//    emitted at once, marked as cut, and the rest up to the next newline is dropped. So a pipe
//    holds at most that many bytes of a pending line, whatever the worker writes.
//  - At the end of the stream (the worker and whatever inherited its stdout have exited), a last
//    line without its newline is emitted too, marked as unterminated.
//  - The bytes of a line are relayed as they are (text), or as a JSON string (json): the master
//    adds a tag of bounded size to each line and never writes lines of its own about them.
// Pure.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "core/types.h"

namespace einhorn::core {

inline constexpr size_t kMaxWorkerLineBytes = 16 * 1024;

enum class OutputStream { kStdout, kStderr };
const char* OutputStreamName(OutputStream stream);  // "stdout", "stderr"

// Cuts one stream into lines. Holds at most max_line bytes between calls.
class LineSplitter {
 public:
  explicit LineSplitter(size_t max_line = kMaxWorkerLineBytes) : max_(max_line) {}
  // Carried across a master re-exec: the pending bytes of a line, and whether the rest of a cut
  // line is being dropped. `pending` is trimmed to max_line.
  LineSplitter(std::string pending, bool dropping, size_t max_line = kMaxWorkerLineBytes);

  // Calls emit(std::string_view line, bool cut) for each line that `bytes` completes, in order.
  // `line` is valid during the call only.
  template <typename Emit>
  void Feed(std::string_view bytes, Emit&& emit);

  // The end of the stream: the pending bytes as a last, unterminated line (nullopt when there
  // are none). The splitter is then empty.
  std::optional<std::string> Finish();

  const std::string& pending() const { return pending_; }
  bool dropping() const { return dropping_; }
  size_t max_line() const { return max_; }

 private:
  size_t max_;
  std::string pending_;
  bool dropping_ = false;  // a cut line's rest, until its newline
};

// Who wrote a line.
struct WorkerTag {
  Pid pid = 0;
  int slot = 0;  // EINHORN_CHILD_INDEX
  int generation = 0;
  OutputStream stream = OutputStream::kStdout;

  bool operator==(const WorkerTag&) const = default;
};

struct LineMarks {
  bool cut = false;           // longer than the limit: the rest was dropped
  bool unterminated = false;  // the stream ended before its newline
};

// One relayed line in the master's text format (core/log_line.h), newline included, appended
// to `out`:
//   [<6>]TIME einhorn-cpp[MASTER_PID] info: worker slot=3 pid=1234 gen=2 stdout: LINE
// with " [cut at 16384 bytes]" and/or " [no newline at exit]" after LINE when marked.
// `time_text` is the master's local time stamp ("2024-05-01T12:00:03.250"); `journal` adds
// sd-daemon's priority prefix.
void AppendTextWorkerLine(std::string& out, std::string_view time_text, Pid master_pid,
                          bool journal, const WorkerTag& tag, std::string_view line,
                          LineMarks marks);

// The same as one JSON object per line, with the master's json log field names:
//   {"time": TIME, "level": "info", "message": LINE, "source": "worker", "stream": "stdout",
//    "slot": 3, "pid": 1234, "generation": 2[, "cut": true][, "unterminated": true]}
// `time_utc` is core::FormatUtc of the wall clock. Bytes that are not UTF-8 are escaped as the
// master's own json lines do.
void AppendJsonWorkerLine(std::string& out, std::string_view time_utc, const WorkerTag& tag,
                          std::string_view line, LineMarks marks);

// --worker-log-dir: the file of one slot, "slot-3.log".
std::string WorkerLogFileName(int slot);

// ---------------------------------------------------------------------------------------

template <typename Emit>
void LineSplitter::Feed(std::string_view bytes, Emit&& emit) {
  while (!bytes.empty()) {
    const size_t nl = bytes.find('\n');
    if (dropping_) {
      if (nl == std::string_view::npos) return;
      dropping_ = false;
      bytes.remove_prefix(nl + 1);
      continue;
    }
    const size_t len = nl == std::string_view::npos ? bytes.size() : nl;
    if (pending_.size() + len > max_) {
      // Too long: the first max_ bytes go now, marked; the rest up to the newline is dropped.
      const size_t take = max_ - pending_.size();
      if (pending_.empty()) {
        emit(bytes.substr(0, max_), true);
      } else {
        pending_.append(bytes.substr(0, take));
        emit(std::string_view(pending_), true);
        pending_.clear();
      }
      if (nl == std::string_view::npos) {
        dropping_ = true;
        return;
      }
      bytes.remove_prefix(nl + 1);
      continue;
    }
    if (nl == std::string_view::npos) {
      pending_.append(bytes);
      return;
    }
    if (pending_.empty()) {
      emit(bytes.substr(0, nl), false);
    } else {
      pending_.append(bytes.substr(0, nl));
      emit(std::string_view(pending_), false);
      pending_.clear();
    }
    bytes.remove_prefix(nl + 1);
  }
}

}  // namespace einhorn::core
