#include "sys/preload_program.h"

#include <doctest/doctest.h>

#include <fstream>
#include <string>

// The test binary lives in the build tree, beside einhorn-cpp and the copy of
// einhorn-preload.rb CMake makes there: the lookup finds that copy first, with no environment
// variable involved.
TEST_CASE("einhorn-preload.rb is found beside the binary in a build tree") {
  const auto found = einhorn::sys::FindPreloadProgram();
  REQUIRE_MESSAGE(found.ok(), found.error());
  const std::string& path = found.value();
  CHECK(path.size() > 19);
  CHECK(path.substr(path.size() - 19) == "/einhorn-preload.rb");
  std::ifstream in(path);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  CHECK(text.find("Proceeding with postload") != std::string::npos);
}
