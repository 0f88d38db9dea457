# A stand-in for `require "bundler/setup"`, for running Einhorn 1.1.1's integration suite
# without bundler (not packaged in Debian 12 as a library the tests can use offline).
# The load path is set by tests/einhorn-suite/run (RUBYLIB), so there is nothing to set up.
# Einhorn's test helpers call only Bundler.with_original_env.
module Bundler
  def self.with_original_env
    yield
  end
end
