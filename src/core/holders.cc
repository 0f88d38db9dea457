#include "core/holders.h"

#include <charconv>

namespace einhorn::core {
namespace {

std::vector<std::string_view> Fields(std::string_view line) {
  std::vector<std::string_view> out;
  size_t i = 0;
  while (i < line.size() && out.size() < 32) {
    while (i < line.size() && (line[i] == ' ' || line[i] == '\t')) ++i;
    const size_t start = i;
    while (i < line.size() && line[i] != ' ' && line[i] != '\t') ++i;
    if (i > start) out.push_back(line.substr(start, i - start));
  }
  return out;
}

template <typename T>
bool Number(std::string_view text, T* out, int base = 10) {
  if (text.empty()) return false;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), *out, base);
  return ec == std::errc() && end == text.data() + text.size();
}

template <typename F>
void ForEachLine(std::string_view text, F f) {
  size_t start = 0;
  while (start < text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string_view::npos) end = text.size();
    f(text.substr(start, end - start));
    start = end + 1;
  }
}

}  // namespace

std::vector<std::uint64_t> SocketInodesOnPort(std::string_view proc_net_tcp, int port) {
  std::vector<std::uint64_t> inodes;
  ForEachLine(proc_net_tcp, [&](std::string_view line) {
    // sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode ...
    const std::vector<std::string_view> f = Fields(line);
    if (f.size() < 10) return;
    const std::string_view local = f[1];
    const size_t colon = local.rfind(':');
    unsigned local_port = 0;
    if (colon == std::string_view::npos || !Number(local.substr(colon + 1), &local_port, 16)) {
      return;  // the header, or junk
    }
    std::uint64_t inode = 0;
    if (static_cast<int>(local_port) != port || !Number(f[9], &inode) || inode == 0) return;
    for (std::uint64_t seen : inodes) {
      if (seen == inode) return;
    }
    inodes.push_back(inode);
  });
  return inodes;
}

std::vector<long> LockHolderPids(std::string_view proc_locks, unsigned major, unsigned minor,
                                 std::uint64_t inode) {
  std::vector<long> pids;
  ForEachLine(proc_locks, [&](std::string_view line) {
    // "1: FLOCK  ADVISORY  WRITE 1234 08:02:131090 0 EOF"; a waiter has "->" after the number.
    const std::vector<std::string_view> f = Fields(line);
    if (f.size() < 6 || f[1] == "->") return;
    long pid = 0;
    if (!Number(f[4], &pid) || pid <= 0) return;
    const std::string_view id = f[5];
    const size_t a = id.find(':');
    const size_t b = a == std::string_view::npos ? a : id.find(':', a + 1);
    if (b == std::string_view::npos) return;
    unsigned maj = 0, min = 0;
    std::uint64_t ino = 0;
    if (!Number(id.substr(0, a), &maj, 16) || !Number(id.substr(a + 1, b - a - 1), &min, 16) ||
        !Number(id.substr(b + 1), &ino)) {
      return;
    }
    if (maj == major && min == minor && ino == inode) pids.push_back(pid);
  });
  return pids;
}

std::string CommandLineText(std::string_view cmdline, size_t max) {
  while (!cmdline.empty() && cmdline.back() == '\0') cmdline.remove_suffix(1);
  std::string out;
  for (char c : cmdline.substr(0, max)) {
    const auto u = static_cast<unsigned char>(c);
    out += c == '\0' ? ' ' : (u < 0x20 || u == 0x7f) ? '?' : c;
  }
  if (cmdline.size() > max) out += "...";
  return out;
}

std::string HeldBy(const std::vector<Holder>& holders) {
  if (holders.empty()) return "held by another process";
  const Holder& first = holders.front();
  std::string text = "held by pid " + std::to_string(first.pid);
  if (!first.command.empty()) text += " (" + first.command + ")";
  const size_t others = holders.size() - 1;
  if (others > 0) {
    text +=
        " and " + std::to_string(others) + (others == 1 ? " other process" : " other processes");
  }
  return text;
}

}  // namespace einhorn::core
