-- wrk script for password grants: POSTs one form (TG_BODY) with Basic client credentials
-- (TG_AUTH, the whole Authorization value) to the token endpoint.
--
--   TG_BODY='grant_type=password&username=alice&password=alice-pw' TG_AUTH='Basic ...' \
--     wrk -t1 -c16 -d5s -s loadtest/wrk/password.lua http://127.0.0.1:PORT/oauth2/token
--
-- With TG_USERS=N, TG_BODY is a format with one %d, filled with 0..N-1 in turn (each wrk
-- thread from its own offset): distinct users, so concurrent logins do not share one lookup.
-- Prints `WRK_NON200 N` after wrk's report: a run with refusals measures the wrong thing.

wrk.method = "POST"
wrk.body = os.getenv("TG_BODY")
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
wrk.headers["Authorization"] = os.getenv("TG_AUTH")

local users = tonumber(os.getenv("TG_USERS") or "0")
local template = os.getenv("TG_BODY")
local idx = 0
thread_no = 0 -- set per thread by setup()

function init(args)
  idx = (thread_no * 7919) % math.max(users, 1)
end

if users > 0 then
  request = function()
    idx = (idx + 1) % users
    return wrk.format(nil, nil, nil, string.format(template, idx))
  end
end

non200 = 0 -- a global: done() reads it from each thread with get()
local threads = {}

function setup(thread)
  thread:set("thread_no", #threads)
  table.insert(threads, thread)
end

function response(status, headers, body)
  if status ~= 200 then
    non200 = non200 + 1
  end
end

function done(summary, latency, requests)
  local n = 0
  for _, t in ipairs(threads) do
    n = n + (t:get("non200") or 0)
  end
  io.write(string.format("WRK_NON200 %d\n", n))
end
