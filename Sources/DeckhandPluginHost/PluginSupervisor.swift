package import DeckhandCore
internal import DeckhandProtocol
internal import Foundation
package import Logging
package import ServiceLifecycle
internal import Synchronization
package import Tracing

/// Keeps one plugin running: launches it, sends Start, checks its health,
/// restarts it with backoff when it exits or turns unhealthy, and stops it
/// gracefully on graceful shutdown (or ``requestStop()``).
///
/// Decisions come from ``DeckhandCore/SupervisorStateMachine``; this type
/// carries them out and reports each step as a ``DeckhandCore/PluginEvent``.
///
/// ```swift
/// let supervisor = PluginSupervisor(manifest: manifest, launcher: launcher) { event in print(event) }
/// let group = ServiceGroup(services: [supervisor], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger)
/// try await group.run()
/// ```
package final class PluginSupervisor: Service, Sendable {
  /// The manifest of the plugin supervised.
  package let manifest: PluginManifest
  private let launcher: PluginLauncher
  private let transport: any PluginTransport
  private let onEvent: @Sendable (PluginEvent) -> Void
  private let observeCalls: ObservedConnection.Observer?
  /// The trace the first Start call continues; taken by that call.
  private let startTrace: Mutex<InstrumentationContext?>
  private let logger: Logger
  private let stopSignal = OnceValue<StopKind>()
  private let machine: Mutex<SupervisorStateMachine>
  private let stoppedReported = Mutex(false)
  private let adoptee: Mutex<LaunchedPlugin?>
  private let shutdownBehaviour: ShutdownBehaviour
  private let current = Mutex<(plugin: LaunchedPlugin, connection: any PluginConnection)?>(nil)

  /// What graceful shutdown does to the plugin.
  package enum ShutdownBehaviour: Sendable {
    /// Stop it (StopRequest, then kill the group). `deckhand plugin run`.
    case stopPlugin
    /// Leave it running for the next host to re-attach. The agent's default.
    case leaveRunning
  }

  private enum StopKind: Sendable {
    case stop(cleanup: Bool)
    case detach
  }

  /// - Parameters:
  ///   - manifest: The plugin.
  ///   - launcher: Launches it.
  ///   - transport: Reaches it. Default ``LeanPluginTransport``.
  ///   - adopting: A running plugin a previous host left (see
  ///     ``PluginLauncher/attach(_:_:)``), supervised instead of a first
  ///     launch; it is not sent Start again.
  ///   - onShutdown: What graceful shutdown does to the plugin.
  ///   - logger: For the host's own messages.
  ///   - observeCalls: Told of every call made through
  ///     ``withConnection(_:)`` (for metrics); nil: nobody is told.
  ///   - startTrace: The trace the first Start call continues (an
  ///     operator's deployment); later launches' Start calls, made by the
  ///     supervisor on its own, continue none.
  ///   - onEvent: Called with every event, in order.
  package init(
    manifest: PluginManifest,
    launcher: PluginLauncher,
    transport: any PluginTransport = LeanPluginTransport(),
    adopting: LaunchedPlugin? = nil,
    onShutdown: ShutdownBehaviour = .stopPlugin,
    logger: Logger = Logger(label: "deckhand.supervisor"),
    observeCalls: ObservedConnection.Observer? = nil,
    startTrace: InstrumentationContext? = nil,
    onEvent: @escaping @Sendable (PluginEvent) -> Void
  ) {
    self.observeCalls = observeCalls
    self.startTrace = Mutex(startTrace)
    self.manifest = manifest
    self.launcher = launcher
    self.transport = transport
    self.adoptee = Mutex(adopting)
    self.shutdownBehaviour = onShutdown
    self.logger = logger
    self.onEvent = onEvent
    self.machine = Mutex(SupervisorStateMachine(manifest: manifest))
  }

  /// Asks the supervisor to stop the plugin and return. With `cleanup` the
  /// plugin is asked to remove its state, and its state directory is
  /// removed.
  package func requestStop(cleanup: Bool = false) {
    stopSignal.set(.stop(cleanup: cleanup))
  }

  /// Asks the supervisor to return and leave the plugin running.
  package func requestDetach() {
    stopSignal.set(.detach)
  }

  /// The plugin while it is up (ready, and not yet stopped or exited).
  package var runningPlugin: LaunchedPlugin? { current.withLock { $0?.plugin } }

  /// Runs `body` with the connection to the running plugin.
  ///
  /// - Throws: ``DeckhandCore/DeckhandError/Code/callFailed`` when the
  ///   plugin is not up (starting, restarting or stopped), or what `body`
  ///   throws.
  package func withConnection<Result: Sendable>(_ body: (any PluginConnection) async throws -> Result)
    async throws -> Result
  {
    guard let connection = current.withLock({ $0?.connection }) else {
      throw DeckhandError(
        .callFailed, "plugin \(manifest.name) is not running at the moment (starting, restarting or stopped)")
    }
    guard let observeCalls else { return try await body(connection) }
    return try await body(ObservedConnection(base: connection, observe: observeCalls))
  }

  /// Supervises until stopped. Returns once the plugin is stopped and its
  /// process group is gone.
  package func run() async throws {
    await withGracefulShutdownHandler {
      var action = machine.withLock { $0.start() }
      while true {
        switch action {
        case .launch(let attempt):
          action = await launchAndSupervise(attempt: attempt)
        case .restart(let delay, let attempt):
          emit(.restarting, pid: nil) {
            $0.backoff = delay
            $0.attempt = attempt + 1
          }
          let stopped = await sleepUnlessStopped(delay)
          action = machine.withLock { stopped ? $0.requestStop() : $0.backoffElapsed() }
        case .finish:
          if case .detach = stopSignal.value { return }
          if !stoppedReported.withLock({ $0 }) { emit(.stopped, pid: nil) { $0.running = false } }
          return
        case .none, .killUnhealthy, .sendStop, .killGroup:
          // Only reachable from within a launch; treat as the end.
          logger.error("supervisor of \(manifest.name) got \(action) outside a launch")
          return
        }
      }
    } onGracefulShutdown: {
      switch self.shutdownBehaviour {
      case .stopPlugin: self.requestStop()
      case .leaveRunning: self.requestDetach()
      }
    }
  }

  // MARK: One launch

  private enum SessionEnd: Sendable {
    case exited(ProcessExit?)
    case unhealthy(Int)
    case stopRequested
  }

  private func launchAndSupervise(attempt: Int) async -> SupervisorStateMachine.Action {
    let plugin: LaunchedPlugin
    let adopted = adoptee.withLock { adoptee in
      defer { adoptee = nil }
      return adoptee
    }
    if let adopted {
      plugin = adopted
      emit(.attached, pid: plugin.pid) {
        $0.address = "\(plugin.address)"
        $0.version = manifest.version
      }
    } else {
      do {
        plugin = try await launcher.launch(manifest)
      } catch {
        emit(.launchFailed, pid: nil) { $0.error = "\(error)" }
        return machine.withLock { $0.launchFailed(random: .random(in: 0..<1)) }
      }
      emit(.launched, pid: plugin.pid) {
        $0.address = "\(plugin.address)"
        $0.version = manifest.version
      }
    }
    do {
      return try await transport.withConnection(to: plugin.address) { connection in
        // The socket must be served by the plugin's own process tree: in
        // a folder the plugin's user can write, another plugin run as the
        // same user could have put its own listener there.
        if case .unix(let socket) = plugin.address {
          try PluginPeers.checkServer(
            await connection.serverCredentials(), socket: socket, plugin: manifest.name, pid: plugin.pid)
        }
        return await supervise(plugin, connection: connection, sendStart: adopted == nil)
      }
    } catch {
      await plugin.kill()
      emit(.launchFailed, pid: plugin.pid) { $0.error = "\(error)" }
      return machine.withLock { $0.launchFailed(random: .random(in: 0..<1)) }
    }
  }

  private func supervise(_ plugin: LaunchedPlugin, connection: any PluginConnection, sendStart: Bool) async
    -> SupervisorStateMachine.Action
  {
    // Start, and for go-plugin plugins the health service, before ready. A
    // re-attached plugin was started by the previous host.
    do {
      if manifest.launchProtocol == .goPlugin, sendStart {
        let serving = try await connection.checkHealth(service: "plugin", timeout: manifest.timeouts.call)
        if !serving { throw DeckhandError(.callFailed, "grpc.health.v1 reports service \"plugin\" not SERVING") }
      }
      if sendStart {
        let request = try plugin.startRequest()
        let timeout = manifest.timeouts.call
        if let trace = startTrace.withLock({ $0.take() }) {
          try await InstrumentationContext.withValue(trace) { try await connection.start(request, timeout: timeout) }
        } else {
          try await connection.start(request, timeout: timeout)
        }
      }
    } catch {
      let exit = await plugin.kill()
      emit(.launchFailed, pid: plugin.pid) {
        plugin.describeEnd(exit, in: &$0)
        $0.error = "Start failed: \(error)"
      }
      return machine.withLock { $0.launchFailed(random: .random(in: 0..<1)) }
    }
    machine.withLock { _ = $0.ready(now: .now) }
    current.withLock { $0 = (plugin, connection) }
    defer { current.withLock { $0 = nil } }
    emit(.ready, pid: plugin.pid) { $0.launchTime = plugin.launchedAt.duration(to: .now) }

    let end = await withTaskGroup(of: SessionEnd?.self) { group in
      group.addTask { .exited(await plugin.process.waitForExit()) }
      group.addTask { await self.healthLoop(plugin, connection: connection) }
      group.addTask { await self.stopSignal.wait() == nil ? nil : .stopRequested }
      var end: SessionEnd?
      while end == nil, let next = await group.next() { end = next }
      group.cancelAll()
      return end ?? .stopRequested
    }

    switch end {
    case .exited(let exit):
      var ended = event(.exited, pid: plugin.pid)
      plugin.describeEnd(exit, in: &ended)  // before its cgroup goes: it tells an OOM kill
      plugin.releaseAfterExit()
      emit(ended)
      return machine.withLock { $0.exited(now: .now, random: .random(in: 0..<1)) }

    case .unhealthy:
      let exit = await plugin.kill()
      emit(.exited, pid: plugin.pid) {
        plugin.describeEnd(exit, in: &$0)
        $0.reason = "unhealthy"
      }
      return machine.withLock { $0.exited(now: .now, random: .random(in: 0..<1)) }

    case .stopRequested:
      var cleanup = false
      switch stopSignal.value {
      case .detach:
        emit(.detached, pid: plugin.pid) { $0.address = "\(plugin.address)" }
        return .finish
      case .stop(let clean): cleanup = clean
      case nil: break
      }
      let action = machine.withLock { $0.requestStop() }
      guard case .sendStop = action else { return action }
      let outcome = await plugin.stop(using: connection, cleanup: cleanup)
      _ = machine.withLock { outcome.replied ? $0.stopReplied() : $0.stopDeadlineExpired() }
      emit(.stopped, pid: plugin.pid) {
        $0.stopReplied = outcome.replied
        $0.stopTime = outcome.elapsed
        $0.stopError = outcome.stopError
        $0.exit = outcome.exit
      }
      return machine.withLock { $0.exited(now: .now, random: 0) }
    }
  }

  /// Checks health at once, then every `health.interval`, until the plugin
  /// is unhealthy (returned) or the task is cancelled (nil).
  private func healthLoop(_ plugin: LaunchedPlugin, connection: any PluginConnection) async -> SessionEnd? {
    while !Task.isCancelled {
      var ok = false
      var check = event(.healthy, pid: plugin.pid)
      do {
        let status = try await connection.getStatus(data: nil, timeout: manifest.health.timeout)
        ok = status.code == 0
        check.healthCode = Int32(truncatingIfNeeded: status.code)
        check.healthResults = status.results
      } catch {
        if Task.isCancelled { return nil }
        check.error = "\(error)"
      }
      let verdict = machine.withLock { $0.healthChecked(ok: ok, now: .now) }
      switch verdict {
      case .healthy, .ignored:
        break
      case .becameHealthy:
        emit(check)
      case .failed(let count):
        check.event = .healthFailed
        check.failures = count
        emit(check)
      case .unhealthy(let count):
        check.event = .unhealthy
        check.failures = count
        emit(check)
        return .unhealthy(count)
      }
      do {
        try await Task.sleep(for: manifest.health.interval)
      } catch {
        return nil
      }
    }
    return nil
  }

  /// Sleeps `delay`; returns true if a stop came first.
  private func sleepUnlessStopped(_ delay: Duration) async -> Bool {
    let stopped = await firstResult(within: delay) { await self.stopSignal.wait().map { _ in true } }
    return stopped ?? false || stopSignal.value != nil
  }

  /// An event of this plugin, now.
  private func event(_ kind: PluginEvent.Kind, pid: Int32?) -> PluginEvent {
    PluginEvent(event: kind, plugin: manifest.name, pid: pid, time: Date().timeIntervalSince1970)
  }

  /// Reports an event of `kind` with the facts `describe` adds.
  private func emit(_ kind: PluginEvent.Kind, pid: Int32?, _ describe: (inout PluginEvent) -> Void = { _ in }) {
    var event = event(kind, pid: pid)
    describe(&event)
    emit(event)
  }

  private func emit(_ event: PluginEvent) {
    if event.event == .stopped { stoppedReported.withLock { $0 = true } }
    onEvent(event)
  }

}
