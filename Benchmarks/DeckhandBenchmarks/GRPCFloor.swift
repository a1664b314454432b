internal import DeckhandClient
internal import DeckhandCore
internal import DeckhandProtocol
internal import Foundation
internal import GRPCCore
internal import GRPCNIOTransportHTTP2Posix
internal import Synchronization

/// The floor under `bench jobs`: how many calls and stream messages the
/// same server, client and machine carry when nothing else happens.
///
/// A no-op job costs at least one unary call (`QueueJob`) and five
/// messages on the runner's open stream (assignment, ack, complete,
/// finished, next request: two and a half round trips), so no store and no
/// runner can make jobs go faster than
/// `1 / (1 / unaryCalls + 2.5 / streamRoundTrips)` a second here.
struct GRPCFloor: Sendable {
  typealias Jobs = Deckhand_Server_V1_Jobs.Client<HTTP2ClientTransport.Posix>
  typealias Dispatcher = Deckhand_Dispatcher_V1_Dispatcher.Client<HTTP2ClientTransport.Posix>

  /// Callers (unary) and streams (round trips) at once, as the jobs
  /// benchmark's submitters and runner slots.
  static let concurrency = 16
  /// Stream messages a no-op job needs, counted in round trips.
  static let roundTripsPerJob = 2.5

  let window: Duration

  /// `GetVersionInfo` calls a second (authenticated, answered from
  /// memory), from ``concurrency`` callers for ``window``.
  func unaryCalls(_ jobs: Jobs, metadata: Metadata) async throws -> Double {
    let window = window
    let start = ContinuousClock.now
    let calls = try await withThrowingTaskGroup(of: Int.self) { group in
      for _ in 0..<Self.concurrency {
        group.addTask {
          var count = 0
          while start.duration(to: .now) < window {
            _ = try await jobs.getVersionInfo(.init(), metadata: metadata)
            count += 1
          }
          return count
        }
      }
      return try await group.reduce(0, +)
    }
    return Double(calls) / start.duration(to: .now).inSeconds
  }

  /// Heartbeat round trips a second on ``concurrency`` open `Heartbeats`
  /// streams (each answered from memory), each sending its next heartbeat
  /// as soon as the last was answered, for ``window``. The nodes are
  /// joined with `workerToken` for this and left to go DOWN.
  func streamRoundTrips(_ dispatcher: Dispatcher, workerToken: String) async throws -> Double {
    let window = window
    let start = ContinuousClock.now
    let trips = try await withThrowingTaskGroup(of: Int.self) { group in
      for index in 0..<Self.concurrency {
        group.addTask {
          var join = Deckhand_Dispatcher_V1_JoinRequest()
          join.nodeName = "floor-\(index)"
          join.description_p.hostname = "floor-\(index)"
          let joined = try await dispatcher.join(join, metadata: ControlPlaneClient.metadata(workerToken))
          let metadata = ControlPlaneClient.metadata(joined.credential)
          return try await dispatcher.session(.init(), metadata: metadata) { response in
            var messages = response.messages.makeAsyncIterator()
            guard let session = try await messages.next()?.sessionID else {
              throw DeckhandError(.callFailed, "the server opened no session for the floor's node \(index)")
            }
            return try await Self.pingPong(dispatcher, session: session, metadata: metadata, until: start + window)
          }
        }
      }
      return try await group.reduce(0, +)
    }
    return Double(trips) / start.duration(to: .now).inSeconds
  }

  /// Heartbeats on one stream, each sent when the last was answered, until
  /// `deadline`; how many were answered.
  private static func pingPong(
    _ dispatcher: Dispatcher, session: String, metadata: Metadata, until deadline: ContinuousClock.Instant
  ) async throws -> Int {
    let (answers, answered) = AsyncStream.makeStream(of: Void.self)
    let count = Mutex(0)
    var request = Deckhand_Dispatcher_V1_HeartbeatRequest()
    request.sessionID = session
    let beat = request
    try await dispatcher.heartbeats(
      metadata: metadata,
      requestProducer: { writer in
        var iterator = answers.makeAsyncIterator()
        while ContinuousClock.now < deadline {
          try await writer.write(beat)
          guard await iterator.next() != nil else { return }
          count.withLock { $0 += 1 }
        }
      },
      onResponse: { response in
        defer { answered.finish() }
        for try await _ in response.messages { answered.yield() }
      })
    return count.withLock { $0 }
  }

  /// The most no-op jobs a second that calls and messages at these rates
  /// allow.
  static func jobBound(unaryCalls: Double, streamRoundTrips: Double) -> Double {
    1 / (1 / unaryCalls + roundTripsPerJob / streamRoundTrips)
  }
}
