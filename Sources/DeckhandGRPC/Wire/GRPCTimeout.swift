/// The `grpc-timeout` header: at most 8 digits and a unit (H, M, S, m, u, n).
package enum GRPCTimeout {
  private static let units: [(Character, Double)] = [
    ("n", 1), ("u", 1e3), ("m", 1e6), ("S", 1e9), ("M", 60e9), ("H", 3600e9),
  ]

  /// Encodes `duration` with the finest unit that fits in 8 digits.
  package static func encode(_ duration: Duration) -> String {
    let (seconds, attoseconds) = duration.components
    let nanoseconds = max(0, Double(seconds) * 1e9 + Double(attoseconds) / 1e9)
    for (unit, size) in units {
      let value = (nanoseconds / size).rounded(.up)
      if value < 100_000_000 { return "\(Int64(value))\(unit)" }
    }
    return "99999999H"
  }

  /// Parses a `grpc-timeout` value; nil if malformed.
  package static func parse(_ text: String) -> Duration? {
    guard let unit = text.last, text.count >= 2, text.count <= 9,
      let value = Int64(text.dropLast()), value >= 0
    else { return nil }
    switch unit {
    case "H": return .seconds(value * 3600)
    case "M": return .seconds(value * 60)
    case "S": return .seconds(value)
    case "m": return .milliseconds(value)
    case "u": return .microseconds(value)
    case "n": return .nanoseconds(value)
    default: return nil
    }
  }
}
