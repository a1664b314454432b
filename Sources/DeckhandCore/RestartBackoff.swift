/// Exponential restart backoff with jitter: the n-th restart in a row waits
/// about `initial × 2ⁿ`, never less than `initial` nor more than `maximum`.
///
/// Jitter spreads the delay by ±20 % so that plugins that crashed together
/// do not come back together.
package struct RestartBackoff: Hashable, Sendable {
  /// The first delay.
  package var initial: Duration
  /// The largest delay.
  package var maximum: Duration
  /// The fraction by which a delay may differ from its nominal value.
  package var jitter: Double

  package init(initial: Duration, maximum: Duration, jitter: Double = 0.2) {
    self.initial = initial
    self.maximum = max(maximum, initial)
    self.jitter = jitter
  }

  /// The nominal delay before restart number `attempt` (0 for the first).
  package func nominalDelay(attempt: Int) -> Duration {
    let initialSeconds = initial.inSeconds
    let exponent = Double(min(attempt, 62))
    let nominal = min(maximum.inSeconds, initialSeconds * pow2(exponent))
    return .milliseconds(Int64((nominal * 1000).rounded()))
  }

  /// The delay before restart number `attempt`, with jitter from `random`, a
  /// number in `0..<1`.
  package func delay(attempt: Int, random: Double) -> Duration {
    let nominal = nominalDelay(attempt: attempt).inSeconds
    let factor = 1 - jitter + 2 * jitter * min(max(random, 0), 1)
    let seconds = min(max(nominal * factor, initial.inSeconds), maximum.inSeconds)
    return .milliseconds(Int64((seconds * 1000).rounded()))
  }

  private func pow2(_ exponent: Double) -> Double {
    var result = 1.0
    for _ in 0..<Int(exponent) { result *= 2 }
    return result
  }
}
