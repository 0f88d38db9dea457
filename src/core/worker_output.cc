#include "core/worker_output.h"

#include <charconv>

#include "core/json_text.h"
#include "core/log_line.h"

namespace einhorn::core {
namespace {

void AppendInt(std::string& out, long long v) {
  char buf[24];
  const auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v);
  if (ec == std::errc()) out.append(buf, end);
}

const char kCutMark[] = " [cut at 16384 bytes]";
static_assert(kMaxWorkerLineBytes == 16384, "kCutMark names the limit");
const char kUnterminatedMark[] = " [no newline at exit]";

}  // namespace

const char* OutputStreamName(OutputStream stream) {
  return stream == OutputStream::kStderr ? "stderr" : "stdout";
}

LineSplitter::LineSplitter(std::string pending, bool dropping, size_t max_line)
    : max_(max_line), pending_(std::move(pending)), dropping_(dropping) {
  if (pending_.size() > max_) pending_.resize(max_);
  if (dropping_) pending_.clear();
}

std::optional<std::string> LineSplitter::Finish() {
  dropping_ = false;
  if (pending_.empty()) return std::nullopt;
  std::string last = std::move(pending_);
  pending_.clear();
  return last;
}

void AppendTextWorkerLine(std::string& out, std::string_view time_text, Pid master_pid,
                          bool journal, const WorkerTag& tag, std::string_view line,
                          LineMarks marks) {
  if (journal) out += JournalPrefix(LogLevel::kInfo);
  out += time_text;
  out += " einhorn-cpp[";
  AppendInt(out, master_pid);
  out += "] info: worker slot=";
  AppendInt(out, tag.slot);
  out += " pid=";
  AppendInt(out, tag.pid);
  out += " gen=";
  AppendInt(out, tag.generation);
  out += ' ';
  out += OutputStreamName(tag.stream);
  out += ": ";
  out += line;
  if (marks.cut) out += kCutMark;
  if (marks.unterminated) out += kUnterminatedMark;
  out += '\n';
}

void AppendJsonWorkerLine(std::string& out, std::string_view time_utc, const WorkerTag& tag,
                          std::string_view line, LineMarks marks) {
  out += "{\"time\": ";
  AppendJsonString(out, time_utc);
  out += ", \"level\": \"info\", \"message\": ";
  AppendJsonString(out, line);
  out += ", \"source\": \"worker\", \"stream\": \"";
  out += OutputStreamName(tag.stream);
  out += "\", \"slot\": ";
  AppendInt(out, tag.slot);
  out += ", \"pid\": ";
  AppendInt(out, tag.pid);
  out += ", \"generation\": ";
  AppendInt(out, tag.generation);
  if (marks.cut) out += ", \"cut\": true";
  if (marks.unterminated) out += ", \"unterminated\": true";
  out += "}\n";
}

std::string WorkerLogFileName(int slot) { return "slot-" + std::to_string(slot) + ".log"; }

}  // namespace einhorn::core
