// Where einhorn-preload.rb (Einhorn's -p as a zygote, core/preload.h) is on this machine.
//
// No environment variable decides it in production: the program is looked for beside the
// running binary first (a build tree, where CMake copies it next to einhorn-cpp; or an install
// that keeps it with the binary), then in the libexec directory the binary was built for
// (EINHORN_LIBEXEC_DIR, /usr/libexec/einhorn-cpp in the .deb). Looked up once at start-up and
// kept, so a package upgrade that moves files under a running master changes nothing until a
// reload.
#pragma once

#include <string>

#include "core/status.h"

namespace einhorn::sys {

// The first candidate that is a readable regular file, or an error line naming every place
// looked at.
core::Result<std::string> FindPreloadProgram();

}  // namespace einhorn::sys
