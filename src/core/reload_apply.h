// What a master re-exec'd by a reload does with the config file it read again: the carried
// state takes the new settings, and the shell is told which effects to perform (log level and
// format, a resize, the master's niceness). Pure: the shell reads the file and applies the
// effects (master/main.cc's Restore).
#pragma once

#include <optional>
#include <string>

#include "core/config.h"
#include "core/options.h"
#include "core/state.h"

namespace einhorn::core {

// The effects a reloaded config asks of the shell; each is set only when its setting changed.
struct ReloadEffects {
  std::optional<int> verbosity;  // the log level to set (state.verbosity already follows it)
  std::optional<LogFormat> log_format;
  std::optional<int> resize_to;    // the new -n: the supervisor resizes once it runs
  std::optional<int> master_nice;  // --nice's master part, newly set or changed
};

// Applies `reloaded` (ReconcileReload's result: only live settings changed) to `state`: its
// options and command path become the new ones, and the supervisor's configuration is rebuilt
// from them, keeping the pool's current target and jitter seed (a resize is an effect, so the
// supervisor reports it). Nothing changes, and no effect is asked for, when `reloaded.changed`
// is empty.
ReloadEffects ApplyReloadedConfig(const ReloadedOptions& reloaded, const std::string& command_path,
                                  MasterState* state);

}  // namespace einhorn::core
