-- report.lua -- wrk script: one machine-readable summary line after the run, parsed by bench.sh.
-- No response() hook on purpose: defining one makes wrk build a Lua table per response and
-- lowers the rate it can drive. Non-2xx/3xx counts come from wrk's own report instead; here
-- errors.status counts answers with status > 399.
function done(summary, latency, requests)
    local secs = summary.duration / 1e6
    local e = summary.errors
    io.write(string.format(
        "PGBENCH requests=%d seconds=%.3f rps=%.1f p50_ms=%.3f p90_ms=%.3f p99_ms=%.3f "
            .. "max_ms=%.3f status_errors=%d socket_errors=%d\n",
        summary.requests, secs, summary.requests / secs,
        latency:percentile(50) / 1000, latency:percentile(90) / 1000,
        latency:percentile(99) / 1000, latency.max / 1000,
        e.status, e.connect + e.read + e.write + e.timeout))
end
