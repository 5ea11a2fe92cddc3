-- wrk script of the bench harness.
-- Spreads requests round-robin over the paths in the file named by BENCH_PATHS
-- (one per line), counts 2xx and other responses per thread, and prints one JSON
-- line prefixed "bench-json: " when the run is done.

local threads = {}
local paths = {}
local cursor = 0

function setup(thread)
   thread:set("id", #threads)
   table.insert(threads, thread)
end

function init(args)
   for line in io.lines(os.getenv("BENCH_PATHS")) do
      if line ~= "" then
         paths[#paths + 1] = line
      end
   end
   -- Each thread starts at a different place in the list.
   cursor = (id * 7919) % #paths
   ok, non_2xx = 0, 0
end

function request()
   cursor = cursor % #paths + 1
   return wrk.format(nil, paths[cursor])
end

function response(status, headers, body)
   if status >= 200 and status < 300 then
      ok = ok + 1
   else
      non_2xx = non_2xx + 1
   end
end

function done(summary, latency, requests)
   local total_ok, total_non_2xx = 0, 0
   for _, thread in ipairs(threads) do
      total_ok = total_ok + thread:get("ok")
      total_non_2xx = total_non_2xx + thread:get("non_2xx")
   end
   local e = summary.errors
   io.write(string.format(
      'bench-json: {"requests": %d, "ok": %d, "non_2xx": %d, "duration_s": %.6f, "bytes": %d, '
         .. '"errors": {"connect": %d, "read": %d, "write": %d, "status": %d, "timeout": %d}, '
         .. '"latency_ms": {"p50": %.3f, "p90": %.3f, "p99": %.3f, "mean": %.3f, "max": %.3f}}\n',
      summary.requests, total_ok, total_non_2xx, summary.duration / 1e6, summary.bytes,
      e.connect, e.read, e.write, e.status, e.timeout,
      latency:percentile(50) / 1e3, latency:percentile(90) / 1e3, latency:percentile(99) / 1e3,
      latency.mean / 1e3, latency.max / 1e3
   ))
end
