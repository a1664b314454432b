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
}
