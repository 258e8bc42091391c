-- Appended to a GET script by history.py: print wrk's result as one machine-readable line.
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("WRK_RESULT requests=%d duration_us=%d p50_us=%d p99_us=%d err_status=%d\n",
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99), e.status))
end
