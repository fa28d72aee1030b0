import BacktestClient
import BacktestCommandLine
import BacktestCore
import Dispatch
import Foundation

/// Ctrl-C while `backtest batch` follows a batch. The first one stops the batch on the server
/// with CancelBatch (as soon as the server announced its id, which it does before fetching data)
/// and says so on standard error; the batch's stream then ends CANCELLED with the count of
/// variants that finished, and the partial table is printed. A second Ctrl-C quits at once.
///
/// Without this, Ctrl-C would only drop the connection, and the server keeps a batch whose
/// connection was lost running for a client to re-attach.
final class BatchInterrupt: @unchecked Sendable {
    private let lock = NSLock()
    private var batchID: String?
    private var requested = false
    private var cancelSent = false
    private let client: BacktestClient
    private let source: any DispatchSourceSignal

    /// Whether Ctrl-C was pressed.
    var wasInterrupted: Bool { lock.withLock { requested } }

    /// Takes over SIGINT until `remove()`.
    init(client: BacktestClient) {
        self.client = client
        signal(SIGINT, SIG_IGN)
        source = DispatchSource.makeSignalSource(signal: SIGINT, queue: .global())
        source.setEventHandler { [weak self] in self?.interrupted() }
        source.resume()
    }

    /// The server announced the batch's id: cancel it now if Ctrl-C came first.
    func announce(_ id: String) {
        let cancelNow = lock.withLock { () -> Bool in
            batchID = id
            return requested && !cancelSent
        }
        if cancelNow { cancel(id) }
    }

    /// Gives SIGINT back its default action.
    func remove() {
        source.cancel()
        signal(SIGINT, SIG_DFL)
    }

    private func interrupted() {
        let (first, id) = lock.withLock { () -> (Bool, String?) in
            let first = !requested
            requested = true
            return (first, batchID)
        }
        guard first else {
            printError("interrupted again: quitting without waiting for the server")
            exit(130)
        }
        if let id {
            cancel(id)
        } else {
            printError("cancelling the batch once the server announces it (Ctrl-C again to quit at once)")
        }
    }

    private func cancel(_ id: String) {
        let send = lock.withLock { () -> Bool in
            defer { cancelSent = true }
            return !cancelSent
        }
        guard send else { return }
        printError("cancelling batch \(id) (Ctrl-C again to quit at once)")
        let client = self.client
        Task {
            do {
                let state = try await client.cancelBatch(id: id, timeout: .seconds(10))
                printError("batch \(id) \(state.state == .cancelled ? "cancelled" : "had already ended (\(state.statusText))"): "
                    + "\(state.completed) of \(state.total) variants finished")
            } catch {
                printError("could not cancel batch \(id): \(error); quitting (the server stops it once nobody re-attaches)")
                exit(130)
            }
        }
    }
}
