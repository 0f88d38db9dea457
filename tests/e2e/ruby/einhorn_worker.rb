# A worker written against Ruby Einhorn's own worker library (lib/einhorn/worker.rb, on the
# load path with -I): tests/e2e/einhorn_state_test.cc runs it under Ruby Einhorn 1.1.1 and
# under einhorn-cpp.
#   ruby -I EINHORN/lib einhorn_worker.rb manual|timer
# manual: Einhorn::Worker.ack!; both: Einhorn::Worker.ping!("req-<pid>") once acked (manual)
# or at once (timer). USR2 is ignored, so that a drained worker stays and `state` shows the
# signal; TERM ends it.
require "einhorn"

Einhorn::Worker.ack! if ARGV[0] == "manual"
Einhorn::Worker.ping!("req-#{Process.pid}")
trap("USR2") {}
trap("TERM") { exit 0 }
sleep
