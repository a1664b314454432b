/// Finds where one JSON request ends in bytes that arrive in pieces, as the
/// command socket reads them, without parsing it.
///
/// It tracks nesting and strings only: once the top-level object or array
/// closes, the request is complete and can be decoded. Bytes that can never
/// begin a request (anything but `{` or `[` after leading whitespace) or a
/// closing bracket with nothing open make it ``Verdict/invalid`` at once, so
/// garbage is answered without waiting for the deadline.
package struct CommandRequestScanner: Sendable {
  /// What is known after the bytes seen so far.
  package enum Verdict: Hashable, Sendable {
    /// More bytes are needed.
    case incomplete
    /// The request is the first `length` bytes.
    case complete(length: Int)
    /// These bytes can never be a request.
    case invalid
  }

  private var depth = 0
  private var started = false
  private var inString = false
  private var escaped = false
  private var scanned = 0
  private var verdict = Verdict.incomplete

  package init() {}

  /// Scans `bytes`, the next piece of the request.
  package mutating func scan(_ bytes: some Sequence<UInt8>) -> Verdict {
    guard verdict == .incomplete else { return verdict }
    for byte in bytes {
      scanned += 1
      if inString {
        if escaped {
          escaped = false
        } else if byte == UInt8(ascii: "\\") {
          escaped = true
        } else if byte == UInt8(ascii: "\"") {
          inString = false
        }
        continue
      }
      switch byte {
      case UInt8(ascii: " "), UInt8(ascii: "\t"), UInt8(ascii: "\n"), UInt8(ascii: "\r"):
        continue
      case UInt8(ascii: "{"), UInt8(ascii: "["):
        started = true
        depth += 1
      case UInt8(ascii: "}"), UInt8(ascii: "]"):
        depth -= 1
        if depth < 0 {
          verdict = .invalid
          return verdict
        }
        if depth == 0 {
          verdict = .complete(length: scanned)
          return verdict
        }
      case UInt8(ascii: "\""):
        guard started else {
          verdict = .invalid
          return verdict
        }
        inString = true
      default:
        guard started else {
          verdict = .invalid
          return verdict
        }
      }
    }
    return verdict
  }
}
