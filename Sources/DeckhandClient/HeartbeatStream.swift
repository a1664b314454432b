package import DeckhandCore
package import DeckhandProtocol
package import GRPCCore
internal import Synchronization

/// A session's heartbeats on one `Heartbeats` stream: each sent after the
/// period the server last gave, each answer awaited at most `timeout`.
///
/// One stream for the session's life rather than one call per heartbeat:
/// measured with `deckhand-bench dispatcher --agents 10000` (server pinned
/// to one CPU), a unary Heartbeat cost the server 666–680 µs of CPU each,
/// most of it opening and closing an HTTP/2 stream, its headers and its
/// task; a message on an open stream costs a fraction of that.
package enum HeartbeatStream {
  private enum Answer: Sendable {
    case period(Int64)
    case ended
  }

  /// Runs until the stream fails, the server ends it (the session is no
  /// longer current: NOT_FOUND), or an answer is late; then throws.
  /// `answered` gets each heartbeat's round trip. A server older than the
  /// stream (UNIMPLEMENTED) gets one `Heartbeat` call per heartbeat.
  /// `report` fills each heartbeat (the node's plugins' CPU and memory,
  /// and what happened to them); its session id is set here.
  package static func run<Transport: ClientTransport>(
    _ dispatcher: Deckhand_Dispatcher_V1_Dispatcher.Client<Transport>, session: String, metadata: Metadata,
    firstDelay: Duration, timeout: Duration, answered: @escaping @Sendable (Duration) -> Void = { _ in },
    report: @escaping @Sendable () async -> Deckhand_Dispatcher_V1_HeartbeatRequest = { .init() }
  ) async throws {
    do {
      try await stream(
        dispatcher, session: session, metadata: metadata, firstDelay: firstDelay, timeout: timeout, report: report,
        answered: answered)
    } catch let error as RPCError where error.code == .unimplemented {
      try await calls(
        dispatcher, session: session, metadata: metadata, firstDelay: firstDelay, timeout: timeout, report: report,
        answered: answered)
    }
  }

  /// One `Heartbeat` call per heartbeat, each with `timeout` as deadline.
  private static func calls<Transport: ClientTransport>(
    _ dispatcher: Deckhand_Dispatcher_V1_Dispatcher.Client<Transport>, session: String, metadata: Metadata,
    firstDelay: Duration, timeout: Duration,
    report: @escaping @Sendable () async -> Deckhand_Dispatcher_V1_HeartbeatRequest,
    answered: @escaping @Sendable (Duration) -> Void
  ) async throws {
    try await Task.sleep(for: firstDelay)
    while true {
      var beat = await report()
      beat.sessionID = session
      let sent = ContinuousClock.now
      let answer = try await dispatcher.heartbeat(
        beat, metadata: metadata, options: ControlPlaneClient.options(timeout))
      answered(sent.duration(to: .now))
      try await Task.sleep(for: .milliseconds(max(answer.periodMs, 10)))
    }
  }

  private static func stream<Transport: ClientTransport>(
    _ dispatcher: Deckhand_Dispatcher_V1_Dispatcher.Client<Transport>, session: String, metadata: Metadata,
    firstDelay: Duration, timeout: Duration,
    report: @escaping @Sendable () async -> Deckhand_Dispatcher_V1_HeartbeatRequest,
    answered: @escaping @Sendable (Duration) -> Void
  ) async throws {
    // gRPC reports a request producer's error as "Write failed": the
    // reason is kept here and thrown instead.
    let late = LateAnswer()
    do {
      try await heartbeats(
        dispatcher, session: session, metadata: metadata, firstDelay: firstDelay, timeout: timeout, report: report,
        answered: answered, late: late)
    } catch {
      if let reason = late.error.withLock({ $0 }) { throw reason }
      throw error
    }
  }

  /// The error of an answer that came too late.
  private final class LateAnswer: Sendable {
    let error = Mutex<DeckhandError?>(nil)
  }

  private static func heartbeats<Transport: ClientTransport>(
    _ dispatcher: Deckhand_Dispatcher_V1_Dispatcher.Client<Transport>, session: String, metadata: Metadata,
    firstDelay: Duration, timeout: Duration,
    report: @escaping @Sendable () async -> Deckhand_Dispatcher_V1_HeartbeatRequest,
    answered: @escaping @Sendable (Duration) -> Void, late: LateAnswer
  ) async throws {
    let (periods, continuation) = AsyncStream.makeStream(of: Int64.self)
    try await dispatcher.heartbeats(
      metadata: metadata,
      requestProducer: { writer in
        try await Task.sleep(for: firstDelay)
        while true {
          var beat = await report()
          beat.sessionID = session
          let sent = ContinuousClock.now
          try await writer.write(beat)
          // One waiter at a time: each wait makes its own iterator.
          let answer = await firstResult(within: timeout) { () -> Answer? in
            var answers = periods.makeAsyncIterator()
            return await answers.next().map(Answer.period) ?? .ended
          }
          switch answer {
          case .period(let periodMs):
            answered(sent.duration(to: .now))
            try await Task.sleep(for: .milliseconds(max(periodMs, 10)))
          case .ended:
            return
          case nil:
            let error = DeckhandError(
              .serverUnavailable, "the server did not answer a heartbeat within \(DurationText.format(timeout))")
            late.error.withLock { $0 = error }
            throw error
          }
        }
      },
      onResponse: { response in
        defer { continuation.finish() }
        for try await answer in response.messages { continuation.yield(answer.periodMs) }
        throw DeckhandError(.serverUnavailable, "the server ended the heartbeat stream")
      })
  }
}
