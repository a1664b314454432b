import DeckhandCore
import Testing

@Suite("Supervisor state machine")
struct SupervisorStateMachineTests {
  let t0 = ContinuousClock.now

  func machine(failures: Int = 2) -> SupervisorStateMachine {
    SupervisorStateMachine(
      backoff: RestartBackoff(initial: .seconds(1), maximum: .seconds(8), jitter: 0),
      failureThreshold: failures, stopDeadline: .seconds(10))
  }

  /// Drives a machine from idle to running.
  func running(_ machine: inout SupervisorStateMachine, at now: ContinuousClock.Instant) {
    _ = machine.start()
    _ = machine.ready(now: now)
  }

  @Test("start launches; ready runs")
  func startAndReady() {
    var machine = machine()
    #expect(machine.start() == .launch(attempt: 0))
    #expect(machine.state == .launching)
    #expect(machine.start() == .none)
    _ = machine.ready(now: t0)
    #expect(machine.state == .running)
  }

  @Test("health failures below the threshold are counted; a success resets them")
  func failuresReset() {
    var machine = machine(failures: 3)
    running(&machine, at: t0)
    #expect(machine.healthChecked(ok: true, now: t0) == .becameHealthy)
    #expect(machine.healthChecked(ok: true, now: t0) == .healthy)
    #expect(machine.healthChecked(ok: false, now: t0) == .failed(count: 1))
    #expect(machine.healthChecked(ok: false, now: t0) == .failed(count: 2))
    #expect(machine.healthChecked(ok: true, now: t0) == .becameHealthy)
    #expect(machine.consecutiveFailures == 0)
    #expect(machine.state == .running)
  }

  @Test("failures in a row make the plugin unhealthy; it is killed and restarted")
  func unhealthy() {
    var machine = machine(failures: 2)
    running(&machine, at: t0)
    #expect(machine.healthChecked(ok: false, now: t0) == .failed(count: 1))
    #expect(machine.healthChecked(ok: false, now: t0) == .unhealthy(count: 2))
    #expect(machine.state == .terminating)
    #expect(machine.actionForUnhealthy() == .killUnhealthy(failures: 2))
    #expect(machine.healthChecked(ok: true, now: t0) == .ignored)
    #expect(machine.exited(now: t0, random: 0) == .restart(after: .seconds(1), attempt: 0))
    #expect(machine.backoffElapsed() == .launch(attempt: 1))
  }

  @Test("restarts in a row back off exponentially, capped")
  func backoffGrows() {
    var machine = machine()
    _ = machine.start()
    var delays: [Duration] = []
    for _ in 0..<6 {
      guard case .restart(let delay, _) = machine.exited(now: t0, random: 0) else {
        Issue.record("no restart")
        return
      }
      delays.append(delay)
      _ = machine.backoffElapsed()
      _ = machine.ready(now: t0)
    }
    #expect(delays == [1, 2, 4, 8, 8, 8].map { Duration.seconds($0) })
  }

  @Test("launch failures back off like crashes")
  func launchFailures() {
    var machine = machine()
    _ = machine.start()
    #expect(machine.launchFailed(random: 0) == .restart(after: .seconds(1), attempt: 0))
    #expect(machine.backoffElapsed() == .launch(attempt: 1))
    #expect(machine.launchFailed(random: 0) == .restart(after: .seconds(2), attempt: 1))
  }

  @Test("five minutes healthy resets the backoff; less does not")
  func backoffReset() {
    var machine = machine()
    _ = machine.start()
    for _ in 0..<3 {
      _ = machine.exited(now: t0, random: 0)
      _ = machine.backoffElapsed()
    }
    _ = machine.ready(now: t0)
    #expect(machine.exited(now: t0 + .seconds(299), random: 0) == .restart(after: .seconds(8), attempt: 3))
    _ = machine.backoffElapsed()
    _ = machine.ready(now: t0)
    #expect(machine.exited(now: t0 + .seconds(300), random: 0) == .restart(after: .seconds(1), attempt: 0))
  }

  @Test("a health failure restarts the five-minute clock")
  func failureRestartsClock() {
    var machine = machine(failures: 5)
    _ = machine.start()
    _ = machine.exited(now: t0, random: 0)
    _ = machine.backoffElapsed()
    _ = machine.ready(now: t0)
    _ = machine.healthChecked(ok: false, now: t0 + .seconds(200))
    _ = machine.healthChecked(ok: true, now: t0 + .seconds(201))
    #expect(machine.exited(now: t0 + .seconds(400), random: 0) == .restart(after: .seconds(2), attempt: 1))
  }

  @Test("stop while running: Stop with the deadline, then the group is killed on reply or deadline")
  func stopRunning() {
    var machine = machine()
    running(&machine, at: t0)
    #expect(machine.requestStop() == .sendStop(deadline: .seconds(10)))
    #expect(machine.state == .stopping)
    #expect(machine.stopReplied() == .killGroup)
    #expect(machine.exited(now: t0, random: 0) == .finish)
    #expect(machine.state == .stopped)

    var late = self.machine()
    running(&late, at: t0)
    _ = late.requestStop()
    #expect(late.stopDeadlineExpired() == .killGroup)
    #expect(late.exited(now: t0, random: 0) == .finish)
  }

  @Test("stop while backing off ends at once; a crash during stop does not restart")
  func stopElsewhere() {
    var machine = machine()
    _ = machine.start()
    _ = machine.exited(now: t0, random: 0)
    #expect(machine.requestStop() == .finish)
    #expect(machine.backoffElapsed() == .none)

    var unhealthy = self.machine(failures: 1)
    running(&unhealthy, at: t0)
    _ = unhealthy.healthChecked(ok: false, now: t0)
    #expect(unhealthy.requestStop() == .none)
    #expect(unhealthy.exited(now: t0, random: 0) == .finish)
  }

  @Test("a launch failure after a stop request finishes")
  func launchFailureAfterStop() {
    var machine = machine()
    _ = machine.start()
    _ = machine.requestStop()
    #expect(machine.launchFailed(random: 0) == .none)
    #expect(machine.exited(now: t0, random: 0) == .finish)
  }
}
