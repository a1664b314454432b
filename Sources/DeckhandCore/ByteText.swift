/// Sizes as people write them in flags: `64MiB`, `512KiB`, `1GiB`, `1.5MiB`
/// or a bare number of bytes (the binary units only: a size that is
/// off by 5% because of `MB` against `MiB` is worse than an error).
package enum ByteText {
  static let units: [(suffix: String, bytes: Double)] = [("KiB", 1024), ("MiB", 1_048_576), ("GiB", 1_073_741_824)]

  /// Parses `text`; nil if it is not a size or is negative.
  package static func parse(_ text: String) -> Int64? {
    for unit in units where text.hasSuffix(unit.suffix) {
      guard let number = Double(text.dropLast(unit.suffix.count)), number >= 0, number * unit.bytes < 9e18 else {
        return nil
      }
      return Int64((number * unit.bytes).rounded())
    }
    return Int64(text).flatMap { $0 >= 0 ? $0 : nil }
  }

  /// `64MiB`, `1.5GiB`, `100 bytes`: the largest unit with a whole or
  /// one-decimal figure.
  package static func format(_ bytes: Int64) -> String {
    for unit in units.reversed() where Double(bytes) >= unit.bytes {
      let value = Double(bytes) / unit.bytes
      let rounded = (value * 10).rounded() / 10
      return rounded == rounded.rounded() ? "\(Int(rounded))\(unit.suffix)" : "\(rounded)\(unit.suffix)"
    }
    return "\(bytes) bytes"
  }
}
