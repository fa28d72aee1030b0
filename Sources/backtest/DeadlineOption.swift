import ArgumentParser

/// `--timeout S`, the deadline of a `run`, `batch`, `sweep` or `indicators` call (its
/// `timeout_ms`), shared so that all read and check it alike. Without it the call may take the
/// server's limit; a server that stops answering altogether is given up after two keepalive
/// intervals either way (`BacktestClient.Configuration.livenessInterval`).
struct DeadlineOption: ParsableArguments {
    @Option(parsing: .unconditional, help: "Seconds the call may take (0 = the server's limit).")
    var timeout = 0.0

    func validate() throws {
        guard timeout >= 0, timeout <= 1_000_000 else { throw ValidationError("--timeout must be 0...1000000 seconds, not \(timeout)") }
    }

    /// The call's timeout; nil for the server's limit.
    var duration: Duration? { timeout > 0 ? .milliseconds(Int64(timeout * 1000)) : nil }
}
