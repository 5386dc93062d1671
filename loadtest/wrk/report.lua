-- wrk report script: prints one machine-readable line after the human summary.
--
--   wrk -t1 -c50 -d8s --latency -s loadtest/wrk/report.lua http://127.0.0.1:PORT/
--
-- Output (latencies in microseconds, as wrk records them):
--   WRK_RESULT requests=N duration_us=N rps=F p50_us=N p90_us=N p99_us=N p999_us=N max_us=N
--              non2xx=N err_connect=N err_read=N err_write=N err_timeout=N
--
-- run.sh parses this line, so the numbers never depend on wrk's unit formatting ("1.23ms").

done = function(summary, latency, requests)
  local s = summary
  local e = s.errors
  local secs = s.duration / 1e6
  local rps = 0
  if secs > 0 then rps = s.requests / secs end
  io.write(string.format(
    "WRK_RESULT requests=%d duration_us=%d rps=%.1f p50_us=%d p90_us=%d p99_us=%d p999_us=%d max_us=%d " ..
    "non2xx=%d err_connect=%d err_read=%d err_write=%d err_timeout=%d\n",
    s.requests, s.duration, rps,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency:percentile(99.9), latency.max,
    e.status, e.connect, e.read, e.write, e.timeout))
end
