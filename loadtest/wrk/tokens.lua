-- wrk script for token routes: rotates through bearer tokens read from a file (one per line), so a
-- gateway's verified-token cache does not turn every request into a cache hit. With one token in the
-- file it measures the cache-hit path instead. Prints the same WRK_RESULT line as report.lua.
--
--   TOKENS=/path/tokens.txt wrk -t1 -c50 -d8s --latency -s loadtest/wrk/tokens.lua http://127.0.0.1:PORT/api/
--
-- Environment: TOKENS (file, required), REQ_PATH (optional; default: the path in the URL).

local tokens = {}
local idx = 0
local path = os.getenv("REQ_PATH")

local function load_tokens()
  local f = os.getenv("TOKENS")
  if not f then
    io.stderr:write("tokens.lua: set TOKENS=/path/to/tokens.txt (one token per line)\n")
    os.exit(2)
  end
  for line in io.lines(f) do
    local t = line:gsub("%s+$", "")
    if #t > 0 then tokens[#tokens + 1] = t end
  end
  if #tokens == 0 then
    io.stderr:write("tokens.lua: no tokens in " .. f .. "\n")
    os.exit(2)
  end
end

-- Each wrk thread has its own Lua state: start threads at different offsets.
local thread_no = 0
setup = function(thread)
  thread:set("offset", thread_no * 7919)
  thread_no = thread_no + 1
end

init = function(args)
  load_tokens()
  idx = (offset or 0) % #tokens
  path = path or wrk.path
end

request = function()
  idx = idx % #tokens + 1
  return wrk.format("GET", path, { ["Authorization"] = "Bearer " .. tokens[idx] })
end

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
