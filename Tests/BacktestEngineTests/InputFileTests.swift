import BacktestCore
import BacktestModel
import Foundation
import Testing

/// Issue #12 failure 6: `backtest run DIRECTORY` said "(NSCocoaErrorDomain error 256.)".
@Suite("Reading the CLI's input files")
struct InputFileTests {
    @Test func eachFailureSaysWhatIsWrongWithThePath() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("inputfile-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let dir = directory.path

        #expect(throws: BacktestError.invalidArgument("\(dir) is a directory, not a file: give the path of a JSON file")) {
            try InputFile.read(dir)
        }
        #expect(throws: BacktestError.invalidArgument("\(dir)/missing.json does not exist")) {
            try InputFile.read(dir + "/missing.json")
        }
        let file = dir + "/s.json"
        try Data("{}".utf8).write(to: URL(fileURLWithPath: file))
        #expect(try InputFile.read(file) == Data("{}".utf8))
        if getuid() != 0 {  // root reads anything
            try FileManager.default.setAttributes([.posixPermissions: 0o000], ofItemAtPath: file)
            #expect(throws: BacktestError.invalidArgument("\(file) cannot be read (permission denied)")) {
                try InputFile.read(file)
            }
        }
    }
}
