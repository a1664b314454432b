package import DeckhandCore
package import Foundation

/// Debian's headless Chromium driven over WebDriver (chromium-driver's
/// `chromedriver` on a loopback port of its own): open pages, fill in and
/// click, read what is shown, save screenshots. Trusts any certificate
/// (the server's own CA signs the UI's). Stopped by ``stop()`` or when
/// released.
package final class WebDriver: Sendable {
  package let process: Process
  package let port: Int
  package let session: String
  private let profile: String

  deinit {
    Self.killGroup(process)
    try? FileManager.default.removeItem(atPath: profile)
  }

  /// Ends chromedriver and the browser it started: they share
  /// chromedriver's process group (stopping chromedriver alone left a
  /// Chromium of about 230 MB behind after every test).
  private static func killGroup(_ process: Process) {
    let group = process.processIdentifier
    guard group > 0 else { return }
    kill(-group, SIGTERM)
    for _ in 0..<50 where process.isRunning { usleep(100_000) }
    kill(-group, SIGKILL)
  }

  package init(
    driver: String = "/usr/bin/chromedriver", browser: String = "/usr/bin/chromium"
  ) async throws {
    for path in [driver, browser] where !FileManager.default.isExecutableFile(atPath: path) {
      throw DeckhandError(
        .configurationInvalid,
        "\(path) is missing: install Debian's chromium and chromium-driver (scripts/test.sh does)")
    }
    port = try FreePort.next()
    profile = FileManager.default.temporaryDirectory.path + "/deckhand-chromium-\(UUID().uuidString.prefix(8))"
    process = Process()
    // Foundation starts it as the leader of a process group of its own,
    // which the browser it starts joins: see killGroup(_:).
    process.executableURL = URL(fileURLWithPath: driver)
    process.arguments = ["--port=\(port)"]
    process.standardInput = FileHandle.nullDevice
    process.standardOutput = FileHandle.nullDevice
    process.standardError = FileHandle.nullDevice
    try process.run()
    let port = self.port
    let ready = await eventually(timeout: .seconds(20)) {
      let request = "GET /status HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
      return (try? await HTTPProbe.send(port: port, request, oneAnswer: true))?.body.contains("\"ready\":true") == true
    }
    guard ready else {
      Self.killGroup(process)
      throw DeckhandError(.startTimeout, "chromedriver did not become ready within 20 s")
    }
    let capabilities: JSONValue = .object([
      "capabilities": .object([
        "alwaysMatch": .object([
          "browserName": .string("chrome"),
          "acceptInsecureCerts": .bool(true),
          "goog:chromeOptions": .object([
            "binary": .string(browser),
            "args": .array(
              [
                "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1280,900",
                // No crash handler: it leaves its process group and would
                // outlive the test.
                "--disable-crash-reporter", "--disable-breakpad",
                "--user-data-dir=\(profile)",
              ].map(JSONValue.string)),
          ]),
        ])
      ])
    ])
    let answer = try await Self.call(port: port, "POST", "/session", capabilities, timeout: .seconds(60))
    guard case .object(let value) = answer, case .string(let id) = value["sessionId"] else {
      Self.killGroup(process)
      throw DeckhandError(.callFailed, "chromedriver made no session: \(answer)")
    }
    session = id
  }

  /// Opens `url` and waits for it to load.
  package func open(_ url: String) async throws {
    _ = try await call("POST", "/url", .object(["url": .string(url)]))
  }

  /// The page's address now (after redirects).
  package func currentURL() async throws -> String {
    guard case .string(let url) = try await call("GET", "/url") else { return "" }
    return url
  }

  /// The page's HTML now.
  package func source() async throws -> String {
    guard case .string(let html) = try await call("GET", "/source") else { return "" }
    return html
  }

  /// The elements `css` selects, as WebDriver element ids.
  package func elements(_ css: String) async throws -> [String] {
    guard
      case .array(let found) = try await call(
        "POST", "/elements", .object(["using": .string("css selector"), "value": .string(css)]))
    else { return [] }
    return found.compactMap { element in
      guard case .object(let fields) = element, case .string(let id) = fields.values.first else { return nil }
      return id
    }
  }

  /// The first element `css` selects; throws when there is none.
  package func element(_ css: String) async throws -> String {
    guard let first = try await elements(css).first else {
      throw DeckhandError(.notFound, "no element matches \(css) on \(try await currentURL())")
    }
    return first
  }

  package func type(_ text: String, into css: String) async throws {
    _ = try await call("POST", "/element/\(try await element(css))/value", .object(["text": .string(text)]))
  }

  package func click(_ css: String) async throws {
    _ = try await call("POST", "/element/\(try await element(css))/click", .object([:]))
  }

  /// The visible text of the first element `css` selects.
  package func text(_ css: String) async throws -> String {
    guard case .string(let text) = try await call("GET", "/element/\(try await element(css))/text") else { return "" }
    return text
  }

  /// Runs `script` (a function body) in the page; what it returns.
  package func execute(_ script: String) async throws -> JSONValue {
    try await call("POST", "/execute/sync", .object(["script": .string(script), "args": .array([])]))
  }

  /// Waits up to `timeout` until `condition` holds on the page (a click
  /// that submits a form returns before the next page has loaded).
  package func waitUntil(
    timeout: Duration = .seconds(10), _ condition: @escaping @Sendable (WebDriver) async throws -> Bool
  ) async -> Bool {
    await eventually(timeout: timeout) { (try? await condition(self)) == true }
  }

  /// Saves the window as a PNG at `path`.
  package func screenshot(to path: String) async throws {
    guard case .string(let base64) = try await call("GET", "/screenshot"), let data = Data(base64Encoded: base64) else {
      throw DeckhandError(.callFailed, "chromedriver gave no screenshot")
    }
    try FileManager.default.createDirectory(
      atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
    try data.write(to: URL(fileURLWithPath: path))
  }

  package func stop() {
    Self.killGroup(process)
  }

  private func call(_ method: String, _ path: String, _ body: JSONValue? = nil) async throws -> JSONValue {
    try await Self.call(port: port, method, "/session/\(session)\(path)", body)
  }

  /// One WebDriver command: its `value`, or its error as a DeckhandError.
  private static func call(
    port: Int, _ method: String, _ path: String, _ body: JSONValue?, timeout: Duration = .seconds(30)
  ) async throws -> JSONValue {
    let payload = body.flatMap { $0.serialized() }.map { String(decoding: $0, as: UTF8.self) } ?? ""
    let request =
      "\(method) \(path) HTTP/1.1\r\nHost: 127.0.0.1:\(port)\r\nConnection: close\r\n"
      + "Content-Type: application/json\r\nContent-Length: \(payload.utf8.count)\r\n\r\n\(payload)"
    let answer = try await HTTPProbe.send(port: port, request, timeout: timeout, oneAnswer: true)
    guard case .object(let fields) = try? JSONValue.parse(Array(answer.body.utf8)) else {
      throw DeckhandError(.callFailed, "chromedriver answered \(method) \(path) with \(answer.status): \(answer.body)")
    }
    let value = fields["value"] ?? .null
    if answer.status != 200, case .object(let error) = value, case .string(let message) = error["message"] {
      throw DeckhandError(.callFailed, "chromedriver \(method) \(path): \(message)")
    }
    return value
  }
}
