internal import DeckhandCore
internal import Foundation
internal import Synchronization

/// What the simulated agents of ``DispatcherBenchmark`` saw of their
/// heartbeats: failures always, round trips within a recording window.
final class HeartbeatLog: Sendable {
  private struct State {
    var failed = 0
    var firstError: String?
    /// Round trips of the recording window, and when each ended.
    var roundTrips: [(at: ContinuousClock.Instant, ms: Double)] = []
    var recordingSince: ContinuousClock.Instant?
    var recordingUntil: ContinuousClock.Instant?
    var lateSince: ContinuousClock.Instant?
  }
  private let state = Mutex(State())

  func succeeded(after roundTrip: Duration) {
    state.withLock { state in
      let now = ContinuousClock.now
      guard let since = state.recordingSince, since < now else { return }
      if let until = state.recordingUntil, now > until { return }
      state.roundTrips.append((now, roundTrip.inMilliseconds))
    }
  }

  func failed(_ error: any Error) {
    state.withLock { state in
      state.failed += 1
      state.firstError = state.firstError ?? "\(error)"
    }
  }

  /// Round trips are kept from now on (the steady phase), and apart from
  /// `late` on (its second half, after the rollout settled).
  func record(late: Duration) {
    state.withLock { state in
      state.recordingSince = .now
      state.lateSince = .now + late
    }
  }

  /// Round trips that end from now on are not kept.
  func stopRecording() {
    state.withLock { $0.recordingUntil = .now }
  }

  /// The recording window's round trips (ms, sorted): all, and those of
  /// its second half; with the heartbeats that failed.
  var summary: (failed: Int, firstError: String?, roundTrips: [Double], late: [Double]) {
    state.withLock { state in
      let late = state.lateSince.map { since in state.roundTrips.filter { $0.at > since } } ?? []
      return (
        state.failed, state.firstError, state.roundTrips.map(\.ms).sorted(), late.map(\.ms).sorted()
      )
    }
  }
}
