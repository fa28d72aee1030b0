import Logging
import Synchronization

/// A swift-log handler that keeps messages in memory so tests can read what was logged.
package final class LogCapture: Sendable {
    private let lines = Mutex<[String]>([])
    private let detailed = Mutex<[String]>([])

    package init() {}

    package var messages: [String] { lines.withLock { $0 } }
    /// Each message followed by its metadata as ` key=value`, keys sorted.
    package var messagesWithMetadata: [String] { detailed.withLock { $0 } }

    package func logger(_ label: String = "test") -> Logger {
        Logger(label: label) { _ in Handler(capture: self) }
    }

    private struct Handler: LogHandler {
        let capture: LogCapture
        var metadata: Logger.Metadata = [:]
        var logLevel: Logger.Level = .trace
        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }
        func log(event: LogEvent) {
            capture.lines.withLock { $0.append(event.message.description) }
            let all = metadata.merging(event.metadata ?? [:]) { $1 }
            let line = ([event.message.description] + all.keys.sorted().map { "\($0)=\(all[$0]!)" }).joined(separator: " ")
            capture.detailed.withLock { $0.append(line) }
        }
    }
}
