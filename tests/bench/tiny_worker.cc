// The smallest worker for tests/bench/scale5000.sh: no listener, no threads, no allocation
// after start. With --ack it says worker:ack on EINHORN_SOCK_PATH once (as Einhorn's client
// libraries do: connect, one line, close); then it waits for a signal. The drain signal
// (USR2), TERM and INT end it with 0. Built by build_tool (plain g++, libc only).
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <initializer_list>

namespace {

volatile sig_atomic_t stop = 0;
void OnStop(int) { stop = 1; }

void Ack() {
  const char* path = std::getenv("EINHORN_SOCK_PATH");
  if (path == nullptr || *path == '\0') {
    std::fprintf(stderr, "tiny_worker: --ack: EINHORN_SOCK_PATH is not set\n");
    _exit(2);
  }
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (std::strlen(path) >= sizeof addr.sun_path) _exit(2);
  std::strcpy(addr.sun_path, path);
  const int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0 || connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    std::perror("tiny_worker: connect");
    _exit(2);
  }
  char line[96];
  const int n = std::snprintf(line, sizeof line, "{\"command\":\"worker:ack\",\"pid\":%d}\n",
                              static_cast<int>(getpid()));
  if (write(fd, line, static_cast<size_t>(n)) != n) _exit(2);
  close(fd);
}

}  // namespace

int main(int argc, char** argv) {
  // Blocked until sigsuspend, so a signal between the check and the wait is not lost.
  sigset_t stops, old;
  sigemptyset(&stops);
  for (const int s : {SIGUSR2, SIGTERM, SIGINT}) sigaddset(&stops, s);
  sigprocmask(SIG_BLOCK, &stops, &old);
  struct sigaction sa {};
  sa.sa_handler = OnStop;
  sigaction(SIGUSR2, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
  sigaction(SIGINT, &sa, nullptr);
  if (argc > 1 && std::strcmp(argv[1], "--ack") == 0) Ack();
  while (!stop) sigsuspend(&old);
  return 0;
}
