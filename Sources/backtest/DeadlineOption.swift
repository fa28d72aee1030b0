import ArgumentParser

/// `--timeout S`, the deadline of a `batch` or `sweep` call (its `timeout_ms`), shared so that both
/// read and check it alike.
struct DeadlineOption: ParsableArguments {
    @Option(help: "Seconds the whole batch or sweep may take (0 = the server's limit).")
    var timeout = 0.0

    func validate() throws {
        guard timeout >= 0, timeout <= 1_000_000 else { throw ValidationError("--timeout must be 0...1000000 seconds, not \(timeout)") }
    }

    /// The call's timeout; nil for the server's limit.
    var duration: Duration? { timeout > 0 ? .milliseconds(Int64(timeout * 1000)) : nil }
}
