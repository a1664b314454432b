internal import Synchronization

#if canImport(Glibc)
  internal import Glibc
#endif

/// Where an SDK plugin's own messages go: stderr, and the guest-agent error
/// log when the host gave one.
public enum PluginLog {
  private static let errorLog = Mutex<Int32>(-1)

  /// Writes an error line to stderr and to the error log.
  public static func error(_ message: String) {
    let line = "\(message)\n"
    write(line)
    errorLog.withLock { fd in
      if fd >= 0 { writeAll(fd, line) }
    }
  }

  static func openErrorLog(_ path: String) {
    let fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0o600)
    errorLog.withLock { $0 = fd }
  }

  static func write(_ text: String) { writeAll(2, text) }
  static func writeStdout(_ text: String) { writeAll(1, text) }

  private static func writeAll(_ fd: Int32, _ text: String) {
    var bytes = Array(text.utf8)[...]
    while !bytes.isEmpty {
      let written = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
      if written <= 0 { return }
      bytes = bytes.dropFirst(written)
    }
  }
}
