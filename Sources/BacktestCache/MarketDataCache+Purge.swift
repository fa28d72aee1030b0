/// What a purge did, for `PurgeCacheResult` and the log.
package struct PurgeResult: Sendable, Hashable {
    /// Keys of older generations deleted by the sweep.
    package var removedEntries: Int
    /// The generation new requests use from now on.
    package var generation: Int64
}

extension MarketDataCache {
    /// Purges the cache consistently: INCR the generation (new requests see an empty cache at
    /// once), drop the in-process layer, wait until this process's requests on older generations
    /// have finished (bounded by `options.purgeGrace`), then delete older generations' keys with
    /// SCAN MATCH + UNLINK. Never FLUSHDB/FLUSHALL/KEYS: the Redis may be shared.
    ///
    /// Throws `.unavailable` when Redis cannot be reached (the in-process layer is cleared anyway).
    ///
    /// - Parameter reason: why ("4:00 PM ET", "manual"), kept for `figures()`.
    package func purge(reason: String = "manual") async throws(RedisFailure) -> PurgeResult {
        let generation = try await beginPurge()
        await waitForOlderSessions(than: generation)
        let removed = try await sweep(olderThan: generation)
        metrics.purged(atUnixSeconds: clock.now.unixSeconds, reason: reason, removed: removed)
        return PurgeResult(removedEntries: removed, generation: generation)
    }

    /// Step one of `purge()`: the new generation. Requests opened from now on use it.
    func beginPurge() async throws(RedisFailure) -> Int64 {
        local.removeAll()
        guard let pool else { return state.withLockedValue { $0.latestGeneration } ?? 0 }
        let floor = state.withLockedValue { $0.latestGeneration } ?? -1
        let reply = try await pool.execute(GenerationScripts.bump(keys.generation, floor: floor, unixSeconds: clock.now.unixSeconds))
        guard let generation = reply.integer else {
            if case .error(let message) = reply { throw .replyError(message) }
            throw .replyError("bumping \(keys.generation) returned \(reply)")
        }
        state.withLockedValue { state in
            state.latestGeneration = max(state.latestGeneration ?? generation, generation)
        }
        local.removeAll()
        return generation
    }

    /// Waits until no session of this process reads a generation older than `generation`, or
    /// `options.purgeGrace` has passed.
    func waitForOlderSessions(than generation: Int64) async {
        let grace = options.purgeGrace
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let id = state.withLockedValue { state -> Int? in
                guard Self.hasSessions(olderThan: generation, state) else { return nil }
                let id = state.nextWaiterID
                state.nextWaiterID += 1
                state.drainWaiters[id] = (generation, continuation)
                return id
            }
            guard let id else {
                continuation.resume()
                return
            }
            Task { [self] in
                try? await Task.sleep(for: grace)
                let waiter = state.withLockedValue { $0.drainWaiters.removeValue(forKey: id) }
                if let waiter {
                    logger.warning("cache purge: requests still read the old generation after \(grace); sweeping anyway")
                    waiter.continuation.resume()
                }
            }
        }
    }

    /// Deletes every data key of a generation older than `generation` under our prefix; returns
    /// how many were deleted. Unrelated keys (other prefixes, other schema versions) stay.
    func sweep(olderThan generation: Int64) async throws(RedisFailure) -> Int {
        guard let pool else { return 0 }
        let pattern = keys.dataKeyPattern
        var cursor = "0"
        var removed = 0
        repeat {
            let reply = try await pool.execute(RedisCommand("SCAN", cursor, "MATCH", pattern, "COUNT", "1000"))
            guard case .array(let parts) = reply, parts.count == 2, let next = parts[0].bytes,
                  case .array(let found) = parts[1]
            else {
                if case .error(let message) = reply { throw .replyError(message) }
                throw .replyError("unexpected SCAN reply")
            }
            cursor = String(decoding: next, as: UTF8.self)
            let stale = found.compactMap(\.bytes).filter { key in keys.generation(ofKey: key).map { $0 < generation } ?? false }
            if !stale.isEmpty {
                let deleted = try await pool.execute(RedisCommand([Array("UNLINK".utf8)] + stale))
                removed += Int(deleted.integer ?? 0)
            }
        } while cursor != "0"
        return removed
    }
}
