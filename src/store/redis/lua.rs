//! Lua scripts of the Redis store. Each runs atomically on the server. Replies are strings
//! (never Lua numbers: Redis truncates them) or `false` (nil) for "absent". `""` in an `exp` or
//! `max` field means "never" / "no limit".

/// Shared helpers, prepended to every script.
pub const HELPERS: &str = r#"
local function ttl(k, exp, now)
  if exp ~= '' then
    local s = tonumber(exp) - tonumber(now)
    if s < 1 then s = 1 end
    redis.call('EXPIRE', k, s)
  end
end
-- Create the family, or extend its lifetime to cover a member expiring at exp.
local function touch_family(fk, client, exp, now, max, setmax)
  if redis.call('EXISTS', fk) == 0 then
    redis.call('HSET', fk, 'rev', '0', 'uses', '0', 'max', max, 'exp', exp, 'cl', client)
    ttl(fk, exp, now)
    return
  end
  if setmax == '1' then redis.call('HSET', fk, 'max', max) end
  local cur = redis.call('HGET', fk, 'exp')
  if cur and cur ~= '' then
    if exp == '' then
      redis.call('HSET', fk, 'exp', '')
      redis.call('PERSIST', fk)
    elseif tonumber(exp) > tonumber(cur) then
      redis.call('HSET', fk, 'exp', exp)
      ttl(fk, exp, now)
    end
  end
end
"#;

/// KEYS: at, fam. ARGV: rec, family id ('' none), client, exp, now. 1 = stored, 0 = exists.
pub const PUT_ACCESS: &str = r#"
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], 'rec', ARGV[1], 'fam', ARGV[2], 'cl', ARGV[3], 'rev', '0', 'exp', ARGV[4])
ttl(KEYS[1], ARGV[4], ARGV[5])
if ARGV[2] ~= '' then touch_family(KEYS[2], ARGV[3], ARGV[4], ARGV[5], '', '0') end
return 1
"#;

/// KEYS: at. ARGV: family key prefix. nil if absent, else {rec, '1' revoked | '0'}.
/// A member whose family is revoked or gone reads as revoked.
pub const ACCESS_STATE: &str = r#"
local v = redis.call('HMGET', KEYS[1], 'rec', 'rev', 'fam')
if not v[1] then return false end
local rev = v[2]
if rev ~= '1' and v[3] and v[3] ~= '' then
  if redis.call('HGET', ARGV[1] .. v[3], 'rev') ~= '0' then rev = '1' end
end
return {v[1], rev}
"#;

/// KEYS: at. ARGV: client, exp hint ('' none), now.
pub const REVOKE_ACCESS: &str = r#"
local cl = redis.call('HGET', KEYS[1], 'cl')
if cl then
  if cl ~= ARGV[1] then return 'wrongclient' end
  redis.call('HSET', KEYS[1], 'rev', '1')
  return 'revoked'
end
if ARGV[2] == '' or tonumber(ARGV[2]) <= tonumber(ARGV[3]) then return 'notfound' end
redis.call('HSET', KEYS[1], 'rec', '', 'fam', '', 'cl', ARGV[1], 'rev', '1', 'exp', ARGV[2])
ttl(KEYS[1], ARGV[2], ARGV[3])
return 'revoked'
"#;

/// KEYS: rt, fam. ARGV: grant, scope, iat, exp, family id, client, max, now.
pub const PUT_REFRESH: &str = r#"
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], 'g', ARGV[1], 'sc', ARGV[2], 'iat', ARGV[3], 'exp', ARGV[4],
  'rot', '0', 'fam', ARGV[5], 'cl', ARGV[6])
ttl(KEYS[1], ARGV[4], ARGV[8])
touch_family(KEYS[2], ARGV[6], ARGV[4], ARGV[8], ARGV[7], '1')
return 1
"#;

/// KEYS: rt. ARGV: family key prefix. nil unless current, with a live family below its use
/// limit; else
/// {grant, scope, iat, exp, max}. The caller checks exp.
pub const GET_REFRESH: &str = r#"
local t = redis.call('HMGET', KEYS[1], 'g', 'sc', 'iat', 'exp', 'rot', 'fam')
if not t[1] or t[5] ~= '0' then return false end
local f = redis.call('HMGET', ARGV[1] .. t[6], 'rev', 'max', 'uses')
if f[1] ~= '0' then return false end
local max = f[2] or ''
if max ~= '' and (tonumber(f[3]) or 0) >= tonumber(max) then return false end
return {t[1], t[2], t[3], t[4], max}
"#;

/// KEYS: rt, next rt (= rt when not rotating). ARGV: client, now, family key prefix,
/// rotate '1'|'0', next iat, next exp, next scope ('' = inherit).
/// Reply: {status} or {'used', grant, scope, iat, exp, uses, max}.
pub const USE_REFRESH: &str = r#"
local t = redis.call('HMGET', KEYS[1], 'g', 'sc', 'iat', 'exp', 'rot', 'fam', 'cl')
if not t[1] then return {'notfound'} end
if t[7] ~= ARGV[1] then return {'wrongclient'} end
local now = ARGV[2]
local fk = ARGV[3] .. t[6]
local f = redis.call('HMGET', fk, 'rev', 'uses', 'max')
if f[1] ~= '0' then return {'revoked'} end
if t[4] ~= '' and tonumber(now) >= tonumber(t[4]) then return {'expired'} end
if t[5] ~= '0' then
  redis.call('HSET', fk, 'rev', '1')
  return {'reused'}
end
local uses = tonumber(f[2]) or 0
local max = f[3] or ''
if max ~= '' and uses >= tonumber(max) then return {'exhausted'} end
if ARGV[4] == '1' and redis.call('EXISTS', KEYS[2]) == 1 then return {'conflict'} end
uses = uses + 1
redis.call('HSET', fk, 'uses', tostring(uses))
if ARGV[4] == '1' then
  redis.call('HSET', KEYS[1], 'rot', '1')
  local sc = ARGV[7]
  if sc == '' then sc = t[2] end
  redis.call('HSET', KEYS[2], 'g', t[1], 'sc', sc, 'iat', ARGV[5], 'exp', ARGV[6],
    'rot', '0', 'fam', t[6], 'cl', t[7])
  ttl(KEYS[2], ARGV[6], now)
  touch_family(fk, t[7], ARGV[6], now, '', '0')
end
return {'used', t[1], t[2], t[3], t[4], tostring(uses), max}
"#;

/// KEYS: rt. ARGV: client, family key prefix.
pub const REVOKE_REFRESH: &str = r#"
local t = redis.call('HMGET', KEYS[1], 'fam', 'cl')
if not t[1] then return 'notfound' end
if t[2] ~= ARGV[1] then return 'wrongclient' end
local fk = ARGV[2] .. t[1]
if redis.call('EXISTS', fk) == 1 then redis.call('HSET', fk, 'rev', '1') end
return 'revoked'
"#;

/// KEYS: fam. 1 = revoked, 0 = unknown.
pub const REVOKE_FAMILY: &str = r#"
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], 'rev', '1')
return 1
"#;
