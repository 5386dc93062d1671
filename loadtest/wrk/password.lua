-- wrk script for password grants: POSTs one form (TG_BODY) with Basic client credentials
-- (TG_AUTH, the whole Authorization value) to the token endpoint.
--
--   TG_BODY='grant_type=password&username=alice&password=alice-pw' TG_AUTH='Basic ...' \
--     wrk -t1 -c16 -d5s -s loadtest/wrk/password.lua http://127.0.0.1:PORT/oauth2/token
--
-- Prints `WRK_NON200 N` after wrk's report: a run with refusals measures the wrong thing.

wrk.method = "POST"
wrk.body = os.getenv("TG_BODY")
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
wrk.headers["Authorization"] = os.getenv("TG_AUTH")

local non200 = 0
local threads = {}

function setup(thread)
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
