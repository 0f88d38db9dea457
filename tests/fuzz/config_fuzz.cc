// libFuzzer target for the YAML config loader (src/core/config). Built only with
// -DEINHORN_FUZZ=ON and clang++; run it with scripts/fuzz. The file is untrusted: LoadConfig
// must never crash, throw or hang, and its error is one line naming the file. What it accepts
// must pass Validate once a command is given, and --check-config's output (RenderConfig) must
// read back to the same options and render the same again.
// A broken invariant calls __builtin_trap(), which libFuzzer reports as a crash and saves.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <string>

#include "core/config.h"
#include "deadlines.h"

namespace core = einhorn::core;

namespace {

void Require(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "config_fuzz: invariant broken: %s\n", what);
    __builtin_trap();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  const auto loaded = core::LoadConfig(core::ConfigSource{"fuzz.yaml", text});
  if (!loaded.ok()) {
    Require(!loaded.error().empty(), "an empty error");
    Require(loaded.error().find('\n') == std::string::npos, "an error of more than one line");
    Require(loaded.error().rfind("fuzz.yaml", 0) == 0, "an error that does not name the file");
    return 0;
  }
  core::Options o = loaded.value().options;
  if (o.command.empty()) o.command = {"w"};
  o.socket_path = o.socket_path.empty() ? "/tmp/s" : o.socket_path;
  Require(core::Validate(o).ok(), "accepted options that Validate refuses");
  einhorn::fuzz::DriveWithoutWrapping(o);  // its durations give deadlines that lie ahead

  const std::string rendered = core::RenderConfig(o);
  const auto back = core::LoadConfig(core::ConfigSource{"rendered.yaml", rendered});
  if (!back.ok()) {
    std::fprintf(stderr, "%s\n---\n%s", back.error().c_str(), rendered.c_str());
  }
  Require(back.ok(), "the rendered settings do not load");
  Require(back.value().options == o, "the rendered settings load as other options");
  Require(core::RenderConfig(back.value().options) == rendered, "rendering is not stable");
  return 0;
}
