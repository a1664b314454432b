internal import DeckhandCore
internal import Foundation
internal import Hummingbird

/// The tokens page, for operators only: list, create, invite, revoke.
/// A new token or invite is shown once, on the page that made it.
extension WebUI {
  func addTokenRoutes(to router: Router<BasicRequestContext>) {
    router.get("/tokens") { request, _ in
      try await reading(request, needs: .operate) { session in Self.html(try await tokensPage(session)) }
    }
    router.post("/tokens") { request, context in
      try await changing(request, context) { session, form in
        let role = try Self.role(form["role"], allowed: [.worker, .operator, .viewer])
        let made = try await plane.createToken(
          role: role, ttl: try Self.ttl(form["ttl"]), description: form["description"] ?? "")
        return Self.html(Self.madePage("Token made", made, session: session))
      }
    }
    router.post("/tokens/invite") { request, context in
      try await changing(request, context) { session, form in
        let role = try Self.role(form["role"], allowed: [.operator, .viewer])
        let made = try await plane.createInvite(
          role: role, ttl: try Self.ttl(form["ttl"]), description: form["description"] ?? "")
        return Self.html(Self.madePage("Invite made", made, session: session))
      }
    }
    router.post("/tokens/:token/revoke") { request, context in
      let id = try context.parameters.require("token")
      return try await changing(request, context) { _, _ in
        _ = try await plane.revokeToken(id: id)
        return .redirect(to: "/tokens", type: .normal)
      }
    }
  }

  func tokensPage(_ session: WebSessions.Session) async throws -> String {
    let now = nowMs()
    // Web sessions that ended (signed out, expired) are left out: one is
    // made per sign-in. `deckhand tokens list` shows them all.
    let tokens = try await plane.store.tokens()
      .filter { $0.role.sessionOf == nil || $0.refusal(atMs: now) == nil }
      .sorted { $0.createdMs > $1.createdMs }
    let rows = tokens.map { token in
      let state = token.refusal(atMs: now) == nil ? "valid" : token.revoked ? "revoked" : "expired"
      return [
        "<span class=\"token-id\">\(WebPage.escape(token.id))</span>", WebPage.escape(token.role.rawValue),
        WebPage.age(token.createdMs, nowMs: now),
        token.expiresMs == 0 ? "never" : WebPage.escape(Self.time(token.expiresMs)),
        state, WebPage.escape(token.description),
        state == "valid"
          ? WebPage.button(
            "Revoke", action: "/tokens/\(Self.pathEscaped(token.id))/revoke", session: session, id: "revoke-\(token.id)"
          )
          : "",
      ]
    }
    let create = WebPage.form(
      action: "/tokens", session: session, id: "create-token",
      fields: """
        <h2>Make a token</h2><p><label>Role <select name="role" id="token-role"><option>viewer</option><option>operator</option><option>worker</option></select></label>
        <label>Valid for (e.g. 8h; empty: until revoked) <input name="ttl" size="6"></label>
        <label>Description <input name="description"></label></p>
        """, submit: "Make token", inline: false)
    let invite = WebPage.form(
      action: "/tokens/invite", session: session, id: "create-invite",
      fields: """
        <h2>Invite someone</h2><p>An invite is good once, for <code>deckhand login --server ADDRESS --invite INVITE</code>.</p>
        <p><label>Role <select name="role" id="invite-role"><option>viewer</option><option>operator</option></select></label>
        <label>Valid for (default 24h) <input name="ttl" size="6"></label>
        <label>Description <input name="description"></label></p>
        """, submit: "Make invite", inline: false)
    return WebPage.layout(
      "Tokens", session: session,
      body: WebPage.table(["ID", "Role", "Made", "Expires", "State", "Description", ""], rows) + create + invite)
  }

  /// The page that shows a new token's text, once.
  static func madePage(_ title: String, _ made: (TokenRecord, String), session: WebSessions.Session) -> String {
    WebPage.layout(
      title, session: session,
      body: """
        <p>\(WebPage.escape(made.0.role.rawValue)) token \(WebPage.escape(made.0.id)): copy it now, it is not shown again.</p>
        <p><code class="secret" id="secret">\(WebPage.escape(made.1))</code></p>
        <p><a href="/tokens">Back to tokens</a></p>
        """)
  }

  static func role(_ text: String?, allowed: [TokenRole]) throws -> TokenRole {
    guard let text, let role = TokenRole(rawValue: text), allowed.contains(role) else {
      throw DeckhandError(
        .configurationInvalid, "role \(text ?? ""): expected one of \(allowed.map(\.rawValue).joined(separator: ", "))")
    }
    return role
  }

  static func ttl(_ text: String?) throws -> Duration? {
    let text = (text ?? "").trimmingCharacters(in: .whitespaces)
    guard !text.isEmpty else { return nil }
    guard let duration = DurationText.parse(text), duration > .zero else {
      throw DeckhandError(.configurationInvalid, "\(text): expected a duration such as 8h or 30m")
    }
    return duration
  }

  static func time(_ ms: Int64) -> String {
    Date(timeIntervalSince1970: Double(ms) / 1000)
      .formatted(.iso8601.year().month().day().time(includingFractionalSeconds: false))
  }
}
