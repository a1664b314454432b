package import DeckhandCore
internal import GRPCCore

extension JobQueue {
  /// What following a job gives, in order.
  package enum FollowEvent: Sendable {
    /// Output records in sequence order (at most about 1 MiB together);
    /// `buffered` while they were stored before the follower came.
    case output([JobOutputRecord], buffered: Bool)
    /// The job moved from `previous` to its state now.
    case state(previous: JobState, job: JobRecord)
    /// The job ended and every output record was given: the last event.
    case complete(JobRecord)
  }

  /// Follows job `id` from `first` (its record when the follower came):
  /// its stored output, then new output and state changes as they happen,
  /// until it ended and all its output was given. What `deckhand jobs run
  /// --wait` (GetJobStream) and the web UI's job page show.
  ///
  /// - Throws: `unavailable` when the server shuts down, and what `emit`
  ///   throws (a follower that went away).
  package func follow(
    _ id: String, from first: JobRecord, _ emit: (FollowEvent) async throws -> Void
  ) async throws {
    let (changes, token) = self.changes.watch(.job(id))
    defer { self.changes.unwatch(.job(id), token) }
    var sequence: Int64 = 0
    var state = first.state
    var buffered = true
    while true {
      // Output first (stored, then live), then any state change.
      while true {
        // At most about 1 MiB a message: clients' default limit is 4 MiB.
        var events: [JobOutputRecord] = []
        var bytes = 0
        for record in try await store.output(id, after: sequence, limit: 256) {
          if !events.isEmpty && bytes + record.data.count > 1 << 20 { break }
          events.append(record)
          bytes += record.data.count
        }
        guard let last = events.last else { break }
        sequence = last.sequence
        try await emit(.output(events, buffered: buffered))
      }
      buffered = false
      let job = try await record(id)
      if job.state != state {
        try await emit(.state(previous: state, job: job))
        state = job.state
      }
      if job.state.isEnded, job.outputSequence <= sequence {
        try await emit(.complete(job))
        return
      }
      if isClosed { throw RPCError(code: .unavailable, message: "the server is shutting down") }
      await changes.next(orAfter: .seconds(1))
    }
  }
}
