-- wrk script: client_credentials requests with bad client credentials (client_secret_post) to
-- the token endpoint, for loadtest/token-flood.sh.
--
--   MODE=distinct wrk -t1 -c16 -d20s -s loadtest/wrk/flood.lua http://127.0.0.1:PORT/oauth2/token
--
-- MODE=distinct (default): a new unknown client id on every request (flood-1, flood-2, ...), so
--   no (client id, address) pair repeats and the backoff never locks: every request costs a check
--   against the dummy hash.
-- MODE=same: one unknown client id with wrong secrets; the backoff answers 429 after
--   `max_failures` failures, before any hash.
--
-- Output, after wrk's summary (one thread's counters per line; run it with -t1):
--   WRK_FLOOD requests=N rps=F s401=N s429=N s503=N other=N

local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  mode = os.getenv("MODE") or "distinct"
  n = 0
  s401, s429, s503, other = 0, 0, 0, 0
end

function request()
  n = n + 1
  local id = "flood"
  if mode == "distinct" then id = "flood-" .. n end
  return wrk.format("POST", nil, { ["Content-Type"] = "application/x-www-form-urlencoded" },
    "grant_type=client_credentials&client_id=" .. id .. "&client_secret=wrong-" .. n)
end

function response(status, headers, body)
  if status == 401 then s401 = s401 + 1
  elseif status == 429 then s429 = s429 + 1
  elseif status == 503 then s503 = s503 + 1
  else other = other + 1 end
end

function done(summary, latency, requests)
  local secs = summary.duration / 1e6
  local a, b, c, d = 0, 0, 0, 0
  for _, t in ipairs(threads) do
    a = a + t:get("s401"); b = b + t:get("s429"); c = c + t:get("s503"); d = d + t:get("other")
  end
  io.write(string.format("WRK_FLOOD requests=%d rps=%.1f s401=%d s429=%d s503=%d other=%d\n",
    summary.requests, summary.requests / secs, a, b, c, d))
end
