internal import CDeckhandSystem
package import DeckhandCore
package import DeckhandProtocol
internal import Foundation
internal import SwiftProtobuf

#if canImport(Glibc)
  internal import Glibc
#endif

/// A plugin process that serves, as ``PluginLauncher`` hands it back.
package struct LaunchedPlugin: Sendable {
  /// The manifest it was launched from.
  package let manifest: PluginManifest
  /// Its process.
  package let process: ChildProcess
  /// Where it serves.
  package let address: PluginAddress
  /// A socket file the host removes once the plugin is gone.
  let socketToRemove: String?
  /// The file given as `--errorlogfile` (guest-agent contract).
  package let errorLog: String?
  /// When the launch began.
  package let launchedAt: ContinuousClock.Instant
  /// The host's folders.
  package let paths: HostPaths
  /// How its `limits` are enforced: its cgroups, if any.
  package var limits: ResourceControl.Applied? = nil
  /// What enforces them.
  var resources: ResourceControl? = nil
  /// The `DECKHAND_PLUGIN_INSTANCE=…` entry this launch put in the plugin's
  /// environment, which its descendants inherit (read back from /proc for
  /// a plugin adopted from a previous host; "" if it had none).
  package internal(set) var instance: String = ""

  /// The process id, also its process group id.
  package var pid: Int32 { process.pid }

  /// What the next host needs to re-attach to this plugin.
  package var attachment: PluginLauncher.Attachment {
    PluginLauncher.Attachment(
      pid: pid, startTime: deckhand_process_start_time(pid), address: address, socket: socketToRemove)
  }

  /// The StartRequest for this plugin: its state directory and its config.
  package func startRequest() throws(DeckhandError) -> PluginComm_StartRequest {
    var request = PluginComm_StartRequest()
    request.config.stateDirectoryPath = try paths.pluginStateDirectory(manifest.name)
    switch manifest.config {
    case .string(let text): request.stringConfig = text
    case .object(let object): request.structConfig = Google_Protobuf_Struct(jsonObject: object)
    case nil: break
    }
    return request
  }

  /// The last lines of the plugin's stderr, stdout and error log.
  package func lastLines() -> PluginEvent.LastLines {
    PluginEvent.LastLines(
      stderr: process.stderrTail.snapshot, stdout: process.stdoutTail.snapshot,
      errorLog: errorLog.flatMap { Self.tail(ofFile: $0, lines: 20) } ?? [])
  }

  /// Adds to `event` what reports the plugin's end: the last lines of its
  /// output, how it exited, and whether the kernel killed it for memory.
  func describeEnd(_ exit: ProcessExit?, in event: inout PluginEvent) {
    event.lastLines = lastLines()
    event.exit = exit
    if killedForMemory {
      event.outOfMemory = true
      event.reason = "OOM: over limits.memory_mb = \(manifest.limits.memoryMB ?? 0) MiB"
    }
  }

  /// ": last stderr lines: …" for error messages, or "".
  func lastLinesSuffix() -> String {
    var parts: [String] = []
    let stderr = process.stderrTail.snapshot.suffix(5)
    if !stderr.isEmpty { parts.append("last stderr lines: " + stderr.joined(separator: " | ")) }
    if let errorLog, let tail = Self.tail(ofFile: errorLog, lines: 5), !tail.isEmpty {
      parts.append("last error log lines: " + tail.joined(separator: " | "))
    }
    let stdout = process.stdoutTail.snapshot.suffix(3)
    if !stdout.isEmpty { parts.append("last stdout lines: " + stdout.joined(separator: " | ")) }
    return parts.isEmpty ? "" : "; " + parts.joined(separator: "; ")
  }

  /// Runs `body`; if it throws, kills the plugin's process group and
  /// removes its socket before rethrowing.
  func failingCleanly<R>(_ body: () async throws -> R) async throws -> R {
    do {
      return try await body()
    } catch {
      await process.killGroupAndWait()
      releaseAfterExit()
      throw error
    }
  }

  /// The result of ``stop(using:cleanup:)``.
  package struct StopOutcome: Sendable {
    /// Whether the plugin answered StopRequest before the deadline.
    package var replied: Bool
    /// The error of the Stop call, if it failed.
    package var stopError: String?
    /// How the process ended.
    package var exit: ProcessExit?
    /// From the stop request to the reaped process.
    package var elapsed: Duration
  }

  /// Stops the plugin: StopRequest{cleanup, deadline = stop_s}; for go-plugin
  /// plugins also `GRPCController/Shutdown`; then, after the reply or the
  /// deadline, the whole process group is killed, the process reaped and
  /// the socket removed. With `cleanup` the state directory is removed too.
  package func stop(using connection: (any PluginConnection)?, cleanup: Bool) async -> StopOutcome {
    let begin = ContinuousClock.now
    let deadline = manifest.timeouts.stop
    var replied = false
    var stopError: String?
    if let connection, process.exit == nil {
      var request = PluginComm_StopRequest()
      request.cleanup = cleanup
      request.deadline = Google_Protobuf_Duration(deadline)
      do {
        try await connection.stop(request, timeout: deadline)
        replied = true
      } catch {
        stopError = "\(error)"
      }
      if manifest.launchProtocol == .goPlugin, process.exit == nil {
        let left = deadline - begin.duration(to: .now)
        if left > .zero { try? await connection.shutdownController(timeout: left) }
      }
      // A plugin that answered usually exits by itself at once; let it,
      // within the deadline, before the group is killed.
      if replied {
        let left = deadline - begin.duration(to: .now)
        if left > .zero { _ = await process.waitForExit(timeout: min(left, .milliseconds(200))) }
      }
    }
    let exit = await process.killGroupAndWait()
    releaseAfterExit()
    if cleanup {
      try? FileManager.default.removeItem(atPath: paths.pluginStateDirectory(manifest.name))
    }
    return StopOutcome(replied: replied, stopError: stopError, exit: exit, elapsed: begin.duration(to: .now))
  }

  /// Kills the process group at once (an unhealthy or lost plugin), reaps
  /// the process and removes its socket.
  @discardableResult
  package func kill() async -> ProcessExit? {
    let exit = await process.killGroupAndWait()
    releaseAfterExit()
    return exit
  }

  /// Once the process is gone: ends what it left running (its process
  /// group, and every process that carries this launch's instance entry in
  /// its environment, as ``ProcessSweep`` finds them), removes its socket
  /// file, if the host owns one, and its cgroups.
  func releaseAfterExit() {
    var sweep = ProcessSweep(marker: instance)
    sweep.processGroup = process.pid
    sweep.signal(SIGKILL)
    if let socketToRemove, !socketToRemove.isEmpty {
      SocketFile.remove(socketToRemove, runtimeDirectory: paths.runtimeDirectory)
    }
    if let limits, let resources { resources.remove(limits) }
  }

  /// Whether the kernel killed it for going over its memory limit.
  package var killedForMemory: Bool {
    guard let limits, let resources else { return false }
    return resources.oomKilled(limits)
  }

  package static func tail(ofFile path: String, lines count: Int) -> [String]? {
    guard let handle = FileHandle(forReadingAtPath: path) else { return nil }
    defer { try? handle.close() }
    let size = (try? handle.seekToEnd()) ?? 0
    let start = size > 65_536 ? size - 65_536 : 0
    try? handle.seek(toOffset: start)
    guard let data = try? handle.readToEnd() else { return nil }
    let lines = String(decoding: data, as: UTF8.self).split(separator: "\n").map(String.init)
    return Array(lines.suffix(count))
  }
}
