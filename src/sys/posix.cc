#include "sys/posix.h"

#include <errno.h>
#include <unistd.h>

#include <cstring>
#include <utility>

namespace einhorn::sys {

UniqueFd::UniqueFd(UniqueFd&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}

UniqueFd& UniqueFd::operator=(UniqueFd&& other) noexcept {
  if (this != &other) reset(std::exchange(other.fd_, -1));
  return *this;
}

UniqueFd::~UniqueFd() { reset(); }

int UniqueFd::release() { return std::exchange(fd_, -1); }

void UniqueFd::reset(int fd) {
  // close(2) is not retried on EINTR: on Linux the fd is gone either way.
  if (fd_ >= 0 && fd_ != fd) close(fd_);
  fd_ = fd;
}

bool WriteAll(int fd, std::string_view data) {
  size_t done = 0;
  while (done < data.size()) {
    const ssize_t n = write(fd, data.data() + done, data.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    done += static_cast<size_t>(n);
  }
  return true;
}

std::string ErrnoText(int err) { return std::strerror(err); }

std::string PosixError(std::string_view context, int err) {
  std::string text(context);
  text += ": ";
  text += std::strerror(err);
  return text;
}

}  // namespace einhorn::sys
