/// The two Lua scripts that read and bump the generation counter. Each is one round trip and
/// atomic in Redis, so several server processes sharing one Redis agree on the generation.
///
/// The rule both follow: the generation never goes back below `floor`, the newest generation
/// the calling process has seen. A Redis that lost its state (restarted without persistence,
/// FLUSHALL by someone else, a failover to a replica that lagged, an old RDB snapshot) reads as
/// "no counter" or "an older counter"; the script then sets a fresh generation,
/// `max(floor + 1, now in milliseconds)`, which is above every generation any process can hold
/// data for (they count purges up from an earlier such value, or from 0), so:
/// - caching resumes at once (nobody waits for purges to climb back to the old number), and
/// - nothing keyed by a generation from before a purge is ever served again.
/// A process that has never seen a generation (floor -1) reads a missing counter as 0 and creates
/// it, as on a fresh Redis: from then on a missing counter always means Redis lost its state.
enum GenerationScripts {
    /// KEYS[1] = counter, ARGV[1] = floor, ARGV[2] = fresh value. Returns the generation to use.
    static let readSource = """
        local v = redis.call('GET', KEYS[1])
        local floor = tonumber(ARGV[1])
        if v then
          local g = tonumber(v)
          if g and g >= floor then return g end
        elseif floor < 0 then
          redis.call('SET', KEYS[1], '0')
          return 0
        end
        redis.call('SET', KEYS[1], ARGV[2])
        return tonumber(ARGV[2])
        """

    /// A purge: the counter plus one, or the fresh value when that would not pass `floor`.
    static let bumpSource = """
        local g = tonumber(redis.call('GET', KEYS[1]) or '0') or 0
        local n = g + 1
        if n <= tonumber(ARGV[1]) then n = tonumber(ARGV[2]) end
        redis.call('SET', KEYS[1], string.format('%d', n))
        return n
        """

    /// A generation no process can have used: above `floor` and at least the wall clock in ms.
    static func fresh(floor: Int64, unixSeconds: Int64) -> Int64 {
        max(floor + 1, unixSeconds * 1000)
    }

    static func read(_ key: String, floor: Int64, unixSeconds: Int64) -> RedisCommand {
        RedisCommand("EVAL", readSource, "1", key, String(floor), String(fresh(floor: floor, unixSeconds: unixSeconds)))
    }

    static func bump(_ key: String, floor: Int64, unixSeconds: Int64) -> RedisCommand {
        RedisCommand("EVAL", bumpSource, "1", key, String(floor), String(fresh(floor: floor, unixSeconds: unixSeconds)))
    }
}
