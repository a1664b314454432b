import DeckhandCore
import DeckhandPluginHost
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

  /// Signs in with `token` over curl: the `Set-Cookie` line and the
  /// `deckhand_session=…` pair to send back.
  func signIn(_ token: String, at web: String) async throws -> (setCookie: String, session: String) {
    let signedIn = try await curl(["-d", "token=\(token)", web + "signin"])
    let line = try #require(
      signedIn.head.split(separator: "\r\n").first { $0.hasPrefix("Set-Cookie: deckhand_session=") },
      "signing in answered \(signedIn.status): \(signedIn.body)")
    return (String(line), String(line.dropFirst("Set-Cookie: ".count).split(separator: ";")[0]))
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
    "an operator deploys an uploaded package, follows a plugin's log, queues a command and invites a viewer, who finds nothing to change"
  )
  func operatorAndViewer() async throws {
    let root = try TestWorkspace()
    let server = try ServerProcess(root: root.root, port: try FreePort.next())
    try await server.waitUntilServing()
    let web = try #require(server.webURL)
    let node = try TestWorkspace()
    let agent = try await AgentProcess.joined(node, to: server, name: "web-2")
    defer { agent.signal(SIGKILL) }
    #expect(try await server.cli(["nodes", "label", "web-2", "tier=web"]).status == 0)
    let browser = try await WebDriver()
    defer { browser.stop() }
    try await browser.open(web + "signin")
    try await browser.type(server.operatorToken, into: "#token")
    try await browser.click("#signin")
    #expect(await browser.waitUntil { try await $0.currentURL() == web })

    // The fleet filtered by label.
    try await browser.open(web + "?label=tier%3Dweb")
    #expect(await browser.waitUntil { try await $0.source().contains("web-2") })
    try await browser.open(web + "?label=tier%3Dnone")
    #expect(try await browser.text("#summary").hasPrefix("0 of 1 nodes"))

    // Deploy a package uploaded from the deployments page; its progress
    // reaches 1 done of 1.
    let package = try ControlPlaneTests.echoPackage(in: root.root)
    try await browser.open(web + "deployments")
    try await browser.type(package, into: "#package")
    try await browser.click("#deploy-submit")
    #expect(await browser.waitUntil(timeout: .seconds(20)) { try await $0.currentURL().contains("/deployments/") })
    let deployment = try await browser.currentURL()
    let rolled = await eventually(timeout: .seconds(30)) {
      try? await browser.open(deployment)
      return ((try? await browser.text("#progress")) ?? "").hasPrefix("1 done")
    }
    let deploymentPage = (try? await browser.source()) ?? ""
    #expect(rolled, "\(deploymentPage)")
    try await browser.screenshot(to: "\(Self.screenshots)/deployment.png")
    try await browser.open(web + "deployments")
    #expect(try await browser.source().contains("echo@1.0.0"))
    try await browser.screenshot(to: "\(Self.screenshots)/deployments.png")
    try await browser.open(web)
    #expect(try await browser.source().contains("echo RUNNING"), "the fleet page names the node's plugins")

    // The plugin's log, following live on the node's page.
    let stdout = "\(node.paths.stateDirectory)/logs/echo.stdout.log"
    #expect(await eventually(timeout: .seconds(10)) { FileManager.default.fileExists(atPath: stdout) })
    try await browser.open(web + "nodes/web-2?log=echo")
    #expect(await browser.waitUntil { try await $0.text("#log-state") == "following" })
    let handle = try #require(FileHandle(forWritingAtPath: stdout))
    handle.seekToEndOfFile()
    handle.write(Data("written-while-watched\n".utf8))
    try handle.close()
    #expect(
      await browser.waitUntil(timeout: .seconds(15)) {
        try await $0.text("#log-lines").contains("written-while-watched")
      }
    )
    try await browser.screenshot(to: "\(Self.screenshots)/node.png")

    // Queue a command from the jobs page and see its output.
    try await browser.open(web + "jobs")
    try await browser.type("echo\nqueued-from-the-ui", into: "#argv")
    try await browser.click("#queue-exec")
    #expect(await browser.waitUntil { try await $0.currentURL().contains("/jobs/") })
    #expect(
      await browser.waitUntil(timeout: .seconds(15)) { try await $0.text("#output").contains("queued-from-the-ui") })
    let job = try await browser.currentURL()

    // Invite a viewer from the tokens page; the invite turns into a login
    // token once.
    try await browser.open(web + "tokens")
    try await browser.click("#create-invite")
    // The click returns once the form is sent, not once its answer is shown.
    #expect(await browser.waitUntil { try await !$0.elements("#secret").isEmpty })
    let invite = try await browser.text("#secret")
    #expect(invite.hasPrefix("DHTKN-1-"))
    try await browser.screenshot(to: "\(Self.screenshots)/tokens.png")
    let settings = root.root + "/viewer-client.json"
    let login = try await runCommand(
      Fixtures.deckhand, ["login", "--server", server.endpoint, "--invite", invite, "--settings", settings])
    #expect(login.status == 0 && login.stdout.contains("as viewer"), "\(login)")
    let stored = try JSONValue.parse(Array(try Data(contentsOf: URL(fileURLWithPath: settings))))
    guard case .object(let fields) = stored, case .string(let viewer) = fields["token"] else {
      Issue.record("client.json: \(stored)")
      return
    }
    let again = try await runCommand(
      Fixtures.deckhand, ["login", "--server", server.endpoint, "--invite", invite, "--settings", settings + "2"])
    #expect(again.status != 0 && again.stderr.contains("was used already or revoked"), "\(again)")
    // The viewer reads through the API and changes nothing, told why.
    #expect(try await server.cli(["nodes", "ls"], token: viewer).stdout.contains("web-2"))
    let drain = try await server.cli(["nodes", "drain", "web-2"], token: viewer)
    #expect(drain.status != 0 && drain.stderr.contains("viewer"), "\(drain)")

    // The viewer in the browser: every page reads, none has a button that
    // changes anything (the only form is signing out), tokens are refused.
    try await browser.click("#signout")
    #expect(await browser.waitUntil { try await $0.currentURL().hasSuffix("/signin") })
    try await browser.open(web + "signin")
    try await browser.type(viewer, into: "#token")
    try await browser.click("#signin")
    #expect(await browser.waitUntil { try await $0.currentURL() == web })
    #expect(try await browser.text("#role") == "viewer")
    for page in [web, web + "nodes/web-2", web + "deployments", deployment, web + "jobs", job, web + "events"] {
      try await browser.open(page)
      let source = try await browser.source()
      let forms = source.components(separatedBy: "method=\"post\"").count - 1
      #expect(forms == 1 && source.contains("action=\"/signout\""), "\(page): \(forms) forms")
      #expect(!source.contains("id=\"deploy\"") && !source.contains("<button type=\"submit\" id=\"drain\""), "\(page)")
    }
    try await browser.open(web)
    try await browser.screenshot(to: "\(Self.screenshots)/viewer.png")
    try await browser.open(web + "tokens")
    #expect(try await browser.source().contains("viewer reads and changes nothing"))

    // A viewer's POST with a good CSRF secret is refused as the API refuses it.
    let session = try await signIn(viewer, at: web).session
    let fleet = try await curl(["-H", "Cookie: \(session)", web])
    let csrf = try #require(fleet.body.firstMatch(of: /name="csrf" value="([0-9a-f]+)"/)?.1)
    let refused = try await curl([
      "-H", "Cookie: \(session)", "-X", "POST", "-d", "csrf=\(csrf)", web + "nodes/web-2/drain",
    ])
    #expect(refused.status == 403 && refused.body.contains("viewer reads and changes nothing"), "\(refused.body)")
    let upload = try await curl([
      "-H", "Cookie: \(session)", "-H", "X-Deckhand-CSRF: \(csrf)", "--data-binary", "@\(package)",
      web + "deployments/upload",
    ])
    #expect(upload.status == 403, "\(upload.body)")
    #expect(try await server.cli(["nodes", "ls"]).stdout.contains("active"))
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
    // Every page needs a session, the tokens page an operator's.
    for path in ["deployments", "deployments/x", "jobs", "events", "tokens", "nodes/x/logs/echo"] {
      let page = try await curl([web + path])
      #expect(page.status == 303 || page.status == 403, "\(path): \(page.head)")
    }
    for path in ["tokens", "tokens/invite", "jobs/exec", "deployments/upload"] {
      #expect(try await curl(["-X", "POST", "-d", "csrf=x", web + path]).status == 403, "\(path)")
    }

    // A session made with a token of its own, revoked later.
    let made = try await server.json(["tokens", "create", "--role", "operator"])
    guard case .object(let fields) = made, case .string(let token) = fields["secret"],
      case .object(let record) = fields["token"], case .string(let id) = record["id"]
    else {
      Issue.record("tokens create --json: \(made)")
      return
    }
    let (cookie, session) = try await signIn(token, at: web)
    #expect(cookie.contains("HttpOnly") && cookie.contains("Secure") && cookie.contains("SameSite=Strict"))
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

    // A login token that expires ends its sessions when it does.
    let shortLived = try await server.cli(["tokens", "login", "--ttl", "3s"])
    let brief = shortLived.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
    let briefSession = try await signIn(brief, at: web).session
    #expect(try await curl(["-H", "Cookie: \(briefSession)", web]).status == 200)
    let expired = await eventually(timeout: .seconds(10)) {
      (try? await curl(["-H", "Cookie: \(briefSession)", web]))?.status == 303
    }
    #expect(expired, "an expired token's session still reads pages")
    let late = try await curl(["-d", "token=\(brief)", web + "signin"])
    #expect(late.status == 401 && late.body.contains("expired"), "\(late.body)")
  }
}
