# Prints the tests of a minitest file, one "Class#method" a line, without running them.
# Usage: ruby list-tests.rb FILE.rb (with the stubs and Einhorn's lib on RUBYLIB)
require "minitest"
module Minitest
  def self.autorun
  end
end
load File.expand_path(ARGV.fetch(0))
Minitest::Runnable.runnables.each do |klass|
  klass.methods_matching(/^test_/).sort.each { |m| puts "#{klass}##{m}" }
end
