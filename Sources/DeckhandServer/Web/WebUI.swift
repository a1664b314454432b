internal import DeckhandCore
internal import Foundation
internal import HTTPTypes
internal import Hummingbird
internal import HummingbirdTLS
package import Logging
internal import NIOCore
internal import NIOSSL

/// The web UI (`--http-listen`): server-rendered pages over HTTPS with the
/// server's own certificate, signed in with an operator token for a
/// session cookie. Every change goes through the same ``ControlPlane``
/// calls as the CLI's.
///
/// Pages work without JavaScript. State-changing requests are POSTs that
/// carry the session's CSRF secret, from this origin only.
package struct WebUI: Sendable {
  package static let cookieName = "deckhand_session"
  static let secFetchSite = HTTPField.Name("Sec-Fetch-Site")!
  static let referrerPolicy = HTTPField.Name("Referrer-Policy")!
  /// The most a form may send.
  static let maxFormBytes = 16 * 1024

  let plane: ControlPlane
  let jobs: JobQueue
  let logs: LogRelay
  let sessions: WebSessions
  let logger: Logger

  package init(
    plane: ControlPlane, jobs: JobQueue, logs: LogRelay,
    sessionLifetime: Duration = WebSessions.defaultLifetime, logger: Logger
  ) {
    self.plane = plane
    self.jobs = jobs
    self.logs = logs
    self.sessions = WebSessions(plane: plane, lifetime: sessionLifetime)
    self.logger = logger
  }

  /// Serves on `host:port` with `certificateChainPEM`/`privateKeyPEM` until
  /// cancelled; `bound` is told the port once listening.
  package func run(
    host: String, port: Int, certificateChainPEM: String, privateKeyPEM: String,
    bound: @escaping @Sendable (Int) -> Void
  ) async throws {
    let tls = try GatedListener.serverTLS(certificateChainPEM: certificateChainPEM, privateKeyPEM: privateKeyPEM)
    let app = Application(
      router: router(),
      server: try .tls(.http1(), tlsConfiguration: tls),
      configuration: .init(address: .hostname(host, port: port), serverName: nil),
      onServerRunning: { channel in bound(channel.localAddress?.port ?? 0) },
      logger: logger)
    try await app.run()
  }

  func router() -> Router<BasicRequestContext> {
    let router = Router(context: BasicRequestContext.self)
    router.add(middleware: SecurityHeaders())
    router.get("/signin") { _, _ in
      Self.html(WebPage.layout("Sign in", session: nil, body: Self.signInForm(error: nil)))
    }
    router.post("/signin") { request, context in try await signIn(request, context) }
    router.post("/signout") { request, context in
      try await changing(request, context, needs: .read) { session, _ in
        await sessions.close(session)
        var response = Response.redirect(to: "/signin", type: .normal)
        response.setCookie(Self.cookie("", maxAge: 0))
        return response
      }
    }
    addFleetRoutes(to: router)
    addJobRoutes(to: router)
    addEventRoutes(to: router)
    addDeploymentRoutes(to: router)
    addTokenRoutes(to: router)
    return router
  }

  // MARK: Sessions

  /// The session of `request`, if it is live and the token that signed
  /// in still good; nil otherwise (unknown, signed out, revoked, expired).
  func session(_ request: Request) async -> WebSessions.Session? {
    await sessions.session(request.cookies[Self.cookieName]?.value)
  }

  /// A page that reads: without a session, to the sign-in page; one only
  /// operators read (`needs: .operate`) is refused to a viewer.
  func reading(
    _ request: Request, needs access: Principal.Access = .read,
    _ body: (WebSessions.Session) async throws -> Response
  ) async throws -> Response {
    guard let session = await session(request) else { return .redirect(to: "/signin", type: .normal) }
    return try await answer {
      try ControlPlane.check(session.principal, for: access)
      return try await body(session)
    }
  }

  /// A request that changes something: refused (403) without a session,
  /// from another origin, without the session's CSRF secret, or by a
  /// caller whose role may not (``ControlPlane/check(_:for:)``, as in the
  /// gRPC API). `body` gets the form's fields.
  func changing(
    _ request: Request, _ context: BasicRequestContext, needs access: Principal.Access = .operate,
    maxBytes: Int = WebUI.maxFormBytes,
    _ body: (WebSessions.Session, [String: String]) async throws -> Response
  ) async throws -> Response {
    guard let session = await session(request) else {
      return Self.refused("sign in first")
    }
    if let site = request.headers[Self.secFetchSite], site != "same-origin" && site != "none" {
      return Self.refused("a request from another site")
    }
    var request = request
    let form = Self.form(String(buffer: try await request.collectBody(upTo: maxBytes)))
    guard WebSessions.csrfMatches(form["csrf"], session) else {
      return Self.refused("the form's CSRF secret is missing or wrong")
    }
    return try await answer {
      try ControlPlane.check(session.principal, for: access)
      return try await body(session, form)
    }
  }

  /// `body`'s page, or the error it threw as a page saying why.
  func answer(_ body: () async throws -> Response) async throws -> Response {
    do {
      return try await body()
    } catch let error as DeckhandError {
      let status: HTTPResponse.Status =
        switch error.code {
        case .notFound: .notFound
        case .permissionDenied: .forbidden
        default: .badRequest
        }
      var response = Self.html(
        WebPage.layout("Error", session: nil, body: "<p class=\"error\">\(WebPage.escape(error.message))</p>"))
      response.status = status
      return response
    }
  }

  func signIn(_ request: Request, _ context: BasicRequestContext) async throws -> Response {
    var request = request
    let form = Self.form(String(buffer: try await request.collectBody(upTo: Self.maxFormBytes)))
    let token = (form["token"] ?? "").trimmingCharacters(in: .whitespacesAndNewlines)
    let cookie: String
    do {
      cookie = try await sessions.open(token: token)
    } catch let error as DeckhandError {
      var response = Self.html(WebPage.layout("Sign in", session: nil, body: Self.signInForm(error: error.message)))
      response.status = .unauthorized
      return response
    }
    var response = Response.redirect(to: "/", type: .normal)
    response.setCookie(Self.cookie(cookie, maxAge: Int(sessions.lifetime.components.seconds)))
    return response
  }

  static func signInForm(error: String?) -> String {
    let message = error.map { "<p class=\"error\" id=\"error\">\(WebPage.escape($0))</p>" } ?? ""
    return """
      \(message)<form method="post" action="/signin">
      <label>Login token (operator or viewer) <input type="password" name="token" id="token" autocomplete="off" required></label>
      <button type="submit" id="signin">Sign in</button></form>
      """
  }

  // MARK: HTTP helpers

  static func html(_ page: String) -> Response {
    Response(
      status: .ok, headers: [.contentType: "text/html; charset=utf-8"],
      body: ResponseBody(byteBuffer: ByteBuffer(string: page)))
  }

  static func refused(_ reason: String) -> Response {
    var response = html(
      WebPage.layout("Refused", session: nil, body: "<p class=\"error\">\(WebPage.escape(reason))</p>"))
    response.status = .forbidden
    return response
  }

  /// A `text/event-stream` answer whose events `produce` writes (each a
  /// whole `event:`/`data:` block); it ends when `produce` returns or
  /// throws (the browser went away, the server is shutting down).
  static func eventStream(_ produce: @escaping @Sendable (_ write: (String) async throws -> Void) async throws -> Void)
    -> Response
  {
    Response(
      status: .ok, headers: [.contentType: "text/event-stream", .cacheControl: "no-store"],
      body: ResponseBody { writer in
        try? await produce { event in try await writer.write(ByteBuffer(string: event)) }
        try await writer.finish(nil)
      })
  }

  /// The session cookie: HttpOnly, Secure, SameSite=Strict, for the whole
  /// site, for `maxAge` seconds (0: delete it).
  static func cookie(_ value: String, maxAge: Int) -> Cookie {
    Cookie(
      name: cookieName, value: value, maxAge: maxAge, path: "/", secure: true, httpOnly: true, sameSite: .strict)
  }

  /// An `application/x-www-form-urlencoded` body's fields (the first of
  /// each name).
  static func form(_ body: String) -> [String: String] {
    var fields: [String: String] = [:]
    for pair in body.split(separator: "&") {
      let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
      func decoded(_ text: Substring) -> String {
        text.replacingOccurrences(of: "+", with: " ").removingPercentEncoding ?? ""
      }
      let name = decoded(parts[0])
      if fields[name] == nil { fields[name] = parts.count > 1 ? decoded(parts[1]) : "" }
    }
    return fields
  }

  static func pathEscaped(_ text: String) -> String {
    text.addingPercentEncoding(withAllowedCharacters: .urlPathAllowed.subtracting(CharacterSet(charactersIn: "/")))
      ?? text
  }
}

/// Headers every answer carries: no framing, no sniffing, no referrer, and
/// nothing loaded from elsewhere.
struct SecurityHeaders: RouterMiddleware {
  func handle(
    _ request: Request, context: BasicRequestContext,
    next: (Request, BasicRequestContext) async throws -> Response
  ) async throws -> Response {
    var response = try await next(request, context)
    response.headers[.contentSecurityPolicy] =
      "default-src 'self'; style-src 'self' 'unsafe-inline'; frame-ancestors 'none'; form-action 'self'"
    response.headers[.xContentTypeOptions] = "nosniff"
    response.headers[WebUI.referrerPolicy] = "no-referrer"
    response.headers[.cacheControl] = "no-store"
    return response
  }
}
