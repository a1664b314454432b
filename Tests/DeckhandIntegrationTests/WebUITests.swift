import DeckhandCore
import DeckhandTestSupport
import Foundation
import Testing

@Suite("Web UI: signed in with a token, in a real browser", .serialized)
struct WebUITests {
  /// Where the browser tests' screenshots go (kept with the test results).
  static let screenshots = Fixtures.packageRoot + "/.build/test-screenshots"

  /// `curl` against the UI: status and body (the server's certificate is
  /// its own CA's, so not verified here).
  func curl(_ arguments: [String]) async throws -> (status: Int, head: String, body: String) {
    let result = try await runCommand("/usr/bin/curl", ["-sk", "-i", "--max-time", "10"] + arguments)
    let parts = result.stdout.components(separatedBy: "\r\n\r\n")
    let head = parts.first ?? ""
    let status = head.split(separator: " ").dropFirst().first.flatMap { Int($0) } ?? 0
    return (status, head, parts.dropFirst().joined(separator: "\r\n\r\n"))
  }

  @Test("sign in, see the node READY, drain it from the UI and the CLI says so; follow and cancel jobs; sign out")
  func browser() async throws {
    let root = try TestWorkspace()
    let server = try ServerProcess(root: root.root, port: try FreePort.next())
    try await server.waitUntilServing()
    let web = try #require(server.webURL)
    let node = try TestWorkspace()
    let agent = try await AgentProcess.joined(node, to: server, name: "web-1")
    defer { agent.signal(SIGKILL) }
    let browser = try await WebDriver()
    defer { browser.stop() }

    // Without a session, every page leads to sign-in.
    try await browser.open(web)
    #expect(try await browser.currentURL().hasSuffix("/signin"))
    try await browser.screenshot(to: "\(Self.screenshots)/signin.png")
    // A wrong token is refused, saying why.
    try await browser.type("DHTKN-1-nonsense", into: "#token")
    try await browser.click("#signin")
    #expect(await browser.waitUntil { try await $0.text("#error").contains("token") })

    try await browser.type(server.operatorToken, into: "#token")
    try await browser.click("#signin")
    #expect(await browser.waitUntil { try await $0.currentURL() == web })
    let ready = await eventually(timeout: .seconds(10)) {
      try? await browser.open(web)
      let page = (try? await browser.source()) ?? ""
      return page.contains("web-1") && page.contains(">READY<")
    }
    let fleetPage = try await browser.source()
    #expect(ready, "\(fleetPage)")
    try await browser.screenshot(to: "\(Self.screenshots)/fleet.png")

    // The events page: what happened, then a new event as it happens.
    try await browser.open(web + "events")
    #expect(try await browser.text("#events").contains("node.joined"))
    _ = try await browser.execute("window.deckhandMark = 'events'; return true;")
    #expect(try await server.cli(["nodes", "drain", "web-1"]).status == 0)
    #expect(await browser.waitUntil { try await $0.text("#events").contains("node.drained") })
    #expect(try await browser.execute("return window.deckhandMark;") == .string("events"), "the page reloaded")
    try await browser.screenshot(to: "\(Self.screenshots)/events.png")
    #expect(try await server.cli(["nodes", "activate", "web-1"]).status == 0)

    // Drain from the node's page: the CLI sees it.
    try await browser.open(web + "nodes/web-1")
    #expect(try await browser.text("#availability") == "active")
    try await browser.click("#drain")
    #expect(await browser.waitUntil { try await $0.text("#availability") == "drain" })
    try await browser.screenshot(to: "\(Self.screenshots)/node-drained.png")
    let listed = try await server.cli(["nodes", "ls"])
    #expect(listed.stdout.contains("drain"), "\(listed.stdout)")
    try await browser.click("#activate")
    #expect(await browser.waitUntil { try await $0.text("#availability") == "active" })

    // A job queued from the CLI: its output appears on its page as the job
    // writes it, without reloading (a mark set in the page stays).
    let queued = try await server.cli([
      "jobs", "run", "--", "sh", "-c", "echo first-line; sleep 2; echo second-line; sleep 1",
    ])
    let id = queued.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
    try await browser.open(web + "jobs/\(id)")
    _ = try await browser.execute("window.deckhandMark = 'same page'; return true;")
    #expect(await browser.waitUntil { try await $0.text("#output").contains("first-line") })
    #expect(await browser.waitUntil { try await $0.text("#output").contains("second-line") })
    #expect(await browser.waitUntil { try await $0.text("#state") == "SUCCESS" })
    #expect(try await browser.execute("return window.deckhandMark;") == .string("same page"), "the page reloaded")
    try await browser.screenshot(to: "\(Self.screenshots)/job.png")
    // Kept after it ended.
    try await browser.open(web + "jobs/\(id)")
    #expect(try await browser.text("#output").contains("first-line\nsecond-line"))

    // Cancel a running job from its page.
    let long = try await server.cli(["jobs", "run", "--", "sh", "-c", "echo started; sleep 60"])
    let longID = long.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
    try await browser.open(web + "jobs/\(longID)")
    #expect(await browser.waitUntil { try await $0.text("#output").contains("started") })
    try await browser.click("#cancel")
    #expect(await browser.waitUntil(timeout: .seconds(15)) { try await $0.text("#state") == "ERROR" })
    try await browser.screenshot(to: "\(Self.screenshots)/job-cancelled.png")
    try await browser.open(web + "jobs")
    #expect(try await browser.source().contains(longID))
    try await browser.screenshot(to: "\(Self.screenshots)/jobs.png")

    // Sign out: the session is over.
    try await browser.click("#signout")
    #expect(await browser.waitUntil { try await $0.currentURL().hasSuffix("/signin") })
    try await browser.open(web)
    #expect(try await browser.currentURL().hasSuffix("/signin"))
  }

  @Test(
    "without a session pages redirect and actions are refused; a forged or cross-site POST and a revoked token are refused"
  )
  func refusals() async throws {
    let root = try TestWorkspace()
    let server = try ServerProcess(root: root.root, port: try FreePort.next())
    try await server.waitUntilServing()
    let web = try #require(server.webURL)

    // No session.
    for path in ["", "nodes/anything"] {
      let page = try await curl([web + path])
      #expect(page.status == 303 && page.head.contains("Location: /signin"), "\(page.head)")
    }
    let anonymous = try await curl(["-X", "POST", "-d", "csrf=x", web + "nodes/anything/drain"])
    #expect(anonymous.status == 403)
    // Security headers on every answer.
    #expect(anonymous.head.contains("Content-Security-Policy: default-src 'self'"))
    #expect(anonymous.head.contains("X-Content-Type-Options: nosniff"))

    // A worker token cannot sign in.
    let worker = try await curl(["-d", "token=\(server.workerToken)", web + "signin"])
    #expect(worker.status == 401 && worker.body.contains("cannot sign in"), "\(worker.body)")

    // A session made with a token of its own, revoked later.
    let made = try await server.json(["tokens", "create", "--role", "operator"])
    guard case .object(let fields) = made, case .string(let token) = fields["secret"],
      case .object(let record) = fields["token"], case .string(let id) = record["id"]
    else {
      Issue.record("tokens create --json: \(made)")
      return
    }
    let signedIn = try await curl(["-d", "token=\(token)", web + "signin"])
    #expect(signedIn.status == 303)
    let cookie = try #require(
      signedIn.head.split(separator: "\r\n").first { $0.hasPrefix("Set-Cookie: deckhand_session=") })
    #expect(cookie.contains("HttpOnly") && cookie.contains("Secure") && cookie.contains("SameSite=Strict"))
    let session = String(cookie.dropFirst("Set-Cookie: ".count).split(separator: ";")[0])
    let fleet = try await curl(["-H", "Cookie: \(session)", web])
    #expect(fleet.status == 200 && fleet.body.contains("<h1>Fleet</h1>"))

    // A POST without the session's CSRF secret, or from another site.
    let forged = try await curl(["-H", "Cookie: \(session)", "-X", "POST", "-d", "csrf=forged", web + "signout"])
    #expect(forged.status == 403 && forged.body.contains("CSRF"), "\(forged.body)")
    let csrf = try #require(fleet.body.firstMatch(of: /name="csrf" value="([0-9a-f]+)"/)?.1)
    let crossSite = try await curl([
      "-H", "Cookie: \(session)", "-H", "Sec-Fetch-Site: cross-site", "-X", "POST", "-d", "csrf=\(csrf)",
      web + "signout",
    ])
    #expect(crossSite.status == 403, "\(crossSite.body)")

    // Revoked: the session ends with it.
    #expect(try await server.cli(["tokens", "revoke", id]).status == 0)
    let revoked = await eventually(timeout: .seconds(10)) {
      (try? await curl(["-H", "Cookie: \(session)", web]))?.status == 303
    }
    #expect(revoked, "a revoked token's session still reads pages")
  }
}
