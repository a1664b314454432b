/// Durations as people write them in flags and config files: `10s`,
/// `500ms`, `2m`, `1h`, `7d`, `1.5s`, or a bare number of seconds.
package enum DurationText {
  /// Parses `text`; nil if it is not a duration or is negative.
  package static func parse(_ text: String) -> Duration? {
    let units: [(suffix: String, seconds: Double)] = [("ms", 0.001), ("s", 1), ("m", 60), ("h", 3600), ("d", 86_400)]
    for unit in units where text.hasSuffix(unit.suffix) {
      guard let number = Double(text.dropLast(unit.suffix.count)), number >= 0, number.isFinite else { return nil }
      return .nanoseconds(Int64((number * unit.seconds * 1e9).rounded()))
    }
    guard let seconds = Double(text), seconds >= 0, seconds.isFinite else { return nil }
    return .nanoseconds(Int64((seconds * 1e9).rounded()))
  }

  /// `10s`, `1.5s`, `250ms`: the shortest form that parses back.
  package static func format(_ duration: Duration) -> String {
    let seconds = duration.inSeconds
    if seconds < 1, seconds > 0 {
      let milliseconds = seconds * 1000
      return milliseconds.rounded() == milliseconds ? "\(Int(milliseconds))ms" : "\(milliseconds)ms"
    }
    return seconds.rounded() == seconds ? "\(Int(seconds))s" : "\(seconds)s"
  }
}
