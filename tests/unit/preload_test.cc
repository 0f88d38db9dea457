#include "core/preload.h"

#include <doctest/doctest.h>

#include "core/flags.h"

using einhorn::core::Options;
using einhorn::core::PreloadProgramCandidates;
using einhorn::core::PreloadZygoteCommand;
using einhorn::core::RubyPreload;
using Argv = std::vector<std::string>;

TEST_CASE("-p PATH: the zygote runs einhorn-preload.rb with the worker command after --") {
  Options o;
  o.command = {"ruby", "app.rb", "--port", "8080"};
  CHECK_FALSE(RubyPreload(o));
  o.preload = "app.rb";
  CHECK(RubyPreload(o));
  CHECK(PreloadZygoteCommand(o, "/usr/libexec/einhorn-cpp/einhorn-preload.rb") ==
        Argv{"ruby", "/usr/libexec/einhorn-cpp/einhorn-preload.rb", "--verbosity", "1", "app.rb",
             "--", "ruby", "app.rb", "--port", "8080"});
}

TEST_CASE("-p PATH: --gc-before-fork, -c NAME and -q/-v are passed on") {
  Options o;
  o.command = {"./bin/server"};
  o.preload = "./config/boot";
  o.gc_before_fork = true;
  o.command_name = "my app";
  o.verbosity = 2;
  CHECK(PreloadZygoteCommand(o, "P") == Argv{"ruby", "P", "--gc-before-fork", "--command-name",
                                             "my app", "--verbosity", "2", "./config/boot", "--",
                                             "./bin/server"});
  o.verbosity = 0;
  o.gc_before_fork = false;
  o.command_name.clear();
  CHECK(PreloadZygoteCommand(o, "P") ==
        Argv{"ruby", "P", "--verbosity", "0", "./config/boot", "--", "./bin/server"});
}

TEST_CASE("-p PATH: the worker command's own ruby loads the application") {
  Options o;
  o.preload = "app.rb";
  for (const char* ruby : {"ruby", "ruby3.1", "/opt/rubies/3.3/bin/ruby", "/usr/bin/ruby3.1"}) {
    INFO(ruby);
    o.command = {ruby, "app.rb"};
    CHECK(PreloadZygoteCommand(o, "P").front() == ruby);
  }
  for (const char* other : {"bundle", "/usr/bin/rubyish", "./ruby-app", "python3", "jruby"}) {
    INFO(other);
    o.command = {other, "exec", "app.rb"};
    CHECK(PreloadZygoteCommand(o, "P").front() == "ruby");
  }
}

TEST_CASE("-p PATH: einhorn-preload.rb is looked for beside the binary, then in libexec") {
  CHECK(PreloadProgramCandidates("/src/build", "/usr/libexec/einhorn-cpp") ==
        Argv{"/src/build/einhorn-preload.rb", "/usr/libexec/einhorn-cpp/einhorn-preload.rb"});
  CHECK(PreloadProgramCandidates("", "/usr/libexec/einhorn-cpp") ==
        Argv{"/usr/libexec/einhorn-cpp/einhorn-preload.rb"});
}

TEST_CASE("-p PATH: parsed from the command line into the zygote's argv") {
  einhorn::core::FlagsOutcome out = einhorn::core::ParseFlags(
      {"einhorn-cpp", "-p", "app.rb", "--gc-before-fork", "-n", "3", "--", "ruby", "app.rb", "a"},
      {});
  REQUIRE(out.kind == einhorn::core::FlagsOutcome::Kind::kRun);
  CHECK(PreloadZygoteCommand(out.options, "P") == Argv{"ruby", "P", "--gc-before-fork",
                                                       "--verbosity", "1", "app.rb", "--", "ruby",
                                                       "app.rb", "a"});
}
