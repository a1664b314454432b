internal import DeckhandCore
internal import DeckhandProtocol
internal import Foundation
internal import Hummingbird
internal import NIOCore

/// The fleet page (nodes, filtered by label) and a node's page: its
/// plugins with what they use, its tasks, its recent events, each plugin's
/// log following live, and Drain/Activate.
extension WebUI {
  /// Nodes whose usage the fleet page looks up (one read each); past it
  /// the columns say "-".
  static let maxUsageLookups = 500

  func addFleetRoutes(to router: Router<BasicRequestContext>) {
    router.get("/") { request, _ in
      let label = request.uri.queryParameters.get("label") ?? ""
      return try await reading(request) { session in Self.html(try await fleetPage(label: label, session)) }
    }
    router.get("/nodes/:node") { request, context in
      let key = try context.parameters.require("node")
      return try await reading(request) { session in Self.html(try await nodePage(key, session)) }
    }
    router.post("/nodes/:node/drain") { request, context in
      let key = try context.parameters.require("node")
      return try await changing(request, context) { _, _ in
        let node = try await plane.setNodeAvailability(key, .drain)
        return .redirect(to: "/nodes/\(Self.pathEscaped(node.name))", type: .normal)
      }
    }
    router.post("/nodes/:node/activate") { request, context in
      let key = try context.parameters.require("node")
      return try await changing(request, context) { _, _ in
        let node = try await plane.setNodeAvailability(key, .active)
        return .redirect(to: "/nodes/\(Self.pathEscaped(node.name))", type: .normal)
      }
    }
    router.get("/nodes/:node/logs/:plugin") { request, context in
      let key = try context.parameters.require("node")
      let plugin = try context.parameters.require("plugin")
      guard let session = await session(request) else { return Self.refused("sign in first") }
      return try await answer {
        try ControlPlane.check(session.principal, for: .read)
        return try await logEvents(node: key, plugin: plugin)
      }
    }
    router.get("/static/logs.js") { _, _ in
      Response(
        status: .ok, headers: [.contentType: "text/javascript; charset=utf-8"],
        body: ResponseBody(byteBuffer: ByteBuffer(string: Self.logsScript)))
    }
  }

  func fleetPage(label: String, _ session: WebSessions.Session) async throws -> String {
    let filter = Self.labelFilter(label)
    let all = try await plane.store.nodes().sorted { $0.name < $1.name }
    let nodes = all.filter { node in filter.allSatisfy { node.labels[$0.key] == $0.value } }
    let now = nowMs()
    var counts: [String: Int] = [:]
    for node in nodes { counts["\(node.status.rawValue) \(node.availability.rawValue)", default: 0] += 1 }
    let summary = counts.sorted { $0.key < $1.key }.map { "\(WebPage.escape($0.key)): \($0.value)" }
      .joined(separator: " · ")
    let tasks = Dictionary(
      grouping: try await plane.store.tasks(node: nil, deployment: nil, activeOnly: true), by: \.nodeId)
    var rows: [[String]] = []
    for (index, node) in nodes.enumerated() {
      let usage = index < Self.maxUsageLookups ? try await plane.pluginUsage(node.id)?.plugins : nil
      let states = Self.pluginStates(node, tasks: tasks[node.id] ?? [], usage: usage ?? [])
      rows.append([
        "<a href=\"/nodes/\(WebPage.escape(Self.pathEscaped(node.name)))\">\(WebPage.escape(node.name))</a>",
        "<span class=\"\(WebPage.escape(node.status.rawValue))\">\(WebPage.escape(node.status.rawValue))</span>",
        WebPage.escape(node.availability.rawValue),
        WebPage.escape(Self.labels(node.labels)),
        WebPage.escape(states.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", ")),
        usage.map { Self.cpu($0.reduce(0) { $0 + $1.cpuSeconds }) } ?? "-",
        usage.map { ByteText.format(Int64($0.reduce(0) { $0 + $1.residentBytes })) } ?? "-",
        WebPage.age(node.lastHeartbeatMs, nowMs: now),
      ])
    }
    let form = """
      <form method="get" action="/"><label>Label key=value <input name="label" id="label-filter" value="\(WebPage.escape(label))"></label><button type="submit" id="filter">Filter</button></form>
      """
    let shown =
      filter.isEmpty ? "\(nodes.count) nodes" : "\(nodes.count) of \(all.count) nodes match \(WebPage.escape(label))"
    return WebPage.layout(
      "Fleet", session: session,
      body: form + "<p id=\"summary\">\(shown)\(summary.isEmpty ? "" : " · " + summary)</p>"
        + WebPage.table(
          ["Node", "Status", "Availability", "Labels", "Plugins", "Plugins' CPU", "Plugins' memory", "Last heartbeat"],
          rows))
  }

  func nodePage(_ key: String, _ session: WebSessions.Session) async throws -> String {
    let node = try await plane.findNode(key)
    let now = nowMs()
    let path = "/nodes/\(Self.pathEscaped(node.name))"
    let action =
      node.availability == .active
      ? WebPage.button("Drain", action: "\(path)/drain", session: session, id: "drain")
      : WebPage.button("Activate", action: "\(path)/activate", session: session, id: "activate")
    let usage = try await plane.pluginUsage(node.id)
    let used = Dictionary((usage?.plugins ?? []).map { ($0.plugin, $0) }, uniquingKeysWith: { first, _ in first })
    let current = try await plane.store.tasks(node: node.id, deployment: nil, activeOnly: true)
    let states = Self.pluginStates(node, tasks: current, usage: usage?.plugins ?? [])
    let plugins = states.sorted { $0.key < $1.key }.map { name, state in
      [
        WebPage.escape(name), WebPage.escape(state),
        used[name].map { Self.cpu($0.cpuSeconds) } ?? "-",
        used[name].map { ByteText.format(Int64($0.residentBytes)) } ?? "-",
        "<a href=\"\(WebPage.escape(path))?log=\(WebPage.escape(Self.pathEscaped(name)))#log\">log</a>",
      ]
    }
    let tasks = current.map { task in
      [
        WebPage.escape(task.plugin), WebPage.escape(task.version), task.state.displayName,
        "<a href=\"/deployments/\(WebPage.escape(Self.pathEscaped(task.deploymentId)))\">\(WebPage.escape(task.deploymentId))</a>",
        WebPage.escape(task.message), WebPage.age(task.updatedMs, nowMs: now),
      ]
    }
    var events: [[String]] = []
    try await plane.events.follow(sinceMs: now - 3_600_000, node: node.id, plugin: nil, limit: 100, follow: false) {
      event in
      events.append(Self.eventCells(event).map(WebPage.escape))
    }
    return WebPage.layout(
      "Node \(node.name)", session: session,
      body: """
        <p>Status <span id="status" class="\(WebPage.escape(node.status.rawValue))">\(WebPage.escape(node.status.rawValue))</span>
        · availability <span id="availability">\(WebPage.escape(node.availability.rawValue))</span>
        · last heartbeat \(WebPage.age(node.lastHeartbeatMs, nowMs: now)) · \(action)</p>
        <p>Labels: \(WebPage.escape(Self.labels(node.labels))) · platform \(WebPage.escape(node.platform)) · agent \(WebPage.escape(node.agentVersion))</p>
        <h2>Plugins</h2>
        \(WebPage.table(["Plugin", "State", "CPU", "Memory", "Log"], plugins))
        <h2>Tasks</h2>
        \(WebPage.table(["Plugin", "Version", "State", "Deployment", "Message", "Updated"], tasks))
        <h2>Events (last hour)</h2>
        \(WebPage.table(["Time (UTC)", "Event", "Node", "Plugin", "Subject", "Message"], events))
        """ + logSection(node: node, plugins: states.keys.sorted()))
  }

  /// The log viewer of `?log=PLUGIN`: filled live by `/static/logs.js`
  /// from ``logEvents(node:plugin:)``; a link per plugin opens it.
  func logSection(node: NodeRecord, plugins names: [String]) -> String {
    guard !names.isEmpty else { return "" }
    let path = "/nodes/\(Self.pathEscaped(node.name))/logs/"
    let options = names.map { "<option value=\"\(WebPage.escape($0))\">\(WebPage.escape($0))</option>" }.joined()
    return """
      <h2 id="log">Plugin log</h2>
      <p><label>Plugin <select id="log-plugin" data-base="\(WebPage.escape(path))">\(options)</select></label>
      <button type="button" id="log-follow">Follow</button> <span id="log-state"></span></p>
      <pre id="log-lines"></pre>
      <noscript><p>Following a log needs JavaScript; <code>deckhand logs \(WebPage.escape(node.name)) PLUGIN</code> prints it.</p></noscript>
      <script src="/static/logs.js" defer></script>
      """
  }

  /// Server-sent events of a plugin's log on a node: its last 200 lines,
  /// then each new one (`line`, a JSON array of stream and text), through
  /// the agent as `deckhand logs --follow` does.
  func logEvents(node key: String, plugin: String) async throws -> Response {
    try PluginName.check(plugin)
    let node = try await plane.findNode(key)
    var ask = Deckhand_Dispatcher_V1_LogRequest()
    ask.plugin = plugin
    ask.follow = true
    ask.tail = 200
    let (id, pairing) = try logs.open(node: node.id, name: node.name, ask)
    let logs = self.logs
    return Self.eventStream { write in
      do {
        try await logs.forward(id, pairing, nodeName: node.name) { line in
          let row = JSONValue.array([.string(line.stream), .string(line.text)]).serialized() ?? []
          try await write("event: line\ndata: \(String(decoding: row, as: UTF8.self))\n\n")
        }
        try await write("event: end\ndata: the agent stopped sending\n\n")
      } catch let error as DeckhandError {
        let text = JSONValue.string(error.message).serialized() ?? []
        try await write("event: failed\ndata: \(String(decoding: text, as: UTF8.self))\n\n")
      }
    }
  }

  /// A node's plugins and their states: what the agent said when it
  /// connected, what was deployed to it since (its current tasks' states),
  /// and what it reports using.
  static func pluginStates(_ node: NodeRecord, tasks: [TaskRecord], usage: [PluginUsage]) -> [String: String] {
    var states = node.plugins
    for task in tasks where states[task.plugin] == nil { states[task.plugin] = task.state.displayName }
    for used in usage where states[used.plugin] == nil { states[used.plugin] = "-" }
    return states
  }

  /// `key=value` as a filter; empty when `text` is empty or malformed.
  static func labelFilter(_ text: String) -> [String: String] {
    let parts = text.split(separator: "=", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
    guard parts.count == 2, !parts[0].isEmpty else { return [:] }
    return [parts[0]: parts[1]]
  }

  static func labels(_ labels: [String: String]) -> String {
    labels.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: ", ")
  }

  static func cpu(_ seconds: Double) -> String { String(format: "%.1f s", seconds) }

  /// Follows the chosen plugin's log; the page reads fine without it.
  static let logsScript = """
    (function () {
      var select = document.getElementById("log-plugin");
      var button = document.getElementById("log-follow");
      var lines = document.getElementById("log-lines");
      var state = document.getElementById("log-state");
      if (!select || !window.EventSource) return;
      var source = null;
      function follow() {
        if (source) source.close();
        lines.textContent = "";
        state.textContent = "following";
        source = new EventSource(select.dataset.base + encodeURIComponent(select.value));
        source.addEventListener("line", function (event) {
          var line = JSON.parse(event.data);
          lines.textContent += "[" + line[0] + "] " + line[1] + "\\n";
        });
        source.addEventListener("failed", function (event) { state.textContent = JSON.parse(event.data); source.close(); });
        source.addEventListener("end", function () { state.textContent = "ended"; source.close(); });
      }
      button.addEventListener("click", follow);
      var wanted = new URLSearchParams(window.location.search).get("log");
      if (wanted) { select.value = wanted; follow(); }
    })();
    """
}
