internal import DeckhandCore
internal import Foundation
internal import Hummingbird
internal import NIOCore

/// The events page: the fleet's events of the last hour, then each new one
/// as it happens (server-sent events read by `/static/events.js`).
extension WebUI {
  func addEventRoutes(to router: Router<BasicRequestContext>) {
    router.get("/events") { request, _ in
      try await reading(request) { session in Self.html(try await eventsPage(session)) }
    }
    router.get("/events/stream") { request, _ in
      guard await session(request) != nil else { return Self.refused("sign in first") }
      let after =
        request.headers[Self.lastEventID].flatMap { Int64($0) }
        ?? request.uri.queryParameters.get("after").flatMap { Int64($0) } ?? 0
      let log = plane.events
      return Self.eventStream { write in
        try await log.follow(after: after, node: nil, plugin: nil, limit: 1_000, follow: true) { event in
          let row = JSONValue.array(Self.eventCells(event).map(JSONValue.string)).serialized() ?? []
          try await write("id: \(event.sequence)\nevent: fleet\ndata: \(String(decoding: row, as: UTF8.self))\n\n")
        }
      }
    }
    router.get("/static/events.js") { _, _ in
      Response(
        status: .ok, headers: [.contentType: "text/javascript; charset=utf-8"],
        body: ResponseBody(byteBuffer: ByteBuffer(string: Self.eventsScript)))
    }
  }

  func eventsPage(_ session: WebSessions.Session) async throws -> String {
    let sinceMs = nowMs() - 3_600_000
    var rows: [[String]] = []
    var last: Int64 = 0
    try await plane.events.follow(sinceMs: sinceMs, node: nil, plugin: nil, limit: 1_000, follow: false) { event in
      rows.append(Self.eventCells(event).map(WebPage.escape))
      last = max(last, event.sequence)
    }
    let table = WebPage.table(["Time (UTC)", "Event", "Node", "Plugin", "Subject", "Message"], rows)
      .replacingOccurrences(of: "<tbody>", with: "<tbody id=\"events\" data-events=\"/events/stream?after=\(last)\">")
    return WebPage.layout(
      "Events", session: session,
      body: "<p>The last hour, oldest first; new events appear as they happen.</p>" + table
        + "<script src=\"/static/events.js\" defer></script>")
  }

  /// An event's cells, as text.
  static func eventCells(_ event: FleetEvent) -> [String] {
    let time = Date(timeIntervalSince1970: Double(event.atMs) / 1000)
      .formatted(.iso8601.year().month().day().time(includingFractionalSeconds: false))
    return [time, event.kind.rawValue, event.nodeName, event.plugin, event.subject, event.message]
  }

  static let eventsScript = """
    (function () {
      var body = document.getElementById("events");
      if (!body || !body.dataset.events || !window.EventSource) return;
      var source = new EventSource(body.dataset.events);
      source.addEventListener("fleet", function (event) {
        var row = document.createElement("tr");
        JSON.parse(event.data).forEach(function (text) {
          var cell = document.createElement("td");
          cell.textContent = text;
          row.appendChild(cell);
        });
        body.appendChild(row);
      });
    })();
    """
}
