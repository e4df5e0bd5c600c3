//! The Lua scripts [`super::RedisStore`] runs (`EVALSHA`, loaded on `NOSCRIPT`). Each touches
//! exactly one key, passed in `KEYS[1]`, so all of them run on Redis Cluster; each is atomic.
//! Record rules (lengths, digits) come from [`super::record`], so the scripts and the Rust
//! decoder cannot drift apart; [`super::MemoryShared`] implements the same rules in Rust, and the
//! integration tests run the same protocol against both.
//!
//! Times come from Redis `TIME` (one clock for every replica); the GCRA script also accepts a
//! synthetic `now` so tests can drive it like `governor`'s fake clock. Since Redis 5 scripts
//! replicate their effects, not the script, so `TIME` inside a writing script is safe.

use super::record::{
    MAX_DEADLINE_DIGITS, MAX_LEASE, MAX_SEALED, MIN_SEALED, OWNER_HEX, STALE_AFTER_MS,
};
use super::{SYNTHETIC_MIN_TTL_MS, TAT_SLACK_US};

/// GCRA, `governor`'s algorithm (`tau = emission × (burst − 1)`).
///
/// `KEYS[1]` bucket; `ARGV[1]` emission µs; `ARGV[2]` burst; `ARGV[3]` now µs or `""` (Redis
/// `TIME`). Returns `{allowed 1|0, wait µs, corrupt 1|0}`. A stored TAT that is not a number or
/// lies further ahead than `burst × emission` plus slack cannot have been written by this script:
/// it is reported and treated as absent (the bucket restarts), so a poisoned store can neither
/// lock a client out nor crash the script.
///
/// The key expires once the bucket is full again, when forgetting it changes nothing. On a
/// synthetic clock real time does not follow `now`, so the key is kept at least
/// [`SYNTHETIC_MIN_TTL_MS`].
pub(super) fn gcra() -> String {
    format!(
        r"
local e = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local now
if ARGV[3] ~= '' then
  now = tonumber(ARGV[3])
else
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000000 + tonumber(t[2])
end
local corrupt = 0
local tat = now
local stored = redis.call('GET', KEYS[1])
if stored then
  local v = tonumber(stored)
  if v == nil or v ~= v or v > now + e * burst + {TAT_SLACK_US} then
    corrupt = 1
  elseif v > now then
    tat = v
  end
end
local allow_at = tat - e * (burst - 1)
if now < allow_at then
  return {{0, allow_at - now, corrupt}}
end
local new_tat = tat + e
local ttl = math.ceil((new_tat - now) / 1000)
if ARGV[3] ~= '' and ttl < {SYNTHETIC_MIN_TTL_MS} then
  ttl = {SYNTHETIC_MIN_TTL_MS}
end
redis.call('SET', KEYS[1], string.format('%.0f', new_tat), 'PX', ttl)
return {{1, 0, corrupt}}
"
    )
}

/// Claim a flight.
///
/// `KEYS[1]` flight; `ARGV[1]` the caller's `P` record; `ARGV[2]` its TTL in ms. Returns `false`
/// (nil) when the caller now holds the flight, else the record that stands: a well-formed `D`, or
/// a well-formed `P` whose deadline is live. An `E` record, a stale or planted `P` (deadline long
/// past, or further ahead than any lease) and anything malformed count as vacant.
pub(super) fn claim() -> String {
    let (min_done, max_done) = (1 + MIN_SEALED, 1 + MAX_SEALED);
    let owner_class = "[0-9a-f]".repeat(OWNER_HEX);
    let max_lease_ms = MAX_LEASE.as_millis();
    format!(
        r"
local v = redis.call('GET', KEYS[1])
if v then
  local kind = string.sub(v, 1, 1)
  if kind == 'D' and #v >= {min_done} and #v <= {max_done} then
    return v
  end
  if kind == 'P' then
    local digits = string.match(v, '^P{owner_class}(%d+)$')
    if digits and #digits <= {MAX_DEADLINE_DIGITS} then
      local t = redis.call('TIME')
      local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
      local deadline = tonumber(digits)
      if deadline + {STALE_AFTER_MS} >= now and deadline <= now + {max_lease_ms} then
        return v
      end
    end
  end
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return false
"
    )
}

/// Store a holder's outcome: compare-and-set on the holder's `P` (or a vacant key).
///
/// `KEYS[1]` flight; `ARGV[1]` the holder's `P`; `ARGV[2]` the `D` or `E` record; `ARGV[3]` TTL
/// ms. Returns 1 when stored, 0 when another record stands.
pub(super) const COMPLETE: &str = r"
local v = redis.call('GET', KEYS[1])
if v == ARGV[1] or not v then
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
  return 1
end
return 0
";

/// Delete a flight only if it holds exactly `ARGV[1]`. Returns 1 when deleted.
pub(super) const DISCARD: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
  return 1
end
return 0
";
