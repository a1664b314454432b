internal import Foundation

/// HTML for the web UI's pages, written in Swift (no template engine for
/// a handful of pages): every value from the fleet passes through
/// ``escape(_:)``.
enum WebPage {
  /// `text` safe inside HTML text and quoted attributes.
  static func escape(_ text: String) -> String {
    var out = ""
    out.reserveCapacity(text.utf8.count)
    for character in text {
      switch character {
      case "&": out += "&amp;"
      case "<": out += "&lt;"
      case ">": out += "&gt;"
      case "\"": out += "&quot;"
      case "'": out += "&#39;"
      default: out.append(character)
      }
    }
    return out
  }

  /// A whole page: the navigation (when signed in), the title and `body`.
  /// Tokens are in the navigation for operators only.
  static func layout(_ title: String, session: WebSessions.Session?, body: String) -> String {
    let navigation =
      session.map { session in
        let tokens = session.mayOperate ? "<a href=\"/tokens\">Tokens</a>" : ""
        let role = session.mayOperate ? "" : "<span class=\"role\" id=\"role\">viewer</span>"
        return """
          <nav><a href="/">Fleet</a><a href="/deployments">Deployments</a><a href="/jobs">Jobs</a><a href="/events">Events</a>\(tokens)\(role)
          <form method="post" action="/signout" class="inline"><input type="hidden" name="csrf" value="\(escape(session.csrf))"><button type="submit" id="signout">Sign out</button></form></nav>
          """
      } ?? ""
    return """
      <!doctype html>
      <html lang="en"><head><meta charset="utf-8"><title>\(escape(title)) · Deckhand</title>
      <meta name="viewport" content="width=device-width, initial-scale=1">
      <style>\(style)</style></head>
      <body>\(navigation)<main><h1>\(escape(title))</h1>
      \(body)
      </main></body></html>
      """
  }

  /// A form that POSTs `action` with the session's CSRF secret: one
  /// button. Empty for a session that may not change anything (a viewer
  /// sees no button that would be refused).
  static func button(_ label: String, action: String, session: WebSessions.Session, id: String) -> String {
    form(action: action, session: session, id: id, fields: "", submit: label)
  }

  /// A form that POSTs `action` with `fields` (HTML inputs) and the
  /// session's CSRF secret; empty for a session that may not change
  /// anything.
  static func form(
    action: String, session: WebSessions.Session, id: String, fields: String, submit: String, inline: Bool = true
  ) -> String {
    guard session.mayOperate else { return "" }
    return """
      <form method="post" action="\(escape(action))"\(inline ? " class=\"inline\"" : "")><input type="hidden" name="csrf" value="\(escape(session.csrf))">\(fields)<button type="submit" id="\(escape(id))">\(escape(submit))</button></form>
      """
  }

  static func table(_ header: [String], _ rows: [[String]]) -> String {
    let head = header.map { "<th>\(escape($0))</th>" }.joined()
    let body = rows.map { "<tr>" + $0.map { "<td>\($0)</td>" }.joined() + "</tr>" }.joined(separator: "\n")
    return "<table><thead><tr>\(head)</tr></thead><tbody>\n\(body)\n</tbody></table>"
  }

  /// "12s ago", "3m ago", … for a time in milliseconds since 1970.
  static func age(_ ms: Int64, nowMs: Int64) -> String {
    guard ms > 0 else { return "-" }
    let seconds = max(0, (nowMs - ms) / 1000)
    if seconds < 120 { return "\(seconds)s ago" }
    if seconds < 7200 { return "\(seconds / 60)m ago" }
    return "\(seconds / 3600)h ago"
  }

  private static let style = """
    body{font-family:system-ui,sans-serif;margin:0;color:#1b1f24}nav{background:#1b1f24;padding:.6em 1em}
    nav a{color:#fff;margin-right:1em;text-decoration:none}main{padding:1em 2em}
    table{border-collapse:collapse;margin:1em 0}th,td{border-bottom:1px solid #ddd;padding:.35em .8em;text-align:left}
    .inline{display:inline}.READY{color:#1a7f37}.DOWN{color:#cf222e}.error{color:#cf222e}
    button{cursor:pointer}input[type=password]{width:32em}nav .role{color:#f0b400;margin-right:1em}
    label{margin-right:1em}.secret{font-family:monospace;background:#fff8c5;padding:.3em}
    """
}
