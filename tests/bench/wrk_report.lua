-- wrk -s tests/bench/wrk_report.lua: at the end, one machine-readable line for
-- tests/bench/scenarios/zerodowntime.sh:
--   WRK requests connect_errors read_errors write_errors non_2xx_3xx timeouts p50_ms p99_ms max_ms
-- (wrk's latency is in microseconds; "status" errors are responses that are not 2xx or 3xx).
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("WRK %d %d %d %d %d %d %.3f %.3f %.3f\n", summary.requests,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50) / 1000, latency:percentile(99) / 1000, latency.max / 1000))
end
