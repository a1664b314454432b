/// Lower-case hexadecimal text of bytes (digests, ids).
///
/// One table lookup per nibble: `String(format: "%02x")` per byte cost
/// several microseconds per digest, and the server hashes a credential on
/// every call.
package enum HexText {
  private static let digits = Array("0123456789abcdef".utf8)

  /// `bytes` as two lower-case hex digits each.
  package static func encode(_ bytes: some Sequence<UInt8>) -> String {
    var text: [UInt8] = []
    text.reserveCapacity(bytes.underestimatedCount * 2)
    for byte in bytes {
      text.append(digits[Int(byte >> 4)])
      text.append(digits[Int(byte & 0x0f)])
    }
    return String(decoding: text, as: UTF8.self)
  }

  /// Whether `text` is a SHA-256 digest as ``encode(_:)`` writes it: 64
  /// lower-case hex digits (and so safe as a file name).
  package static func isDigest(_ text: String) -> Bool {
    text.utf8.count == 64 && text.utf8.allSatisfy { digits.contains($0) }
  }
}
