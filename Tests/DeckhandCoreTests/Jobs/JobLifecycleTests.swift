import DeckhandCore
import Testing

@Suite("JobLifecycle: queue, assign, ack, heartbeat, expiry, cancel")
struct JobLifecycleTests {
  /// A job assigned to r1 at t=1000 (WAITING).
  static func waiting() -> JobLifecycle {
    var job = JobLifecycle(expiresMs: 0)
    job.assign(to: "r1", nowMs: 1_000)
    return job
  }

  /// A job r1 acknowledged at t=2000 (RUNNING).
  static func running() -> JobLifecycle {
    var job = waiting()
    try? job.acknowledge(by: "r1", nowMs: 2_000)
    return job
  }

  @Test("the happy path: QUEUED → WAITING → RUNNING → SUCCESS, with its times")
  func happyPath() throws {
    var job = JobLifecycle(expiresMs: 0)
    #expect(job.state == .queued && job.runnerId.isEmpty)
    let changed1 = job.assign(to: "r1", nowMs: 1_000)
    #expect(changed1)
    #expect(job.state == .waiting && job.runnerId == "r1" && job.assignedMs == 1_000)
    try job.acknowledge(by: "r1", nowMs: 2_000)
    #expect(job.state == .running && job.ackedMs == 2_000 && job.heartbeatMs == 2_000)
    job.heartbeat(nowMs: 3_000)
    #expect(job.heartbeatMs == 3_000)
    let changed2 = job.finish(by: "r1", exitCode: 0, error: nil, nowMs: 4_000)
    #expect(changed2)
    #expect(job.state == .success && job.completeMs == 4_000 && job.error.isEmpty)
  }

  @Test("only a QUEUED job can be assigned")
  func assignOnlyQueued() {
    var job = Self.waiting()
    let changed3 = job.assign(to: "r2", nowMs: 5)
    #expect(!changed3)
    #expect(job.runnerId == "r1")
  }

  @Test("another runner cannot acknowledge, resume or end the job; a RUNNING job cannot be acknowledged again")
  func onlyTheAssignedRunner() {
    var job = Self.waiting()
    #expect(throws: JobLifecycle.Refusal.self) { try job.acknowledge(by: "r2", nowMs: 2_000) }
    #expect(job.state == .waiting)
    var running = Self.running()
    #expect(throws: JobLifecycle.Refusal.self) { try running.acknowledge(by: "r1", nowMs: 3_000) }
    #expect(!running.canResume(by: "r2") && running.canResume(by: "r1"))
    let changed4 = running.finish(by: "r2", exitCode: 0, error: nil, nowMs: 3_000)
    #expect(!changed4)
    #expect(running.state == .running)
  }

  @Test(
    "a non-zero exit or an error ends in ERROR, saying why",
    arguments: [(3, nil, "exited with status 3"), (0, "plugin echo is not installed", "plugin echo is not installed")]
      as [(Int, String?, String)])
  func failures(exitCode: Int, error: String?, expected: String) {
    var job = Self.running()
    let changed5 = job.finish(by: "r1", exitCode: exitCode, error: error, nowMs: 9)
    #expect(changed5)
    #expect(job.state == .error && job.error == expected && job.exitCode == exitCode)
  }

  @Test("a result delivered twice is recorded once: an ended job never changes")
  func endedIsFinal() {
    var job = Self.running()
    job.finish(by: "r1", exitCode: 0, error: nil, nowMs: 9)
    let ended = job
    let changed6 = job.finish(by: "r1", exitCode: 1, error: "late", nowMs: 10)
    #expect(!changed6)
    job.cancel(force: true, nowMs: 11)
    job.heartbeat(nowMs: 12)
    let changed7 = job.applyTimeouts(nowMs: 1_000_000, ackTimeoutMs: 1, heartbeatTimeoutMs: 1)
    #expect(!changed7)
    #expect(job == ended)
  }

  @Test("a heartbeat moves only a RUNNING job's clock")
  func heartbeatOnlyWhenRunning() {
    var job = Self.waiting()
    job.heartbeat(nowMs: 5_000)
    #expect(job.heartbeatMs == 0)
  }

  @Test("a runner that leaves without acknowledging puts the job back in the queue; another runner cannot")
  func requeue() {
    var job = Self.waiting()
    let changed8 = job.requeue(from: "r2")
    #expect(!changed8)
    #expect(job.state == .waiting)
    let changed9 = job.requeue(from: "r1")
    #expect(changed9)
    #expect(job.state == .queued && job.runnerId.isEmpty && job.assignedMs == 0)
  }

  @Test("timeouts: not acknowledged in time → QUEUED; no heartbeat in time → ERROR; expired → ERROR; not before")
  func timeouts() {
    var waiting = Self.waiting()
    let changed10 = waiting.applyTimeouts(nowMs: 1_000 + 120_000, ackTimeoutMs: 120_000, heartbeatTimeoutMs: 120_000)
    #expect(!changed10)
    let changed11 = waiting.applyTimeouts(nowMs: 1_000 + 120_001, ackTimeoutMs: 120_000, heartbeatTimeoutMs: 120_000)
    #expect(changed11)
    #expect(waiting.state == .queued)

    var running = Self.running()
    let changed12 = running.applyTimeouts(nowMs: 2_000 + 120_000, ackTimeoutMs: 120_000, heartbeatTimeoutMs: 120_000)
    #expect(!changed12)
    let changed13 = running.applyTimeouts(nowMs: 2_000 + 120_001, ackTimeoutMs: 120_000, heartbeatTimeoutMs: 120_000)
    #expect(changed13)
    #expect(running.state == .error && running.error.contains("heartbeats"))

    var expiring = JobLifecycle(expiresMs: 5_000)
    let changed14 = expiring.applyTimeouts(nowMs: 4_999, ackTimeoutMs: 1, heartbeatTimeoutMs: 1)
    #expect(!changed14)
    let changed15 = expiring.applyTimeouts(nowMs: 5_000, ackTimeoutMs: 1, heartbeatTimeoutMs: 1)
    #expect(changed15)
    #expect(expiring.state == .error && expiring.error == "expired before a runner took it")
  }

  @Test("expiry does not end a RUNNING job")
  func expirySparesRunning() {
    var job = Self.running()
    job.expiresMs = 2_500
    let changed16 = job.applyTimeouts(nowMs: 3_000, ackTimeoutMs: 120_000, heartbeatTimeoutMs: 120_000)
    #expect(!changed16)
    #expect(job.state == .running)
  }

  @Test("cancel ends a QUEUED or WAITING job at once")
  func cancelBeforeRunning() {
    for var job in [JobLifecycle(expiresMs: 0), Self.waiting()] {
      job.cancel(force: false, nowMs: 7)
      #expect(job.state == .error && job.error == "cancelled before it ran" && job.cancelRequested)
    }
  }

  @Test("cancel asks a RUNNING job to stop; force ends it at once")
  func cancelRunning() {
    var job = Self.running()
    job.cancel(force: false, nowMs: 7)
    #expect(job.state == .running && job.cancelRequested && !job.forceCancel)
    job.cancel(force: true, nowMs: 8)
    #expect(job.state == .error && job.forceCancel && job.error == "force-cancelled" && job.completeMs == 8)
  }

  @Test("a newer singleton replaces only a QUEUED job")
  func singleton() {
    var queued = JobLifecycle(expiresMs: 0)
    let changed17 = queued.replace(by: "j2", nowMs: 3)
    #expect(changed17)
    #expect(queued.state == .error && queued.error.contains("j2"))
    var waiting = Self.waiting()
    let changed18 = waiting.replace(by: "j2", nowMs: 3)
    #expect(!changed18)
    #expect(waiting.state == .waiting)
  }

  @Test(
    "a removed runner's WAITING and RUNNING jobs are QUEUED again (cancelled ones end); others' and ended ones stay",
    arguments: [
      ("waiting", JobState.queued, true),
      ("running", .queued, true),
      ("running, cancel asked", .error, true),
      ("another runner's", .running, false),
      ("ended", .success, false),
    ])
  func release(case name: String, expected: JobState, changes: Bool) {
    var job: JobLifecycle
    switch name {
    case "waiting": job = Self.waiting()
    case "running": job = Self.running()
    case "running, cancel asked":
      job = Self.running()
      job.cancel(force: false, nowMs: 2_500)
    case "ended":
      job = Self.running()
      job.finish(by: "r1", exitCode: 0, error: nil, nowMs: 3_000)
    default: job = Self.running()
    }
    let runner = name == "another runner's" ? "r2" : "r1"
    let changed = job.release(from: runner, nowMs: 9_000)
    #expect(changed == changes, "\(name)")
    #expect(job.state == expected, "\(name)")
    if expected == .queued {
      #expect(job.runnerId.isEmpty && job.assignedMs == 0 && job.ackedMs == 0 && job.heartbeatMs == 0)
      // Another runner can take it as a fresh job.
      let assigned = job.assign(to: "r2", nowMs: 9_500)
      #expect(assigned)
    }
    if name == "running, cancel asked" { #expect(job.error.contains("removed") && job.completeMs == 9_000) }
  }
}
