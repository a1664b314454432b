package import DeckhandCore
package import Foundation

/// A throw-away Prometheus server (Debian's `prometheus`) that scrapes the
/// given targets every second, with its data in a folder of its own;
/// stopped (SIGTERM, then SIGKILL) by ``stop()`` or when released.
package final class PrometheusServer: Sendable {
  package let process: Process
  package let port: Int
  package let folder: String

  deinit {
    if process.isRunning { kill(process.processIdentifier, SIGKILL) }
    try? FileManager.default.removeItem(atPath: folder)
  }

  /// Starts it scraping `targets` (`name` → `HOST:PORT`, one job each) and
  /// waits until it is ready.
  package init(targets: [String: String], executable: String = "/usr/bin/prometheus") async throws {
    guard FileManager.default.isExecutableFile(atPath: executable) else {
      throw DeckhandError(
        .configurationInvalid, "\(executable) is missing: install Debian's prometheus (scripts/test.sh does)")
    }
    folder = FileManager.default.temporaryDirectory.path + "/deckhand-prometheus-\(UUID().uuidString.prefix(8))"
    try FileManager.default.createDirectory(atPath: "\(folder)/data", withIntermediateDirectories: true)
    port = try FreePort.next()
    var config = "global:\n  scrape_interval: 1s\n  scrape_timeout: 900ms\nscrape_configs:\n"
    for (name, target) in targets.sorted(by: { $0.key < $1.key }) {
      config += "  - job_name: \(name)\n    static_configs:\n      - targets: ['\(target)']\n"
    }
    try Data(config.utf8).write(to: URL(fileURLWithPath: "\(folder)/prometheus.yml"))
    process = Process()
    process.executableURL = URL(fileURLWithPath: executable)
    process.arguments = [
      "--config.file=\(folder)/prometheus.yml", "--storage.tsdb.path=\(folder)/data",
      "--web.listen-address=127.0.0.1:\(port)", "--log.level=warn",
    ]
    process.standardInput = FileHandle.nullDevice
    _ = FileManager.default.createFile(atPath: "\(folder)/log", contents: nil)
    let log = try FileHandle(forWritingTo: URL(fileURLWithPath: "\(folder)/log"))
    process.standardOutput = log
    process.standardError = log
    try process.run()
    let ready = await eventually(timeout: .seconds(30)) { [port] in
      (try? await Self.get(port, "/-/ready")) != nil
    }
    guard ready else {
      let text = (try? String(contentsOfFile: "\(folder)/log", encoding: .utf8)) ?? ""
      stop()
      throw DeckhandError(.startTimeout, "prometheus did not become ready within 30 s; its log:\n\(text)")
    }
  }

  package func stop() {
    process.terminateWithin5Seconds()
  }

  /// The health of each scrape job's target (`up`, `down`, `unknown`), by
  /// job name, from `/api/v1/targets`.
  package func targetHealth() async throws -> [String: String] {
    let answer = try await api("/api/v1/targets")
    guard case .object(let data) = answer, case .array(let active) = data["activeTargets"] else { return [:] }
    var health: [String: String] = [:]
    for target in active {
      guard case .object(let fields) = target, case .object(let labels) = fields["labels"],
        case .string(let job) = labels["job"], case .string(let state) = fields["health"]
      else { continue }
      health[job] = state
    }
    return health
  }

  /// The sum of an instant `query`'s values (nil when it has none).
  package func value(_ query: String) async throws -> Double? {
    let encoded = query.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? query
    guard case .object(let data) = try await api("/api/v1/query?query=\(encoded)"),
      case .array(let results) = data["result"], !results.isEmpty
    else { return nil }
    var sum = 0.0
    for result in results {
      guard case .object(let fields) = result, case .array(let pair) = fields["value"], pair.count == 2,
        case .string(let text) = pair[1], let number = Double(text)
      else { continue }
      sum += number
    }
    return sum
  }

  /// `data` of an API answer whose status is `success`.
  private func api(_ path: String) async throws -> JSONValue {
    let body = try await Self.get(port, path)
    guard case .object(let fields) = try JSONValue.parse(Array(body.utf8)), case .string("success") = fields["status"],
      let data = fields["data"]
    else {
      throw DeckhandError(.callFailed, "prometheus answered \(path) with \(body)")
    }
    return data
  }

  /// The body of a GET on loopback that answered 200.
  package static func get(_ port: Int, _ path: String) async throws -> String {
    let answer = try await HTTPProbe.get(port: port, path)
    guard answer.status == 200 else {
      throw DeckhandError(.callFailed, "GET \(path) on port \(port) answered \(answer.status): \(answer.body)")
    }
    return answer.body
  }
}

extension Process {
  /// Ends a helper process of the tests: SIGTERM, up to 5 s to exit, then
  /// SIGKILL.
  package func terminateWithin5Seconds() {
    guard isRunning else { return }
    terminate()
    for _ in 0..<50 where isRunning { usleep(100_000) }
    if isRunning { kill(processIdentifier, SIGKILL) }
  }
}
