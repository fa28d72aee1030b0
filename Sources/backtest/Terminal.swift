#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// What the CLI needs to know about its standard output: a terminal gets colors and in-place
/// redraws, a pipe or file plain lines.
enum Terminal {
    static var stdoutIsTTY: Bool { isatty(STDOUT_FILENO) != 0 }

    /// Colors only on a terminal, and never when NO_COLOR is set (https://no-color.org).
    static var useColor: Bool {
        stdoutIsTTY && (getenv("NO_COLOR").map { String(cString: $0).isEmpty } ?? true)
    }

    /// The terminal's width in columns; nil when stdout is not a terminal.
    static var columns: Int? {
        guard stdoutIsTTY else { return nil }
        var size = winsize()
        guard ioctl(STDOUT_FILENO, UInt(TIOCGWINSZ), &size) == 0, size.ws_col > 0 else { return nil }
        return Int(size.ws_col)
    }

    /// Prints `text` as is and flushes, so a redraw lands at once rather than when the buffer fills.
    static func write(_ text: String) {
        print(text, terminator: "")
        fflush(nil)  // every output stream; `stdout` itself is a global Swift 6 will not touch
    }
}
