import ArgumentParser
import BacktestCore
import Foundation

/// A file the CLI writes (`--report`, `--csv`): checked before the call runs, so a directory or
/// a missing folder is said at once rather than after the backtest (a tester's `--report DIR`
/// got "NSCocoaErrorDomain error 512" once the run had finished), and written with a reason a
/// person reads.
enum OutputFile {
    /// - Throws: `ValidationError` naming `flag` when `path` is a directory or its folder does not exist.
    static func check(_ path: String?, flag: String) throws {
        guard let path else { return }
        var isDirectory: ObjCBool = false
        if path.isEmpty || path.hasSuffix("/") || (FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) && isDirectory.boolValue) {
            throw ValidationError("\(flag) '\(path)' is a directory: give a file path, e.g. \(flag) \((path as NSString).appendingPathComponent("out\(flag == "--csv" ? ".csv" : ".html")"))")
        }
        let folder = (path as NSString).deletingLastPathComponent
        guard folder.isEmpty || (FileManager.default.fileExists(atPath: folder, isDirectory: &isDirectory) && isDirectory.boolValue) else {
            throw ValidationError("\(flag) '\(path)': the folder '\(folder)' does not exist")
        }
    }

    /// Writes `text` to `path` (atomically).
    /// - Throws: INVALID_ARGUMENT "cannot write PATH: REASON" (the system's reason, e.g.
    ///   "Permission denied"), never Foundation's domain and code.
    static func write(_ text: String, to path: String) throws(BacktestError) {
        do {
            try Data(text.utf8).write(to: URL(fileURLWithPath: path), options: .atomic)
        } catch {
            throw BacktestError(.invalidArgument, "cannot write \(path): \(reason(error))")
        }
    }

    static func reason(_ error: any Error) -> String {
        let error = error as NSError
        if let posix = error.userInfo[NSUnderlyingErrorKey] as? NSError, posix.domain == NSPOSIXErrorDomain {
            return String(cString: strerror(Int32(posix.code)))
        }
        switch error.code {
        case NSFileWriteNoPermissionError: return "permission denied"
        case NSFileWriteOutOfSpaceError: return "no space left on the device"
        case NSFileWriteVolumeReadOnlyError: return "the file system is read-only"
        default: return "the file could not be written"
        }
    }
}
