internal import Crypto
internal import DeckhandClient
internal import DeckhandCore
internal import DeckhandRuntime
internal import Foundation
internal import HTTPTypes
internal import Hummingbird
internal import NIOCore

/// The deployments pages: each rollout's progress (done, in progress,
/// failed out of its tasks), its pause reason and failure action; a
/// deployment's tasks; and a new deployment from an uploaded package.
extension WebUI {
  /// The largest package the page takes (the CLI's `artifacts push` has
  /// no such limit).
  static let maxUploadBytes = 256 << 20
  static let csrfHeader = HTTPField.Name("X-Deckhand-CSRF")!

  func addDeploymentRoutes(to router: Router<BasicRequestContext>) {
    router.get("/deployments") { request, _ in
      try await reading(request) { session in Self.html(try await deploymentsPage(session)) }
    }
    router.get("/deployments/:deployment") { request, context in
      let id = try context.parameters.require("deployment")
      return try await reading(request) { session in Self.html(try await deploymentPage(id, session)) }
    }
    router.post("/deployments/upload") { request, context in try await upload(request) }
    router.get("/static/deploy.js") { _, _ in
      Response(
        status: .ok, headers: [.contentType: "text/javascript; charset=utf-8"],
        body: ResponseBody(byteBuffer: ByteBuffer(string: Self.deployScript)))
    }
  }

  func deploymentsPage(_ session: WebSessions.Session) async throws -> String {
    let tasks = try await plane.store.tasks(node: nil, deployment: nil, activeOnly: false)
    let byDeployment = Dictionary(grouping: tasks, by: \.deploymentId)
    let now = nowMs()
    let rows = try await plane.store.deployments().sorted { $0.createdMs > $1.createdMs }.map { record in
      [
        "<a href=\"/deployments/\(WebPage.escape(Self.pathEscaped(record.id)))\">\(WebPage.escape(record.id))</a>",
        WebPage.escape("\(record.plugin)@\(record.version)"),
        Self.stateCell(record.state),
        Self.progress(byDeployment[record.id] ?? []),
        WebPage.escape(record.failureAction.rawValue),
        WebPage.escape(Self.labels(record.selector)),
        WebPage.age(record.createdMs, nowMs: now),
      ]
    }
    return WebPage.layout(
      "Deployments", session: session,
      body: WebPage.table(["Deployment", "Plugin", "State", "Progress", "On failure", "Selector", "Created"], rows)
        + uploadForm(session))
  }

  func deploymentPage(_ id: String, _ session: WebSessions.Session) async throws -> String {
    guard let record = try await plane.store.deployment(id: id) else {
      throw DeckhandError(.notFound, "no deployment \(id); the deployments page lists them")
    }
    let tasks = try await plane.store.tasks(node: nil, deployment: id, activeOnly: false)
    let names = Dictionary(
      try await plane.store.nodes().map { ($0.id, $0.name) }, uniquingKeysWith: { first, _ in first })
    let now = nowMs()
    let rows = tasks.sorted { $0.updatedMs > $1.updatedMs }.map { task in
      let node = names[task.nodeId] ?? task.nodeId
      return [
        "<a href=\"/nodes/\(WebPage.escape(Self.pathEscaped(node)))\">\(WebPage.escape(node))</a>",
        task.state.displayName, task.active ? "yes" : "no", WebPage.escape(task.message),
        WebPage.age(task.updatedMs, nowMs: now),
      ]
    }
    return WebPage.layout(
      "Deployment \(id)", session: session,
      body: """
        <p>\(WebPage.escape("\(record.plugin)@\(record.version)")) · state \(Self.stateCell(record.state))
        · progress <span id="progress">\(Self.progress(tasks))</span></p>
        <p>On failure: \(WebPage.escape(record.failureAction.rawValue)) · failures allowed \(record.maxFailures)
        · parallelism \(record.parallelism == 0 ? "all at once" : "\(record.parallelism)")
        · selector \(WebPage.escape(Self.labels(record.selector).isEmpty ? "every node" : Self.labels(record.selector)))
        \(record.previousId.isEmpty ? "" : "· replaced <a href=\"/deployments/\(WebPage.escape(Self.pathEscaped(record.previousId)))\">\(WebPage.escape(record.previousId))</a>")</p>
        <h2>Tasks</h2>
        \(WebPage.table(["Node", "State", "Current", "Message", "Updated"], rows))
        """)
  }

  /// "3 done, 1 in progress, 0 failed of 4": over the deployment's tasks
  /// that are current (not retired by a later one).
  static func progress(_ tasks: [TaskRecord]) -> String {
    let current = tasks.filter(\.active)
    let done = current.filter { $0.state == .running }.count
    let failed = current.filter { $0.state == .failed }.count
    let moving = current.filter { $0.state.isInProgress }.count
    return "\(done) done, \(moving) in progress, \(failed) failed of \(current.count)"
  }

  /// A deployment's state; a pause or rollback with its reason.
  static func stateCell(_ state: DeploymentState) -> String {
    switch state {
    case .paused(let reason):
      "<span class=\"error\">paused</span>: <span class=\"reason\">\(WebPage.escape(reason))</span>"
    case .rolledBack(let reason):
      "<span class=\"error\">rolled back</span>: <span class=\"reason\">\(WebPage.escape(reason))</span>"
    default:
      WebPage.escape(state.text)
    }
  }

  func uploadForm(_ session: WebSessions.Session) -> String {
    guard session.mayOperate else { return "" }
    return """
      <h2>Deploy a package</h2>
      <form id="deploy" data-csrf="\(WebPage.escape(session.csrf))">
      <p><label>Package (.tar.gz with plugin.json) <input type="file" name="package" id="package" accept=".gz,.tgz" required></label></p>
      <p><label>Selector key=value (empty: every node) <input name="selector" id="selector"></label>
      <label>Failures allowed <input name="max_failures" id="max-failures" value="0" size="3"></label>
      <label>Parallelism (0: all) <input name="parallelism" id="parallelism" value="1" size="3"></label>
      <label>On failure <select name="failure_action" id="failure-action"><option>pause</option><option>rollback</option></select></label></p>
      <button type="submit" id="deploy-submit">Upload and deploy</button> <span id="deploy-state" class="error"></span></form>
      <noscript><p>Uploading needs JavaScript; <code>deckhand artifacts push</code> and <code>deckhand deploy</code> do the same.</p></noscript>
      <script src="/static/deploy.js" defer></script>
      """
  }

  /// `POST /deployments/upload?selector=…`: the body is the package
  /// itself, the CSRF secret in `X-Deckhand-CSRF` (sent by
  /// `/static/deploy.js`). Stored as `PushArtifact` stores one, then
  /// deployed as `CreateDeployment` does; answers the new deployment's
  /// path as text, or the error with a 4xx status.
  func upload(_ request: Request) async throws -> Response {
    guard let session = await session(request) else { return Self.refused("sign in first") }
    if let site = request.headers[Self.secFetchSite], site != "same-origin" && site != "none" {
      return Self.refused("a request from another site")
    }
    guard WebSessions.csrfMatches(request.headers[Self.csrfHeader], session) else {
      return Self.refused("the request's CSRF secret is missing or wrong")
    }
    do {
      try ControlPlane.check(session.principal, for: .operate)
      let query = request.uri.queryParameters
      let selector = Self.labelFilter(query.get("selector") ?? "")
      guard let action = DeploymentRecord.FailureAction(rawValue: query.get("failure_action") ?? "pause")
      else { throw DeckhandError(.configurationInvalid, "on failure: expected pause or rollback") }
      guard let maxFailures = Int(query.get("max_failures") ?? "0"), maxFailures >= 0,
        let parallelism = Int(query.get("parallelism") ?? "1"), parallelism >= 0
      else {
        throw DeckhandError(.configurationInvalid, "failures allowed and parallelism are whole numbers, 0 or more")
      }
      let artifact = try await receive(request.body)
      let record = try await plane.deploy(
        plugin: artifact.name, version: artifact.version, selector: selector, configJSON: "",
        maxFailures: maxFailures,
        rollout: ControlPlane.Rollout(parallelism: parallelism, delayMs: 0, failureAction: action, monitorMs: 0))
      return Response(
        status: .ok, headers: [.contentType: "text/plain; charset=utf-8"],
        body: ResponseBody(byteBuffer: ByteBuffer(string: "/deployments/\(Self.pathEscaped(record.id))")))
    } catch let error as DeckhandError {
      return Response(
        status: error.code == .permissionDenied ? .forbidden : .badRequest,
        headers: [.contentType: "text/plain; charset=utf-8"],
        body: ResponseBody(byteBuffer: ByteBuffer(string: error.message)))
    }
  }

  /// Writes an uploaded package to the artifacts folder, hashing it on the
  /// way, and stores it as an artifact (its plugin.json names it).
  func receive(_ body: RequestBody) async throws -> ArtifactRecord {
    let temporary = "\(plane.artifactsDirectory)/upload-\(ControlPlane.randomText(bytes: 8))"
    guard FileManager.default.createFile(atPath: temporary, contents: nil),
      let handle = FileHandle(forWritingAtPath: temporary)
    else {
      throw DeckhandError(
        .internalError, "cannot write \(temporary) to take the upload; check the server's state directory")
    }
    defer { try? FileManager.default.removeItem(atPath: temporary) }
    var hasher = SHA256()
    var size = 0
    do {
      for try await buffer in body {
        size += buffer.readableBytes
        guard size <= Self.maxUploadBytes else {
          throw DeckhandError(
            .configurationInvalid,
            "the package is larger than \(Self.maxUploadBytes >> 20) MiB; use deckhand artifacts push")
        }
        let data = Data(buffer.readableBytesView)
        hasher.update(data: data)
        try await BlockingWork.run { try handle.write(contentsOf: data) }
      }
      try handle.close()
    } catch let error as DeckhandError {
      try? handle.close()
      throw error
    } catch {
      try? handle.close()
      throw StorageFailure.describe(error, directory: plane.artifactsDirectory)
    }
    let manifest = try await BlockingWork.run { try ArtifactPackage.manifest(path: temporary) }
    return try await plane.addArtifact(
      at: temporary, digest: HexText.encode(hasher.finalize()), size: Int64(size), name: manifest.name,
      version: manifest.version, platform: ArtifactPackage.platform)
  }

  /// Sends the chosen package as the request body, then opens the new
  /// deployment's page (or shows why not).
  static let deployScript = """
    (function () {
      var form = document.getElementById("deploy");
      if (!form || !window.fetch) return;
      form.addEventListener("submit", function (event) {
        event.preventDefault();
        var state = document.getElementById("deploy-state");
        var file = document.getElementById("package").files[0];
        if (!file) { state.textContent = "choose a package"; return; }
        var query = new URLSearchParams();
        ["selector", "max_failures", "parallelism", "failure_action"].forEach(function (name) {
          query.set(name, form.elements[name].value);
        });
        state.textContent = "uploading";
        fetch("/deployments/upload?" + query.toString(), {
          method: "POST", body: file, credentials: "same-origin",
          headers: { "X-Deckhand-CSRF": form.dataset.csrf, "Content-Type": "application/octet-stream" }
        }).then(function (response) {
          return response.text().then(function (text) {
            if (response.ok) { window.location = text; } else { state.textContent = text; }
          });
        }, function (error) { state.textContent = String(error); });
      });
    })();
    """
}
