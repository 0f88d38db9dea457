# A worker for tests/zygote/driver.py: EinhornZygote.serve with a load step; each worker writes
# one JSON line about itself to its stdout, then waits for EOF on its stdin.
require "json"
require "einhorn_zygote"

def fd_id(fd)
  st = IO.for_fd(fd, autoclose: false).stat
  [st.dev, st.ino]
rescue SystemCallError, ArgumentError
  nil
end

load_step = lambda do
  rand # the zygote's RNG has moved: the workers must not all repeat it
  raise "failing to load on purpose" if ARGV.include?("fail-load")
  if ARGV.include?("dirty") # what an application may do while loading
    trap("USR2") { nil }
    trap("HUP", "IGNORE")
    trap("INT", "IGNORE")
    srand(42)
  end
  trap("TERM", "IGNORE") if ARGV.include?("term-handler") # serve must still die on SIGTERM
end

rc = EinhornZygote.serve(load: load_step) do
  extra = ENV.fetch("TEST_EXTRA_FDS", "").split.map(&:to_i)
  child_env = IO.popen(["/usr/bin/env", "-0"], &:read).force_encoding("UTF-8").split("\0").map { |kv| kv.split("=", 2) }.to_h
  report = {
    "pid" => Process.pid,
    "ppid" => Process.ppid,
    "pgid" => Process.getpgid(0),
    "env" => ENV.to_h.transform_values { |v| v.dup.force_encoding("UTF-8") },
    "child_env" => child_env,
    "fds" => ([0, 1, 2] + extra).to_h { |fd| [fd.to_s, fd_id(fd)] },
    "random" => rand(2**64),
    "signals" => File.read("/proc/self/status").scan(/^(Sig(?:Ign|Cgt|Blk)):\s*(\h+)/).to_h,
    "argv" => [$0] + ARGV,
  }
  $stdout.write("#{JSON.generate(report)}\n")
  $stdout.flush
  $stdin.read # until the driver closes our stdin
  0
end
exit(rc)
