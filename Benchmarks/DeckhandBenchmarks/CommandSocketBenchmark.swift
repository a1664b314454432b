internal import CDeckhandSystem
internal import DeckhandAgent
internal import DeckhandCore
package import DeckhandPluginHost
internal import Foundation
internal import Logging
internal import Synchronization

#if canImport(Glibc)
  internal import Glibc
#endif

/// `deckhand bench commands`: round trips of `agent.status` on the command
/// socket, one connection per request as the protocol has it, with one and
/// with many clients; beside them, the same requests to a bare unix-socket
/// echo server (one thread: accept, read the request, write it back,
/// close), the floor that any command socket pays in system calls.
package struct CommandSocketBenchmark: Sendable {
  /// What to run.
  package struct Options: Sendable {
    /// Sequential requests for the 1-client figures.
    package var requests = 5000
    /// Concurrent clients.
    package var clients = 16
    /// Length of the concurrent phase.
    package var duration: Duration = .seconds(3)
    package init() {}
  }

  let options: Options

  package init(options: Options) {
    self.options = options
  }

  static let request = Array(#"{"Command":"agent.status"}"#.utf8)

  /// Runs both targets; `socket` is a running agent's, or nil to start one.
  package func run(socket: String?, report: @Sendable (PluginBenchmark.Figure) -> Void) async throws {
    let folder = FileManager.default.temporaryDirectory.path + "/deckhand-bench-\(getpid())"
    try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(atPath: folder) }

    if let socket {
      try await measure(agentSocket: socket, folder: folder, report: report)
      return
    }
    let agentSocket = "\(folder)/commands.sock"
    var configuration = AgentConfiguration(
      stateDirectory: "\(folder)/state", runtimeDirectory: "\(folder)/run", socketPath: agentSocket, nodeName: "bench")
    configuration.socketMode = 0o600
    var logger = Logger(label: "deckhand.bench")
    logger.logLevel = .warning
    try await Agent(configuration: configuration, logger: logger).run { _ in
      try await measure(agentSocket: agentSocket, folder: folder, report: report)
    }
  }

  /// The agent's figures beside the floor's.
  private func measure(
    agentSocket: String, folder: String, report: @Sendable (PluginBenchmark.Figure) -> Void
  ) async throws {
    let floorSocket = "\(folder)/floor.sock"
    let floor = try EchoServer(path: floorSocket)
    defer { floor.stop() }

    var c16: [String: Double] = [:]
    for (prefix, path) in [("agent_status", agentSocket), ("floor", floorSocket)] {
      let sequential = try await Self.clients(1, path: path, requests: options.requests, duration: nil)
      sequential.report("\(prefix)_c1", to: report)
      let concurrent = try await Self.clients(options.clients, path: path, requests: nil, duration: options.duration)
      concurrent.report("\(prefix)_c\(options.clients)", to: report)
      c16[prefix] = concurrent.rate
    }
    if let agentRate = c16["agent_status"], let floorRate = c16["floor"], floorRate > 0 {
      report(.init(name: "agent_status_c\(options.clients)_vs_floor", value: agentRate / floorRate, unit: "x"))
    }
  }

  struct Result {
    var latencies: [Duration]
    var rate: Double

    /// NAME_p50, NAME_p99 (us) and NAME_rate (req/s).
    func report(_ name: String, to report: @Sendable (PluginBenchmark.Figure) -> Void) {
      for (suffix, fraction) in [("p50", 0.5), ("p99", 0.99)] {
        let value = PluginBenchmark.us(PluginBenchmark.percentile(latencies, fraction))
        report(.init(name: "\(name)_\(suffix)", value: value, unit: "us"))
      }
      report(.init(name: "\(name)_rate", value: rate, unit: "req/s"))
    }
  }

  /// Runs `count` client threads, each sending requests (a fixed number,
  /// or for a duration) and checking every answer.
  static func clients(_ count: Int, path: String, requests: Int?, duration: Duration?) async throws -> Result {
    let results = Mutex<(latencies: [Duration], failures: [String], done: Int)>(([], [], 0))
    let begin = ContinuousClock.now
    let end = duration.map { begin + $0 }
    await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
      for _ in 0..<count {
        Thread.detachNewThread {
          var mine: [Duration] = []
          var failure: String?
          var sent = 0
          while true {
            if let requests, sent >= requests { break }
            if let end, ContinuousClock.now >= end { break }
            let start = ContinuousClock.now
            do {
              let response = try CommandClient.send(request, socket: path, timeout: .seconds(10))
              guard response.starts(with: Array(#"{""#.utf8)) else {
                failure = "unexpected answer: \(String(decoding: response.prefix(100), as: UTF8.self))"
                break
              }
            } catch {
              failure = "\(error)"
              break
            }
            mine.append(start.duration(to: .now))
            sent += 1
          }
          let finished = results.withLock {
            $0.latencies += mine
            if let failure { $0.failures.append(failure) }
            $0.done += 1
            return $0.done == count
          }
          if finished { continuation.resume() }
        }
      }
    }
    let elapsed = begin.duration(to: .now)
    let (latencies, failures) = results.withLock { ($0.latencies, $0.failures) }
    if let failure = failures.first {
      throw DeckhandError(.callFailed, "benchmark request to \(path) failed: \(failure)")
    }
    return Result(latencies: latencies.sorted(), rate: Double(latencies.count) / elapsed.inSeconds)
  }
}

/// The floor: a one-thread unix-socket server that echoes each
/// connection's request and closes it.
final class EchoServer: Sendable {
  private let fd: Int32
  private let path: String

  init(path: String) throws {
    unlink(path)
    let fd = deckhand_unix_listen(path, 512)
    guard fd >= 0 else {
      throw DeckhandError(.configurationInvalid, "cannot listen on \(path): \(String(cString: strerror(-fd)))")
    }
    self.fd = fd
    self.path = path
    Thread.detachNewThread { [fd] in
      var buffer = [UInt8](repeating: 0, count: 4096)
      while true {
        let client = accept(fd, nil, nil)
        if client < 0 {
          if errno == EINTR || errno == ECONNABORTED { continue }
          return
        }
        var scanner = CommandRequestScanner()
        var received: [UInt8] = []
        while true {
          let count = buffer.withUnsafeMutableBytes { read(client, $0.baseAddress, $0.count) }
          if count <= 0 { break }
          received += buffer[0..<count]
          if case .incomplete = scanner.scan(buffer[0..<count]) { continue }
          break
        }
        _ = received.withUnsafeBytes { send(client, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        close(client)
      }
    }
  }

  func stop() {
    shutdown(fd, Int32(SHUT_RDWR))
    close(fd)
    unlink(path)
  }
}
