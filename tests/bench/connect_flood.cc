// A start under a flood of connections: how long a master takes to have N children while a
// peer connects to its command socket and closes, without pause. Built by
// tests/bench/flood_start.sh with plain g++ (libc and the standard library only).
//
//   connect_flood SOCK MASTER_PID N [alone]
//       flood SOCK from the moment it is called until MASTER_PID has N children
//       (/proc/PID/task/PID/children, polled every millisecond; at most 120 s), then print the
//       time and the connections; with `alone`, the same wait and time without the flood
//
// One line: "flood      children N after S s, C connections (R a second)", or
// "alone      children N after S s".
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>

namespace {

int Children(const std::string& file) {
  std::ifstream in(file);
  int n = 0;
  for (long pid = 0; in >> pid;) ++n;
  return n;
}

}  // namespace

int main(int argc, char** argv) {
  const bool alone = argc == 5 && std::string(argv[4]) == "alone";
  if (argc != 4 && !alone) {
    std::fprintf(stderr, "usage: connect_flood SOCK MASTER_PID N [alone]\n");
    return 2;
  }
  const std::string path = argv[1];
  const std::string pid = argv[2];
  const int want = std::atoi(argv[3]);
  const std::string children = "/proc/" + pid + "/task/" + pid + "/children";
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof addr.sun_path) return 2;
  path.copy(addr.sun_path, path.size());

  std::atomic<bool> stop{alone};
  std::atomic<long> connected{0};
  std::thread flood([&] {
    while (!stop) {
      const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
      if (fd < 0) continue;
      if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0) ++connected;
      ::close(fd);
    }
  });
  const auto t0 = std::chrono::steady_clock::now();
  const auto deadline = t0 + std::chrono::seconds(120);
  int n = 0;
  while ((n = Children(children)) < want && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  stop = true;
  flood.join();
  if (alone) {
    std::printf("alone      children %d after %.3f s\n", n, s);
  } else {
    std::printf("flood      children %d after %.3f s, %ld connections (%.0f a second)\n", n, s,
                connected.load(), static_cast<double>(connected.load()) / s);
  }
  return n >= want ? 0 : 1;
}
