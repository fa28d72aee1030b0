/// Runs `body`, failing the test instead of hanging when the event it waits for never comes
/// (the wait must be cancellable). A safety net, not a synchronisation: tests wait on events, so
/// the limit is generous (a loaded machine running the whole suite in parallel can take seconds
/// to schedule the awaited task).
func within<T: Sendable>(_ what: String, limit: Duration = .seconds(30),
                         _ body: @escaping @Sendable () async throws -> T) async throws -> T {
    try await withThrowingTaskGroup(of: T?.self) { group in
        group.addTask { try await body() }
        group.addTask {
            try await Task.sleep(for: limit)
            return nil
        }
        defer { group.cancelAll() }
        guard let first = try await group.next(), let value = first else {
            throw TestFailure("\(what) did not happen within \(limit)")
        }
        return value
    }
}
