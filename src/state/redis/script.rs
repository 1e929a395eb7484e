//! The Lua scripts the store runs in Redis, what one decision asks of its script, and the
//! parsing of the script's reply.

use super::value::{decode, encode};
use super::{Failure, RedisStore};
use crate::rule::Limits;
use crate::state::UserState;

/// [`crate::rule::apply`] in one script.
/// KEYS: 1 user key, 2 epoch key, 3 lost_at key.
/// ARGV: 1 expected epoch, 2 now, 3 kind (0 malformed, 1 no match, 2 step, 3 recovery code,
/// 4 bad password, 5 merge only), 4 step (kind 3: the code's index), 5 offset_secs, 6 radius,
/// 7 max_failures, 8 lockout_secs, 9 ttl,
/// 10 the local store's state of the user, encoded as a value ("" none): its used steps and
/// recovery codes are used here too, and (kind 5 only) its failures and lock are merged in,
/// 11 counter_based (1: the step is a counter, HOTP), 12 the recovery set (kind 3).
/// A value is `last:failures:locked` (written by older versions),
/// `last:failures:locked:last_offset:recent` (recent: steps separated by commas, oldest first),
/// or either followed by `:keep:recovery_set:recovery_used` (the offset and recent empty when
/// none), exactly as [`encode`] writes it. A kept value (keep 1) is written without expiry.
/// Returns {-1} epoch missing, {-2, epoch} another epoch, {-3} unreadable value, or
/// {decision (0 accepted, 1 bad code, 2 replay, 3 locked, 4 malformed, 5 merged, 6 recovery
/// code accepted, 7 bad password), value}.
pub const DECIDE_SCRIPT: &str = r"
local epoch = redis.call('GET', KEYS[2])
if not epoch then return {-1} end
if epoch ~= ARGV[1] then return {-2, epoch} end
local K = 8
local function steps(text)
  local out = {}
  if text == '' then return out end
  local start = 1
  while true do
    local i = string.find(text, ',', start, true)
    local part = i and string.sub(text, start, i - 1) or string.sub(text, start)
    if not string.match(part, '^%d+$') then return nil end
    out[#out + 1] = tonumber(part)
    if not i then break end
    start = i + 1
  end
  if #out > K then return nil end
  return out
end
local function parse(text)
  if text == '' then return {failures = 0, locked = 0, recent = {}, keep = false, rset = 0, rused = 0} end
  local a, b, c, d, e, k, rs, ru = string.match(text,
    '^(%d*):(%d+):(%d+):(%-?%d+):([%d,]*):([01]):(%d+):(%d+)$')
  if not b then
    a, b, c, k, rs, ru = string.match(text, '^(%d*):(%d+):(%d+):::([01]):(%d+):(%d+)$')
  end
  if not b then
    a, b, c, d, e = string.match(text, '^(%d*):(%d+):(%d+):(%-?%d+):([%d,]*)$')
  end
  if not b then
    a, b, c = string.match(text, '^(%d*):(%d+):(%d+)$')
    if not b then return nil end
  end
  if d and a == '' then return nil end
  local recent = steps(e or '')
  if not recent then return nil end
  local state = {failures = tonumber(b), locked = tonumber(c), recent = recent,
    keep = k == '1', rset = tonumber(rs or '0'), rused = tonumber(ru or '0')}
  if state.rset > 4294967295 or state.rused > 4294967295 then return nil end
  if a ~= '' then state.last = tonumber(a) end
  if d then state.last_off = tonumber(d) end
  return state
end
local function push(recent, step)
  local out = {}
  for _, s in ipairs(recent) do if s ~= step then out[#out + 1] = s end end
  out[#out + 1] = step
  while #out > K do table.remove(out, 1) end
  return out
end
local function has_bit(mask, i) return math.floor(mask / 2 ^ i) % 2 == 1 end
local function or_masks(a, b)
  local out = 0
  for i = 0, 31 do if has_bit(a, i) or has_bit(b, i) then out = out + 2 ^ i end end
  return out
end
local function frame(step, off) return step - math.floor(off / 10) end
local now = tonumber(ARGV[2])
local kind = tonumber(ARGV[3])
local off = tonumber(ARGV[5])
local counter = ARGV[11] == '1'
local set = tonumber(ARGV[12])
local cur = redis.call('GET', KEYS[1])
local st = parse(cur or '')
if not st then return {-3} end
local floor = parse(ARGV[10])
if not floor then return {-3} end
if floor.last and ((not st.last)
    or frame(floor.last, floor.last_off or off) > frame(st.last, st.last_off or off)) then
  st.last = floor.last
  st.last_off = floor.last_off
end
for _, s in ipairs(floor.recent) do
  local known = false
  for _, r in ipairs(st.recent) do if r == s then known = true end end
  if not known then
    st.recent[#st.recent + 1] = s
    while #st.recent > K do table.remove(st.recent, 1) end
  end
end
if floor.keep then st.keep = true end
if floor.rset ~= 0 or floor.rused ~= 0 then
  if floor.rset == st.rset then
    st.rused = or_masks(st.rused, floor.rused)
  elseif (st.rset == 0 and st.rused == 0) or (kind == 3 and floor.rset == set) then
    st.rset = floor.rset
    st.rused = floor.rused
  end
end
local decision = 5
if kind == 5 then
  if floor.failures > st.failures then st.failures = floor.failures end
  if floor.locked > st.locked then st.locked = floor.locked end
elseif st.locked > now then
  decision = 3
else
  if kind == 0 then
    decision = 4
  elseif kind == 1 then
    decision = 1
  elseif kind == 4 then
    decision = 7
  elseif kind == 8 then
    decision = 0
  elseif kind == 9 then
    decision = 2
  elseif kind == 3 then
    local index = tonumber(ARGV[4])
    if st.rset == set and index < 32 and has_bit(st.rused, index) then
      decision = 2
    else
      if st.rset ~= set then
        st.rset = set
        st.rused = 0
      end
      if index < 32 then st.rused = st.rused + 2 ^ index end
      st.keep = true
      decision = 6
    end
  else
    local step = tonumber(ARGV[4])
    local used = false
    local lost = redis.call('GET', KEYS[3])
    if counter then
      if st.last and step <= st.last then used = true end
      if lost then used = true end
    else
      if st.last and (step == st.last
          or frame(step, off) < frame(st.last, st.last_off or off)) then used = true end
      if lost then
        local lfloor = math.floor((tonumber(lost) + off) / 10) + tonumber(ARGV[6])
        if step <= lfloor then used = true end
      end
    end
    for _, r in ipairs(st.recent) do if r == step then used = true end end
    if used then
      decision = 2
    else
      decision = 0
      st.last = step
      st.last_off = tonumber(ARGV[13])
      st.recent = push(st.recent, step)
      if counter then st.keep = true end
    end
  end
  if decision == 0 or decision == 6 then
    st.failures = 0
  else
    st.failures = st.failures + 1
    if st.failures >= tonumber(ARGV[7]) then
      st.failures = 0
      st.locked = now + tonumber(ARGV[8])
    end
  end
end
local kept = st.keep or st.rset ~= 0 or st.rused ~= 0
local value = ''
if st.last or st.failures ~= 0 or st.locked ~= 0 or kept then
  value = (st.last and string.format('%d', st.last) or '') .. ':'
    .. string.format('%d', st.failures) .. ':' .. string.format('%d', st.locked)
  if st.last_off and st.last then
    local parts = {}
    for i, r in ipairs(st.recent) do parts[i] = string.format('%d', r) end
    value = value .. ':' .. string.format('%d', st.last_off) .. ':' .. table.concat(parts, ',')
  elseif kept then
    value = value .. '::'
  end
  if kept then
    value = value .. ':' .. (st.keep and '1' or '0') .. ':' .. string.format('%d', st.rset)
      .. ':' .. string.format('%d', st.rused)
  end
end
if value ~= (cur or '') then
  if value == '' then
    redis.call('DEL', KEYS[1])
  elseif st.keep then
    redis.call('SET', KEYS[1], value)
  else
    local ttl = tonumber(ARGV[9])
    if st.locked - now + 1 > ttl then ttl = st.locked - now + 1 end
    redis.call('SET', KEYS[1], value, 'EX', ttl)
  end
end
return {decision, value}
";

/// Makes the epoch if there is none; with ARGV[2] = 1 (the data this server knew is gone) also
/// starts the quarantine, unless one is already running. KEYS: 1 epoch, 2 lost_at. ARGV: 1 a
/// fresh id, 2 lost (0/1), 3 now, 4 quarantine expiry. Returns the epoch now in force.
pub(super) const EPOCH_SCRIPT: &str = r"
local cur = redis.call('GET', KEYS[1])
if not cur then
  redis.call('SET', KEYS[1], ARGV[1])
  cur = ARGV[1]
  if ARGV[2] == '1' then redis.call('SET', KEYS[2], ARGV[3], 'EX', tonumber(ARGV[4])) end
elseif ARGV[2] == '1' then
  redis.call('SET', KEYS[2], ARGV[3], 'NX', 'EX', tonumber(ARGV[4]))
end
return cur
";

/// Compare-and-set for `update`: KEYS[1] user key; ARGV[1] value read ("" = absent); ARGV[2]
/// new value ("" = delete); ARGV[3] expiry in seconds (0: none, a kept value). Returns 1 if
/// written, 0 if the value changed meanwhile.
pub(super) const CAS_SCRIPT: &str = r"
local cur = redis.call('GET', KEYS[1])
if (cur or '') ~= ARGV[1] then return 0 end
if ARGV[2] == '' then
  if cur then redis.call('DEL', KEYS[1]) end
elseif ARGV[3] == '0' then
  redis.call('SET', KEYS[1], ARGV[2])
else
  redis.call('SET', KEYS[1], ARGV[2], 'EX', tonumber(ARGV[3]))
end
return 1
";

/// One run of [`DECIDE_SCRIPT`]: what was found (`kind`, `step`), when, under which limits,
/// and the local store's view merged in (`floor`).
#[derive(Clone, Copy)]
pub(super) struct Ask<'a> {
    pub(super) kind: i64,
    /// The step (kind 2), or the recovery code's index (kind 3).
    pub(super) step: i64,
    /// The recovery code set (kind 3; 0 otherwise).
    pub(super) set: u32,
    pub(super) now: i64,
    pub(super) limits: &'a Limits,
    pub(super) floor: &'a UserState,
}

/// [`DECIDE_SCRIPT`]'s kinds: what was found.
pub(super) const KIND_MALFORMED: i64 = 0;
pub(super) const KIND_NO_MATCH: i64 = 1;
pub(super) const KIND_STEP: i64 = 2;
pub(super) const KIND_RECOVERY: i64 = 3;
pub(super) const KIND_BAD_PASSWORD: i64 = 4;
/// [`Found::Settled`](crate::rule::Found::Settled): decided on a further token's own key.
pub(super) const KIND_SETTLED_ACCEPTED: i64 = 8;
pub(super) const KIND_SETTLED_REPLAY: i64 = 9;
/// "Merge the floor in, decide nothing".
pub(super) const KIND_MERGE: i64 = 5;

/// [`DECIDE_SCRIPT`]'s answers.
pub(super) const ANSWER_ACCEPTED: i64 = 0;
pub(super) const ANSWER_BAD_CODE: i64 = 1;
pub(super) const ANSWER_REPLAY: i64 = 2;
pub(super) const ANSWER_LOCKED: i64 = 3;
pub(super) const ANSWER_MALFORMED: i64 = 4;
pub(super) const ANSWER_RECOVERY_ACCEPTED: i64 = 6;
pub(super) const ANSWER_BAD_PASSWORD: i64 = 7;

/// What one decision script answered.
pub(super) enum Reply {
    Decided {
        code: i64,
        state: UserState,
    },
    /// The epoch is missing (`None`) or another one.
    Epoch(Option<String>),
    Unreadable,
}

impl RedisStore {
    /// Runs [`DECIDE_SCRIPT`] once.
    pub(super) fn run_decide(
        &self,
        conn: &mut redis::Connection,
        username: &str,
        ask: &Ask,
    ) -> Result<Reply, Failure> {
        let Ask {
            kind,
            step,
            set,
            now,
            limits,
            floor,
        } = *ask;
        let expected = self.epoch.lock().known.clone().unwrap_or_default();
        let reply: redis::Value = self
            .decide_script
            .key(self.key(username))
            .key(self.epoch_key())
            .key(self.lost_key())
            .arg(expected)
            .arg(now)
            .arg(kind)
            .arg(step)
            .arg(limits.offset_secs)
            .arg(limits.radius)
            .arg(limits.max_failures)
            .arg(limits.lockout_secs)
            .arg(self.ttl())
            .arg(encode(floor))
            .arg(u8::from(limits.counter_based))
            .arg(set)
            .arg(limits.learned_offset_secs)
            .invoke(conn)
            .map_err(Failure::Redis)?;
        parse_reply(&reply).ok_or_else(|| {
            Failure::Refused("the decision script answered in an unexpected form".into())
        })
    }
}

fn parse_reply(value: &redis::Value) -> Option<Reply> {
    use redis::Value;
    let Value::Array(items) = value else {
        return None;
    };
    let int = |v: &Value| match v {
        Value::Int(i) => Some(*i),
        _ => None,
    };
    match int(items.first()?)? {
        -1 => Some(Reply::Epoch(None)),
        -2 => match items.get(1)? {
            Value::BulkString(bytes) => {
                Some(Reply::Epoch(Some(String::from_utf8(bytes.clone()).ok()?)))
            }
            _ => None,
        },
        -3 => Some(Reply::Unreadable),
        code if (0..=7).contains(&code) && items.len() == 2 => match &items[1] {
            Value::BulkString(bytes) => Some(Reply::Decided {
                code,
                state: decode(std::str::from_utf8(bytes).ok()?)?,
            }),
            _ => None,
        },
        _ => None,
    }
}
