#include "core/reload_apply.h"

#include "core/supervisor.h"

namespace einhorn::core {

ReloadEffects ApplyReloadedConfig(const ReloadedOptions& reloaded, const std::string& command_path,
                                  MasterState* state) {
  ReloadEffects effects;
  if (reloaded.changed.empty()) return effects;
  const Options& now = reloaded.options;
  const Options& was = state->options;
  if (now.verbosity != was.verbosity) {
    state->verbosity = now.verbosity;
    effects.verbosity = now.verbosity;
  }
  if (now.log_format != was.log_format) effects.log_format = now.log_format;
  if (now.number != was.number) effects.resize_to = now.number;
  if (now.nice.master && now.nice.master != was.nice.master) effects.master_nice = now.nice.master;
  SupervisorConfig& live = state->supervisor.config;
  const int target = live.target;
  live = ConfigFromOptions(now, live.jitter_seed);
  live.target = target;
  state->options = now;
  state->command_path = command_path;
  return effects;
}

}  // namespace einhorn::core
