"""Server-side Lua for the bloom cache: every step that must be atomic with the readiness marker.

A generation descriptor is ``"1;<gen hex16>;<server run_id>;<capacity>;<layout>"`` where layout is
``bb2/...`` (bitmap, header word = gen) or ``bf/<error rate>`` (RedisBloom, sentinel item
``"\\0dg:gen:<gen>"``). A generation counts only while the server's run_id equals the one it was
built under (a restart may have reloaded an older snapshot missing recent adds) and while its
value still carries its own header or sentinel (nothing evicted or replaced it).

Command names of the RedisBloom path come in ARGV so tests can stand a fake in for the module.
"""

from __future__ import annotations

PRELUDE = r"""
local function run_id()
  return string.match(redis.call('INFO', 'server'), 'run_id:(%x+)')
end
local function desc_gen(d) return string.match(d, '^1;(%x+);') end
local function desc_run(d) return string.match(d, '^1;%x+;(%x+);') end
local function desc_layout(d) return string.match(d, '^1;%x+;%x+;%d+;(.*)$') end
local function desc_nbytes(d)
  local nwords = string.match(desc_layout(d), '^bb2/%d+/(%d+)/')
  return 8 * (1 + tonumber(nwords))
end
local function is_bitmap(d) return string.sub(desc_layout(d), 1, 4) == 'bb2/' end
local function hex_bytes(h)
  return (string.gsub(h, '..', function(cc) return string.char(tonumber(cc, 16)) end))
end
local function sentinel(d) return '\0dg:gen:' .. desc_gen(d) end
-- the value under key is the one desc describes, built under this server incarnation
local function intact(key, d, run, mexists)
  if desc_run(d) ~= run then return false end
  if redis.call('EXISTS', key) == 0 then return false end
  if is_bitmap(d) then
    if redis.call('TYPE', key)['ok'] ~= 'string' then return false end
    if redis.call('STRLEN', key) ~= desc_nbytes(d) then return false end
    return redis.call('GETRANGE', key, 0, 7) == hex_bytes(desc_gen(d))
  end
  local r = redis.call(mexists, key, sentinel(d))
  return tonumber(r[1]) == 1
end
local function now_s()
  local t = redis.call('TIME')
  return tonumber(t[1]) + tonumber(t[2]) / 1e6
end
local CUR_FIELDS = {'cur', 'cur_entries', 'cur_ready_at'}
local BUILD_FIELDS = {'build', 'build_added', 'build_hb', 'build_started'}
-- forget generations that no longer count, so every reader sees "not ready" for them
local function validated(meta, key, field, fields, run, mexists)
  local d = redis.call('HGET', meta, field)
  if not d then return '' end
  if intact(key, d, run, mexists) then return d end
  redis.call('DEL', key)
  redis.call('HDEL', meta, unpack(fields))
  return ''
end
"""

# KEYS: meta cur build [tmp_cur tmp_build]
# ARGV: want_cur want_build payload_cur payload_build nkeys mexists madd key...
# -> {1, wrote_cur, wrote_build, cur_entries after the add} or {0, cur_desc, build_desc} (raced).
# payload: '' (no generation), 'P'..packed uint32 LE bit offsets, 'T' (OR the tmp key in),
# 'K' (RedisBloom: the keys in ARGV[8..]).
ADD = (
    PRELUDE
    + r"""
local meta, cur, build = KEYS[1], KEYS[2], KEYS[3]
local mexists, madd = ARGV[6], ARGV[7]
local run = run_id()
local have_cur = validated(meta, cur, 'cur', CUR_FIELDS, run, mexists)
local have_build = validated(meta, build, 'build', BUILD_FIELDS, run, mexists)
if have_cur ~= ARGV[1] or have_build ~= ARGV[2] then
  return {0, have_cur, have_build}
end
local function set_bits(key, packed)
  local n = math.floor(#packed / 4)
  local args, j = {}, 0
  for i = 0, n - 1 do
    args[j + 1] = 'SET'; args[j + 2] = 'u1'
    args[j + 3] = struct.unpack('<I4', packed, 4 * i + 1); args[j + 4] = 1
    j = j + 4
    if j >= 4000 then redis.call('BITFIELD', key, unpack(args, 1, j)); j = 0 end
  end
  if j > 0 then redis.call('BITFIELD', key, unpack(args, 1, j)) end
end
local function write(key, payload, tmp)
  local mode = string.sub(payload, 1, 1)
  if mode == 'P' then
    set_bits(key, string.sub(payload, 2))
  elseif mode == 'T' then
    if redis.call('STRLEN', tmp) ~= redis.call('STRLEN', key) then
      return redis.error_reply('bloom tmp bitmap has the wrong size')
    end
    redis.call('BITOP', 'OR', key, key, tmp)
  elseif mode == 'K' then
    local i = 8
    while i <= #ARGV do
      local j = math.min(i + 999, #ARGV)
      redis.call(madd, key, unpack(ARGV, i, j))
      i = j + 1
    end
  else
    return redis.error_reply('bloom add payload missing for a live generation')
  end
  return false
end
local wrote_cur, wrote_build, cur_entries = 0, 0, 0
if have_cur ~= '' then
  local err = write(cur, ARGV[3], KEYS[4])
  if err then return err end
  cur_entries = redis.call('HINCRBY', meta, 'cur_entries', tonumber(ARGV[5]))
  wrote_cur = 1
end
if have_build ~= '' then
  local err = write(build, ARGV[4], KEYS[5])
  if err then return err end
  redis.call('HINCRBY', meta, 'build_added', tonumber(ARGV[5]))
  wrote_build = 1
end
return {1, wrote_cur, wrote_build, cur_entries}
"""
)

# KEYS: meta build   ARGV: gen capacity layout force lease_s nbytes mexists reserve madd error_rate
BEGIN = (
    PRELUDE
    + r"""
local meta, build = KEYS[1], KEYS[2]
local gen, capacity, layout = ARGV[1], ARGV[2], ARGV[3]
local mexists, reserve, madd = ARGV[7], ARGV[8], ARGV[9]
local run = run_id()
local now = now_s()
local other = validated(meta, build, 'build', BUILD_FIELDS, run, mexists)
if other ~= '' and ARGV[4] ~= '1' then
  local hb = tonumber(redis.call('HGET', meta, 'build_hb') or '0') or 0
  if now - hb < tonumber(ARGV[5]) then
    return {0, other, tostring(now - hb)}
  end
end
local desc = '1;' .. gen .. ';' .. run .. ';' .. capacity .. ';' .. layout
redis.call('DEL', build)
if string.sub(layout, 1, 4) == 'bb2/' then
  -- SETRANGE on a missing key allocates exactly nbytes of zeros (no Lua copy of the string)
  redis.call('SETRANGE', build, tonumber(ARGV[6]) - 1, '\0')
  redis.call('SETRANGE', build, 0, hex_bytes(gen))
else
  redis.call(reserve, build, ARGV[10], capacity)
  redis.call(madd, build, sentinel(desc))
end
redis.call('HSET', meta, 'build', desc, 'build_added', 0, 'build_hb', tostring(now),
  'build_started', tostring(now))
return {1, desc}
"""
)

# KEYS: meta build   ARGV: desc mexists   -> 1 while the build is still this token's
HEARTBEAT = (
    PRELUDE
    + r"""
local run = run_id()
local have = validated(KEYS[1], KEYS[2], 'build', BUILD_FIELDS, run, ARGV[2])
if have ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'build_hb', tostring(now_s()))
return 1
"""
)

# KEYS: meta cur build stage   ARGV: desc loaded has_stage mexists
FINISH = (
    PRELUDE
    + r"""
local meta, cur, build, stage = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local desc, mexists = ARGV[1], ARGV[4]
local run = run_id()
local have = validated(meta, build, 'build', BUILD_FIELDS, run, mexists)
if have ~= desc then
  redis.call('DEL', stage)
  return 0
end
if ARGV[3] == '1' then
  if redis.call('STRLEN', stage) ~= desc_nbytes(desc)
     or redis.call('GETRANGE', stage, 0, 7) ~= hex_bytes(desc_gen(desc)) then
    redis.call('DEL', stage)
    return 0
  end
  redis.call('BITOP', 'OR', build, build, stage)
  redis.call('DEL', stage)
end
local added = tonumber(redis.call('HGET', meta, 'build_added') or '0') or 0
redis.call('RENAME', build, cur)
redis.call('HDEL', meta, unpack(BUILD_FIELDS))
redis.call('HSET', meta, 'cur', desc, 'cur_entries', tonumber(ARGV[2]) + added,
  'cur_ready_at', tostring(now_s()))
return 1
"""
)

# KEYS: meta build stage   ARGV: desc
ABORT = r"""
redis.call('DEL', KEYS[3])
if redis.call('HGET', KEYS[1], 'build') == ARGV[1] then
  redis.call('DEL', KEYS[2])
  redis.call('HDEL', KEYS[1], 'build', 'build_added', 'build_hb', 'build_started')
  return 1
end
return 0
"""

# KEYS: meta cur   ARGV: desc ('' = whatever is current)
INVALIDATE = r"""
local have = redis.call('HGET', KEYS[1], 'cur')
if not have then return 0 end
if ARGV[1] ~= '' and have ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[2])
redis.call('HDEL', KEYS[1], 'cur', 'cur_entries', 'cur_ready_at')
return 1
"""

# KEYS: meta cur build   ARGV: mexists
# -> {cur_desc, build_desc, cur_entries, build_added, build_hb, now, cur_bytes, build_bytes}
STATUS = (
    PRELUDE
    + r"""
local meta, cur, build = KEYS[1], KEYS[2], KEYS[3]
local run = run_id()
local c = validated(meta, cur, 'cur', CUR_FIELDS, run, ARGV[1])
local b = validated(meta, build, 'build', BUILD_FIELDS, run, ARGV[1])
local function mem(key)
  local m = redis.call('MEMORY', 'USAGE', key, 'SAMPLES', '0')
  if not m then return 0 end
  return m
end
return {c, b, redis.call('HGET', meta, 'cur_entries') or '0', redis.call('HGET', meta, 'build_added') or '0',
  redis.call('HGET', meta, 'build_hb') or '0', tostring(now_s()), mem(cur), mem(build)}
"""
)
