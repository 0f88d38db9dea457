// core/reload_apply.h: what a master re-exec'd by a reload does with the config it read again.
#include "core/reload_apply.h"

#include <doctest/doctest.h>

namespace einhorn::core {
namespace {

MasterState Running() {
  MasterState s;
  s.options.command = {"/bin/app"};
  s.options.number = 3;
  s.options.verbosity = 1;
  s.options.seconds = 1;
  s.command_path = "/bin/app";
  s.verbosity = 0;  // louder since the start
  s.supervisor.config = ConfigFromOptions(s.options, 42);
  s.supervisor.config.target = 5;  // resized by `inc` since the start
  return s;
}

ReloadedOptions Reread(const Options& now, std::vector<std::string> changed) {
  return ReloadedOptions{now, std::move(changed)};
}

TEST_CASE("reload apply: nothing changed, nothing applied, the live state untouched") {
  MasterState s = Running();
  const MasterState before = s;
  Options same = s.options;
  const ReloadEffects fx = ApplyReloadedConfig(Reread(same, {}), "/other/app", &s);
  CHECK_FALSE(fx.verbosity);
  CHECK_FALSE(fx.log_format);
  CHECK_FALSE(fx.resize_to);
  CHECK_FALSE(fx.master_nice);
  CHECK(s.command_path == "/bin/app");
  CHECK(s.verbosity == 0);
  CHECK(s.supervisor.config.target == 5);
  CHECK(s.options == before.options);
}

TEST_CASE("reload apply: each changed setting asks for its effect, and the target and seed stay") {
  MasterState s = Running();
  Options now = s.options;
  now.number = 7;
  now.verbosity = 2;
  now.log_format = LogFormat::kJson;
  now.nice.master = 5;
  now.seconds = 4;
  now.command = {"/bin/app2"};
  const ReloadEffects fx = ApplyReloadedConfig(Reread(now, {"number: 3 -> 7"}), "/bin/app2", &s);
  CHECK(fx.verbosity == 2);
  CHECK(fx.log_format == LogFormat::kJson);
  CHECK(fx.resize_to == 7);
  CHECK(fx.master_nice == 5);
  CHECK(s.verbosity == 2);  // the live verbosity follows the file's new one
  CHECK(s.options == now);
  CHECK(s.command_path == "/bin/app2");
  // The supervisor gets the new settings but keeps its live target (the resize is an effect,
  // which the supervisor then carries out and reports) and its jitter seed.
  CHECK(s.supervisor.config.target == 5);
  CHECK(s.supervisor.config.jitter_seed == 42);
  CHECK(s.supervisor.config.backoff_base == ConfigFromOptions(now, 42).backoff_base);
}

TEST_CASE("reload apply: an unchanged setting asks for nothing, a live verbosity stays") {
  MasterState s = Running();
  Options now = s.options;
  now.seconds = 2;  // only this changed
  const ReloadEffects fx = ApplyReloadedConfig(Reread(now, {"seconds: 1 -> 2"}), "/bin/app", &s);
  CHECK_FALSE(fx.verbosity);
  CHECK_FALSE(fx.log_format);
  CHECK_FALSE(fx.resize_to);
  CHECK_FALSE(fx.master_nice);
  CHECK(s.verbosity == 0);  // `louder` since the start is kept when the file's level is the same
  CHECK(s.options.seconds == 2);
}

TEST_CASE("reload apply: --nice is applied only when set and changed, never reset when dropped") {
  MasterState s = Running();
  s.options.nice.master = 5;
  Options now = s.options;
  now.number = 4;
  CHECK_FALSE(ApplyReloadedConfig(Reread(now, {"number: 3 -> 4"}), "/bin/app", &s).master_nice);
  now = s.options;
  now.nice.master.reset();
  now.number = 5;
  CHECK_FALSE(ApplyReloadedConfig(Reread(now, {"nice: 5 -> none"}), "/bin/app", &s).master_nice);
  now = s.options;
  now.nice.master = -3;
  CHECK(ApplyReloadedConfig(Reread(now, {"nice: none -> -3"}), "/bin/app", &s).master_nice == -3);
}

}  // namespace
}  // namespace einhorn::core
