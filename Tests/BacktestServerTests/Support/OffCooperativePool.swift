import BacktestTestSupport
import Testing

/// (A copy of BacktestEngineTests' trait.) Runs a test (or every test of a suite) with its synchronous code on `ComputeExecutor`'s
/// threads rather than Swift's cooperative pool: for tests that compute for long (sweeps,
/// engine-against-engine comparisons), which would otherwise hold a cooperative thread and starve
/// the server and client tasks of the tests running in parallel in the same process. What the
/// test checks is unchanged.
struct OffCooperativePool: TestTrait, SuiteTrait, TestScoping {
    var isRecursive: Bool { true }

    func provideScope(
        for test: Test, testCase: Test.Case?, performing function: @Sendable () async throws -> Void
    ) async throws {
        try await withTaskExecutorPreference(ComputeExecutor.shared) { try await function() }
    }
}

extension Trait where Self == OffCooperativePool {
    /// See `OffCooperativePool`.
    static var offCooperativePool: Self { OffCooperativePool() }
}
