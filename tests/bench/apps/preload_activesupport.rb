# Bench worker (tests/bench/preload.sh, zygote_driver_bench.py): requires active_support/all
# (the load), then says ready: a manual ack to the master when EINHORN_SOCK_PATH is set, else
# "ready" on stdout; then idles until stdin closes (or forever under the master).
# Runs three ways: `ruby preload_activesupport.rb` (exec'd), under a zygote through
# EinhornZygote.serve, and with einhorn-cpp -p preload_activesupport.rb (einhorn_main).
require "json"
require "socket"

def bench_load
  require "active_support/all"
  1.day.ago # touch it, as an application would
end

def bench_ready
  if ENV["EINHORN_SOCK_PATH"] && ENV["EINHORN_MASTER_PID"]
    UNIXSocket.open(ENV["EINHORN_SOCK_PATH"]) do |s|
      s.write("#{JSON.generate("command" => "worker:ack", "pid" => Process.pid)}\n")
    end
  else
    $stdout.write("ready\n")
    $stdout.flush
  end
end

def einhorn_main
  raise "not loaded" unless 3.days.is_a?(ActiveSupport::Duration)

  bench_ready
  ENV["EINHORN_MASTER_PID"] ? sleep : $stdin.read
end

if $0 == __FILE__ # exec'd, or a zygote through the library
  require "einhorn_zygote"
  EinhornZygote.serve(load: -> { bench_load }) { einhorn_main }
else
  bench_load # loaded by -p (einhorn-preload.rb): einhorn_main is called in each worker
end
