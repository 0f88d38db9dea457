// Einhorn's -p PATH as a zygote command (protocol v1, man einhorn-zygote.7).
//
// Einhorn 1.1.1 loads PATH into its own (Ruby) master and forks the workers from it. einhorn-cpp
// is not Ruby, so -p runs lib/ruby/einhorn-preload.rb as the generation's zygote instead: the
// master starts, in place of the worker command,
//   RUBY PROGRAM [--gc-before-fork] [--command-name NAME] --verbosity N PATH -- COMMAND...
// which loads PATH as Einhorn does and forks each worker (or, when PATH did not load or defines
// no einhorn_main, execs COMMAND from each forked worker, as Einhorn's "Proceeding with
// postload"). COMMAND is the worker command as given: the program resolves its first word in
// PATH itself, as Einhorn, for $0, ARGV and the exec.
#pragma once

#include <string>
#include <vector>

#include "core/options.h"

namespace einhorn::core {

// The file name of the program, installed in EINHORN_LIBEXEC_DIR (CMake) and copied beside the
// einhorn-cpp binary of a build tree.
inline constexpr const char* kPreloadProgramName = "einhorn-preload.rb";

// True when the settings ask for a zygote because of -p (the master's own switch for a zygote
// without -p, if any, is separate).
bool RubyPreload(const Options& o);
// Workers are forked by a zygote: --zygote, or -p.
bool ZygoteMode(const Options& o);

// The zygote's argv for -p: `program` is the path of einhorn-preload.rb. The Ruby that runs it
// is the worker command's own when its first word is a ruby (ruby, ruby3.1, /opt/x/bin/ruby),
// so that the application loads in the interpreter it was written for; else `ruby` from PATH.
// Precondition: RubyPreload(o) and o.command not empty.
std::vector<std::string> PreloadZygoteCommand(const Options& o, const std::string& program);

// The candidate paths of einhorn-preload.rb, in order: beside the running binary (a build
// tree, or a relocated install that keeps the program with the binary), then the installed
// libexec directory. `exe_dir` may be empty (unknown).
std::vector<std::string> PreloadProgramCandidates(const std::string& exe_dir,
                                                  const std::string& libexec_dir);

}  // namespace einhorn::core
