// Live migration from Ruby Einhorn: a Ruby master pointed at einhorn-cpp (`--reexec-as`, or
// the `einhorn` script replaced) execs us with `--with-state-fd N -- CMD` on its next
// `upgrade`, `reload` or SIGHUP, N being a pipe with its Ruby YAML state (core/ruby_state.h).
// This turns that state and the fds the Ruby image left open into a MasterSetup: the same
// pid, the -b listeners (found among :bind_fds by their address, not their position), the
// command socket and its connections with their upgrade subscriptions, and the Ruby-started
// workers adopted (each checked with waitpid WNOHANG first: a dead one is dropped and its
// slot respawns). If Ruby was upgrading, the restored master finishes the upgrade.
#pragma once

#include <string>
#include <vector>

#include "core/status.h"
#include "master/master.h"

namespace einhorn::master {

// Logs every part of the state it cannot honour (one error line each) and carries on with the
// rest. An error only when the state is unusable (not Ruby Einhorn's, no command): the caller
// says so and exits; the workers keep running, unsupervised. options.max_unacked and the
// access policy are the caller's to fill, as for a fresh start.
core::Result<MasterSetup> RubyTakeoverSetup(const std::string& bytes,
                                            const std::vector<std::string>& env,
                                            const std::string& self_path);

}  // namespace einhorn::master
