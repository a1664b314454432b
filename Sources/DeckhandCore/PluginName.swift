/// The rule for a plugin's name: `^[a-z0-9][a-z0-9._-]{0,63}$`.
///
/// A name becomes one path component under every root the host keeps
/// (state, logs, sockets, cgroups), so it must never be `.` or `..` (the
/// root itself or its parent) nor hold a `/`: the first character is a
/// lowercase letter or a digit, which rules out names made only of dots.
package enum PluginName {
  /// What a valid name looks like, for error messages.
  package static let rule = "1 to 64 characters of a-z, 0-9, '.', '_' and '-', starting with a letter or digit"

  /// Whether `name` follows the rule.
  package static func isValid(_ name: String) -> Bool {
    let bytes = Array(name.utf8)
    guard let first = bytes.first, bytes.count <= 64, isLowerAlphanumeric(first) else { return false }
    return bytes.allSatisfy { byte in
      isLowerAlphanumeric(byte) || byte == UInt8(ascii: ".") || byte == UInt8(ascii: "_") || byte == UInt8(ascii: "-")
    }
  }

  /// Throws ``DeckhandError`` `configurationInvalid` naming `name` and the
  /// rule when it does not follow it.
  package static func check(_ name: String, what: String = "plugin name") throws(DeckhandError) {
    guard isValid(name) else {
      throw DeckhandError(.configurationInvalid, "\(what) \"\(name)\" is not valid: use \(rule)")
    }
  }

  private static func isLowerAlphanumeric(_ byte: UInt8) -> Bool {
    (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(byte) || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte)
  }
}
