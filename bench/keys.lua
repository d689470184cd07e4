-- wrk script for bench/run.sh: GET <url> with X-API-Key taken in turn from a key file, so every
-- key's state is touched (10,000 keys: each key once per 10,000 requests).
--   wrk ... -s keys.lua <url> -- KEYS_FILE
-- All request strings are built once in init(), so request() is a table lookup and wrk's own
-- cost per request is the same for every target. done() prints one line starting with "BENCH".
--
-- With BENCH_PASS=1 in the environment the run is one pass: it stops after as many answers as
-- there are keys (so each key is used once), counts the answers by status, and interrupts wrk's
-- main thread so the reported duration is the pass's own. Run it with -t1. Only then is
-- response() defined: wrk parses headers for Lua only when the script has that function, which
-- would otherwise add client cost to the timed runs.

local pass = os.getenv("BENCH_PASS") == "1"
local counter = 0
local threads = {}

function setup(thread)
   thread:set("tid", counter)   -- a distinct start offset per wrk thread
   counter = counter + 1
   table.insert(threads, thread)
end

local reqs, n, idx = {}, 0, 0

function init(args)
   local path = args[1]
   if not path then error("usage: wrk ... -s keys.lua URL -- KEYS_FILE") end
   for line in io.lines(path) do
      if #line > 0 then
         n = n + 1
         reqs[n] = wrk.format("GET", wrk.path, { ["X-API-Key"] = line })
      end
   end
   if n == 0 then error("no keys in " .. path) end
   if pass then
      idx = 0
   else
      idx = ((tid or 0) * 7919) % n
   end
end

function request()
   idx = idx + 1
   if idx > n then idx = 1 end
   return reqs[idx]
end

if pass then
   local got, s2xx, s401, s429, sother, stopped = 0, 0, 0, 0, 0, false
   local f = io.open("/proc/self/stat")
   local pid = f:read("*n")
   f:close()

   function response(status, headers, body)
      if stopped then return end
      got = got + 1
      if status >= 200 and status < 300 then s2xx = s2xx + 1
      elseif status == 401 then s401 = s401 + 1
      elseif status == 429 then s429 = s429 + 1
      else sother = sother + 1 end
      if got >= n then
         stopped = true
         wrk.thread:set("counts", string.format("%d %d %d %d %d", got, s2xx, s401, s429, sother))
         wrk.thread:stop()
         -- wrk's main thread sleeps for -d; SIGINT ends that sleep. A signal that lands
         -- before the main thread is asleep is lost, so it is repeated until wrk has exited.
         -- io.popen, unlike os.execute (whose system() ignores SIGINT while it waits), leaves
         -- wrk's handler in place.
         io.popen("(while kill -INT " .. pid .. " 2>/dev/null; do sleep 0.02; done) &"):close()
      end
   end
end

function done(summary, latency, requests)
   local e = summary.errors
   local counts = "0 0 0 0 0"
   if pass then counts = threads[1]:get("counts") or counts end
   local got, s2xx, s401, s429, sother = counts:match("(%d+) (%d+) (%d+) (%d+) (%d+)")
   io.write(string.format(
      "BENCH requests=%d duration_us=%d rps=%.1f p50_us=%.0f p90_us=%.0f p99_us=%.0f max_us=%.0f " ..
      "non2xx=%d sockerr=%d pass_answers=%s pass_2xx=%s pass_401=%s pass_429=%s pass_other=%s\n",
      summary.requests, summary.duration, summary.requests / (summary.duration / 1e6),
      latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max,
      e.status, e.connect + e.read + e.write + e.timeout, got, s2xx, s401, s429, sother))
end
