# Loaded by einhorn-preload.rb (einhorn-cpp -p) or Ruby Einhorn's -p: einhorn_main writes one
# JSON line about the worker (to REPORT_DIR/PID.json when set, else stdout), acks through
# Einhorn::Worker when TEST_ACK is set, then waits for EOF on stdin (or forever under Einhorn).
require "json"
require "einhorn/worker"

$preload_app_random = rand # the zygote's RNG has moved
raise "failing to load on purpose" if ENV["TEST_FAIL_LOAD"]

def einhorn_main
  report = {
    "pid" => Process.pid,
    "ppid" => Process.ppid,
    "pgid" => Process.getpgid(0),
    "program_name" => $0,
    "argv" => ARGV.dup,
    "env" => ENV.to_h.transform_values { |v| v.dup.force_encoding("UTF-8") },
    "random" => rand(2**64),
    "is_worker" => Einhorn::Worker.is_worker?,
    "child_index" => Einhorn::Worker.einhorn_child_index,
  }
  Einhorn::Worker.ack! if ENV["TEST_ACK"]
  line = "#{JSON.generate(report)}\n"
  if (dir = ENV["REPORT_DIR"])
    File.write(File.join(dir, "#{Process.pid}.json"), line)
    sleep
  else
    $stdout.write(line)
    $stdout.flush
    $stdin.read
  end
end

einhorn_main if $0 == __FILE__
