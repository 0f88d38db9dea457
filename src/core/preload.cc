#include "core/preload.h"

#include <regex>

namespace einhorn::core {

bool RubyPreload(const Options& o) { return !o.preload.empty(); }
bool ZygoteMode(const Options& o) { return o.zygote || RubyPreload(o); }

namespace {

// The last path component, as basename(1) without the suffix handling.
std::string BaseName(const std::string& path) {
  const size_t slash = path.rfind('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

bool IsRuby(const std::string& word) {
  static const std::regex kRuby("ruby[0-9.]*");
  return std::regex_match(BaseName(word), kRuby);
}

}  // namespace

std::vector<std::string> PreloadZygoteCommand(const Options& o, const std::string& program) {
  std::vector<std::string> argv;
  argv.push_back(!o.command.empty() && IsRuby(o.command.front()) ? o.command.front() : "ruby");
  argv.push_back(program);
  if (o.gc_before_fork) argv.emplace_back("--gc-before-fork");
  if (!o.command_name.empty()) {
    argv.emplace_back("--command-name");
    argv.push_back(o.command_name);
  }
  argv.emplace_back("--verbosity");
  argv.push_back(std::to_string(o.verbosity < 0 ? 0 : (o.verbosity > 2 ? 2 : o.verbosity)));
  argv.push_back(o.preload);
  argv.emplace_back("--");
  argv.insert(argv.end(), o.command.begin(), o.command.end());
  return argv;
}

std::vector<std::string> PreloadProgramCandidates(const std::string& exe_dir,
                                                  const std::string& libexec_dir) {
  std::vector<std::string> out;
  if (!exe_dir.empty()) out.push_back(exe_dir + "/" + kPreloadProgramName);
  if (!libexec_dir.empty()) out.push_back(libexec_dir + "/" + kPreloadProgramName);
  return out;
}

}  // namespace einhorn::core
