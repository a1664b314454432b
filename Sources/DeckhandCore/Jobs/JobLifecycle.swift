/// One job's life in the queue, after Waypoint's: the state and the times
/// and outcome that go with it, and every rule that moves it. No I/O: the
/// queue reads a job, applies one of these in its transaction, and writes
/// it back.
///
/// - A runner claims a QUEUED job (WAITING), acknowledges it (RUNNING),
///   sends heartbeats, and ends it (SUCCESS, or ERROR with a non-zero exit
///   or an error).
/// - Only the runner a job is assigned to may acknowledge, resume or end
///   it; an ended job never changes.
/// - A job not acknowledged within the ack timeout is QUEUED again; a
///   RUNNING job without a heartbeat for the heartbeat timeout ends in
///   ERROR; a job still QUEUED or WAITING when it expires ends in ERROR.
/// - Cancel ends a QUEUED or WAITING job at once; a RUNNING one is asked
///   to stop (its runner ends it), or with force ends at once.
package struct JobLifecycle: Sendable, Hashable {
  package var state: JobState
  /// The runner it is assigned to ("" while QUEUED).
  package var runnerId: String
  package var assignedMs: Int64
  package var ackedMs: Int64
  package var completeMs: Int64
  /// Absolute; 0: never.
  package var expiresMs: Int64
  package var heartbeatMs: Int64
  package var exitCode: Int
  package var error: String
  package var cancelRequested: Bool
  package var forceCancel: Bool
  package var resultCode: Int64
  package var results: [String]

  /// A job just queued.
  package init(expiresMs: Int64) {
    self.init(
      state: .queued, runnerId: "", assignedMs: 0, ackedMs: 0, completeMs: 0, expiresMs: expiresMs, heartbeatMs: 0,
      exitCode: 0, error: "", cancelRequested: false, forceCancel: false, resultCode: 0, results: [])
  }

  package init(
    state: JobState, runnerId: String, assignedMs: Int64, ackedMs: Int64, completeMs: Int64, expiresMs: Int64,
    heartbeatMs: Int64, exitCode: Int, error: String, cancelRequested: Bool, forceCancel: Bool, resultCode: Int64,
    results: [String]
  ) {
    self.state = state
    self.runnerId = runnerId
    self.assignedMs = assignedMs
    self.ackedMs = ackedMs
    self.completeMs = completeMs
    self.expiresMs = expiresMs
    self.heartbeatMs = heartbeatMs
    self.exitCode = exitCode
    self.error = error
    self.cancelRequested = cancelRequested
    self.forceCancel = forceCancel
    self.resultCode = resultCode
    self.results = results
  }

  /// Why a runner's request about a job is refused.
  package enum Refusal: Error, Sendable, Hashable {
    /// Not assigned to this runner, or not in the state the request needs.
    case notThisRunners(state: JobState)
  }

  /// A runner claimed the QUEUED job: WAITING for its acknowledgement.
  /// False (and no change) if it was not QUEUED.
  @discardableResult
  package mutating func assign(to runner: String, nowMs: Int64) -> Bool {
    guard state == .queued else { return false }
    state = .waiting
    runnerId = runner
    assignedMs = nowMs
    return true
  }

  /// The runner acknowledged: RUNNING, its heartbeat clock started.
  package mutating func acknowledge(by runner: String, nowMs: Int64) throws(Refusal) {
    guard runnerId == runner, state == .waiting else { throw .notThisRunners(state: state) }
    state = .running
    ackedMs = nowMs
    heartbeatMs = nowMs
  }

  /// The runner left without acknowledging: QUEUED again. False (and no
  /// change) if the job was not WAITING for this runner.
  @discardableResult
  package mutating func requeue(from runner: String) -> Bool {
    guard runnerId == runner, state == .waiting else { return false }
    state = .queued
    runnerId = ""
    assignedMs = 0
    return true
  }

  /// The runner's node was removed from the fleet: a job it had not ended
  /// is QUEUED again for another runner, unless someone asked to cancel
  /// it (then it ends in ERROR). False (and no change) if the job was not
  /// this runner's or had ended.
  @discardableResult
  package mutating func release(from runner: String, nowMs: Int64) -> Bool {
    guard runnerId == runner, state == .waiting || state == .running else { return false }
    if cancelRequested {
      end(error: "cancelled; its runner's node was removed before it stopped", nowMs: nowMs)
      return true
    }
    state = .queued
    runnerId = ""
    assignedMs = 0
    ackedMs = 0
    heartbeatMs = 0
    return true
  }

  /// Whether `runner` may pick the job up again after a reconnect.
  package func canResume(by runner: String) -> Bool { runnerId == runner && state == .running }

  /// A heartbeat: only a RUNNING job's clock moves.
  package mutating func heartbeat(nowMs: Int64) {
    if state == .running { heartbeatMs = nowMs }
  }

  /// The runner's result. An error or a non-zero exit is ERROR. False (and
  /// no change) if the job is not this runner's or has ended already (a
  /// result delivered twice is recorded once).
  @discardableResult
  package mutating func finish(
    by runner: String, exitCode: Int, error: String?, resultCode: Int64 = 0, results: [String] = [], nowMs: Int64
  ) -> Bool {
    guard runnerId == runner, !state.isEnded else { return false }
    self.exitCode = exitCode
    self.resultCode = resultCode
    self.results = results
    completeMs = nowMs
    if let error {
      state = .error
      self.error = error
    } else if exitCode != 0 {
      state = .error
      self.error = "exited with status \(exitCode)"
    } else {
      state = .success
    }
    return true
  }

  /// Cancel: a QUEUED or WAITING job ends at once; a RUNNING one is asked
  /// to stop, or with `force` ends at once; an ended one stays as it is.
  package mutating func cancel(force: Bool, nowMs: Int64) {
    switch state {
    case .queued, .waiting:
      end(error: "cancelled before it ran", nowMs: nowMs)
      cancelRequested = true
    case .running:
      cancelRequested = true
      if force {
        forceCancel = true
        end(error: "force-cancelled", nowMs: nowMs)
      }
    case .success, .error:
      break
    }
  }

  /// The server stops a RUNNING job for a reason of its own (its output
  /// could not be stored): ERROR with `error`, and its runner is to stop it
  /// at once. False (and no change) if it was not RUNNING.
  @discardableResult
  package mutating func stop(error: String, nowMs: Int64) -> Bool {
    guard state == .running else { return false }
    cancelRequested = true
    forceCancel = true
    end(error: error, nowMs: nowMs)
    return true
  }

  /// A newer job with the same singleton id took the place of this QUEUED
  /// one. False (and no change) if it was not QUEUED.
  @discardableResult
  package mutating func replace(by job: String, nowMs: Int64) -> Bool {
    guard state == .queued else { return false }
    end(error: "replaced by job \(job) with the same singleton id", nowMs: nowMs)
    return true
  }

  /// The timeout rules at `nowMs`: expiry, then the ack timeout, then the
  /// heartbeat timeout. Whether one applied.
  @discardableResult
  package mutating func applyTimeouts(nowMs: Int64, ackTimeoutMs: Int64, heartbeatTimeoutMs: Int64) -> Bool {
    if state == .queued || state == .waiting, expiresMs > 0, expiresMs <= nowMs {
      end(error: "expired before a runner took it", nowMs: nowMs)
    } else if state == .waiting, nowMs - assignedMs > ackTimeoutMs {
      requeue(from: runnerId)
    } else if state == .running, nowMs - heartbeatMs > heartbeatTimeoutMs {
      end(error: "the runner stopped sending heartbeats (none for \(heartbeatTimeoutMs) ms)", nowMs: nowMs)
    } else {
      return false
    }
    return true
  }

  private mutating func end(error: String, nowMs: Int64) {
    state = .error
    self.error = error
    completeMs = nowMs
  }
}
