import BacktestCore
import Foundation

/// Reading a file the CLI was given (a strategy file, a variants file), with an error that says
/// what is wrong with the path in words, never a Foundation error's text ("The file couldn't be
/// opened. (NSCocoaErrorDomain error 256.)").
public enum InputFile {
    /// The bytes of the file at `path`.
    /// - Throws: INVALID_ARGUMENT naming `path` (shown in full, as typed, it is the user's own):
    ///   "FILE does not exist", "FILE is a directory, not a file", "FILE cannot be read (permission
    ///   denied)", or "cannot read FILE".
    public static func read(_ path: String) throws(BacktestError) -> Data {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            throw .invalidArgument("\(path) does not exist")
        }
        if isDirectory.boolValue {
            throw .invalidArgument("\(path) is a directory, not a file: give the path of a JSON file")
        }
        guard FileManager.default.isReadableFile(atPath: path) else {
            throw .invalidArgument("\(path) cannot be read (permission denied)")
        }
        do {
            return try Data(contentsOf: URL(fileURLWithPath: path))
        } catch {
            throw BacktestError(.invalidArgument, "cannot read \(path)", cause: error)
        }
    }
}
