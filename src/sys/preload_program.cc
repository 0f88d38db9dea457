#include "sys/preload_program.h"

#include <limits.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/preload.h"

#ifndef EINHORN_LIBEXEC_DIR
#define EINHORN_LIBEXEC_DIR "/usr/libexec/einhorn-cpp"
#endif

namespace einhorn::sys {

namespace {

// The directory of the running binary, from /proc/self/exe; empty if unknown. After the binary
// was replaced on disk the link ends in " (deleted)": the directory is still the right one.
std::string ExeDir() {
  char buf[PATH_MAX];
  const ssize_t n = readlink("/proc/self/exe", buf, sizeof buf - 1);
  if (n <= 0) return "";
  std::string path(buf, static_cast<size_t>(n));
  const size_t slash = path.rfind('/');
  return slash == std::string::npos || slash == 0 ? "" : path.substr(0, slash);
}

}  // namespace

core::Result<std::string> FindPreloadProgram() {
  const std::vector<std::string> candidates =
      core::PreloadProgramCandidates(ExeDir(), EINHORN_LIBEXEC_DIR);
  std::string looked;
  for (const std::string& path : candidates) {
    struct stat st {};
    if (stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode) && access(path.c_str(), R_OK) == 0) {
      return path;
    }
    looked += (looked.empty() ? "" : ", ") + path;
  }
  return core::Status::Error(std::string("-p: ") + core::kPreloadProgramName +
                             " (Einhorn's preload for einhorn-cpp) is not installed (looked in " +
                             looked + ")");
}

}  // namespace einhorn::sys
