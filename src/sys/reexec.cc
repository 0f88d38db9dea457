#include "sys/reexec.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <climits>
#include <cstring>

#include "sys/posix.h"
#include "sys/spawn.h"

namespace einhorn::sys {
namespace {

static_assert(sizeof(sigset_t) <= sizeof(SignalMask::bytes));

// What makes a memfd's bytes fixed: with these, a mapping of it cannot change or SIGBUS.
constexpr int kSeals = F_SEAL_SEAL | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE;

}  // namespace

core::Result<int> BytesMemfd(const char* name, std::string_view bytes, bool sealed) {
  using R = core::Result<int>;
  const int fd = memfd_create(name, MFD_CLOEXEC | (sealed ? MFD_ALLOW_SEALING : 0));
  if (fd < 0) return R::Error(PosixError("memfd_create", errno));
  size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t n = write(fd, bytes.data() + done, bytes.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      const int err = errno;
      close(fd);
      return R::Error(PosixError("writing the memfd", err));
    }
    done += static_cast<size_t>(n);
  }
  if (sealed && fcntl(fd, F_ADD_SEALS, kSeals) != 0) {
    const int err = errno;
    close(fd);
    return R::Error(PosixError("sealing the memfd", err));
  }
  return fd;
}

core::Result<FdBytes> FdBytes::Of(int fd, size_t max_bytes) {
  using R = core::Result<FdBytes>;
  FdBytes bytes;
  struct stat st {};
  const int seals = fcntl(fd, F_GET_SEALS);
  if (seals >= 0 && (seals & kSeals) == kSeals && fstat(fd, &st) == 0 && S_ISREG(st.st_mode)) {
    const auto size = static_cast<size_t>(st.st_size);
    if (size > max_bytes) {
      return R::Error("fd " + std::to_string(fd) + " holds more than " +
                      std::to_string(max_bytes) + " bytes");
    }
    if (size == 0) return bytes;
    void* map = mmap(nullptr, size, PROT_READ, MAP_PRIVATE | MAP_POPULATE, fd, 0);
    if (map != MAP_FAILED) {
      bytes.map_ = static_cast<const char*>(map);
      bytes.size_ = size;
      return bytes;
    }
  }
  auto text = ReadWholeFd(fd, max_bytes);
  if (!text.ok()) return R::Error(text.error());
  bytes.read_ = std::move(text.value());
  return bytes;
}

FdBytes::FdBytes(FdBytes&& other) noexcept
    : read_(std::move(other.read_)), map_(other.map_), size_(other.size_) {
  other.map_ = nullptr;
  other.size_ = 0;
}

FdBytes& FdBytes::operator=(FdBytes&& other) noexcept {
  if (this != &other) {
    Release();
    read_ = std::move(other.read_);
    map_ = other.map_;
    size_ = other.size_;
    other.map_ = nullptr;
    other.size_ = 0;
  }
  return *this;
}

FdBytes::~FdBytes() { Release(); }

void FdBytes::Release() {
  if (map_) munmap(const_cast<char*>(map_), size_);
  map_ = nullptr;
  size_ = 0;
  std::string().swap(read_);
}

core::Result<std::string> ReadWholeFd(int fd, size_t max_bytes) {
  using R = core::Result<std::string>;
  std::string out;
  // Read straight into the text, sized from the file's length when it has one (the state's
  // memfd, 620 KB at 1000 workers): grown by doubling through a bounce buffer, its copies and
  // page faults were 0.7 ms of a re-exec'd image's silence. The length is only a hint (a file
  // may grow while read); the limit is what refuses.
  struct stat st {};
  size_t chunk = 64 * 1024;
  if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_size > 0) {
    chunk = std::max(chunk, std::min(static_cast<size_t>(st.st_size), max_bytes) + 1);
  }
  bool seekable = true;
  while (true) {
    const size_t had = out.size();
    out.resize(had + chunk);
    ssize_t n = seekable ? pread(fd, out.data() + had, chunk, static_cast<off_t>(had))
                         : read(fd, out.data() + had, chunk);
    const int err = errno;
    out.resize(had + static_cast<size_t>(std::max<ssize_t>(n, 0)));
    if (n < 0 && err == ESPIPE && seekable) {
      seekable = false;
      continue;
    }
    if (n < 0) {
      if (err == EINTR) continue;
      return R::Error(PosixError("reading fd " + std::to_string(fd), err));
    }
    if (n == 0) return out;
    if (out.size() > max_bytes) {
      return R::Error("fd " + std::to_string(fd) + " holds more than " +
                      std::to_string(max_bytes) + " bytes");
    }
    chunk = 64 * 1024;
  }
}

bool RunsAs(const std::string& path) {
  struct stat file {};
  struct stat self {};
  return !path.empty() && stat(path.c_str(), &file) == 0 && stat("/proc/self/exe", &self) == 0 &&
         file.st_dev == self.st_dev && file.st_ino == self.st_ino;
}

core::Status SetCloexec(int fd, bool on) {
  const int flags = fcntl(fd, F_GETFD);
  if (flags < 0 || fcntl(fd, F_SETFD, on ? (flags | FD_CLOEXEC) : (flags & ~FD_CLOEXEC)) != 0) {
    return core::Status::Error(PosixError("fcntl(F_SETFD) on fd " + std::to_string(fd), errno));
  }
  return core::Status::Ok();
}

core::Status ExecImage(const std::string& path, const std::vector<std::string>& argv,
                       const std::vector<std::string>& env) {
  std::vector<char*> args;
  for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  std::vector<char*> envp;
  for (const std::string& e : env) envp.push_back(const_cast<char*>(e.c_str()));
  envp.push_back(nullptr);
  execve(path.c_str(), args.data(), envp.data());
  return core::Status::Error(PosixError("execve " + path, errno));
}

std::string SelfPath(const std::string& argv0, const std::string& path_env) {
  if (!argv0.empty()) {
    auto resolved = ResolveCommand(argv0, path_env);
    if (resolved.ok()) return resolved.value();
  }
  char buf[PATH_MAX];
  const ssize_t n = readlink("/proc/self/exe", buf, sizeof buf - 1);
  if (n <= 0) return argv0;
  return std::string(buf, static_cast<size_t>(n));
}

SignalMask BlockSignals(const std::vector<int>& signals) {
  sigset_t set;
  sigemptyset(&set);
  for (int s : signals) sigaddset(&set, s);
  sigset_t old;
  sigprocmask(SIG_BLOCK, &set, &old);
  SignalMask mask{};
  std::memcpy(mask.bytes, &old, sizeof old);
  return mask;
}

void RestoreSignalMask(const SignalMask& mask) {
  sigset_t old;
  std::memcpy(&old, mask.bytes, sizeof old);
  sigprocmask(SIG_SETMASK, &old, nullptr);
}

}  // namespace einhorn::sys
