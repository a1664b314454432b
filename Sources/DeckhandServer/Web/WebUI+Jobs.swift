internal import DeckhandClient
internal import DeckhandCore
internal import DeckhandProtocol
internal import Foundation
internal import HTTPTypes
internal import Hummingbird
internal import NIOCore

/// The jobs pages: the list, a job with its output following live (server-
/// sent events read by `/static/job.js`), cancel and force-cancel.
extension WebUI {
  /// At most this much stored output is put in a job's page; the rest
  /// stays in `deckhand jobs get`/`watch`.
  static let maxPageOutput = 4 << 20

  func addJobRoutes(to router: Router<BasicRequestContext>) {
    router.get("/jobs") { request, _ in
      let state = request.uri.queryParameters.get("state").flatMap(Self.jobState)
      return try await reading(request) { session in Self.html(try await jobsPage(state: state, session)) }
    }
    router.post("/jobs/exec") { request, context in
      try await changing(request, context) { _, form in
        let queued = try await jobs.queueWithWarning(try Self.execJob(form))
        return .redirect(to: "/jobs/\(Self.pathEscaped(queued.id))", type: .normal)
      }
    }
    router.get("/jobs/:job") { request, context in
      let id = try context.parameters.require("job")
      return try await reading(request) { session in Self.html(try await jobPage(id, session)) }
    }
    router.get("/jobs/:job/events") { request, context in
      let id = try context.parameters.require("job")
      guard await session(request) != nil else { return Self.refused("sign in first") }
      let after =
        request.headers[Self.lastEventID].flatMap { Int64($0) }
        ?? request.uri.queryParameters.get("after").flatMap { Int64($0) } ?? 0
      return try await answer { try await events(of: id, after: after) }
    }
    router.post("/jobs/:job/cancel") { request, context in
      let id = try context.parameters.require("job")
      return try await changing(request, context) { _, _ in
        try await jobs.cancel(id, force: false)
        return .redirect(to: "/jobs/\(Self.pathEscaped(id))", type: .normal)
      }
    }
    router.post("/jobs/:job/force-cancel") { request, context in
      let id = try context.parameters.require("job")
      return try await changing(request, context) { _, _ in
        try await jobs.cancel(id, force: true)
        return .redirect(to: "/jobs/\(Self.pathEscaped(id))", type: .normal)
      }
    }
    router.get("/static/job.js") { _, _ in
      Response(
        status: .ok, headers: [.contentType: "text/javascript; charset=utf-8"],
        body: ResponseBody(byteBuffer: ByteBuffer(string: Self.jobScript)))
    }
  }

  func jobsPage(state: JobState?, _ session: WebSessions.Session) async throws -> String {
    let records = try await jobs.store.jobs(
      states: state.map { [$0.rawValue] } ?? [], runner: nil, since: 0, limit: 200)
    let now = nowMs()
    let filters = (["all"] + JobState.allCases.map(\.displayName)).map { name in
      "<a href=\"/jobs\(name == "all" ? "" : "?state=\(name.lowercased())")\">\(name)</a>"
    }.joined(separator: " · ")
    let rows = records.map { record in
      let job = jobs.message(record)
      return [
        "<a href=\"/jobs/\(WebPage.escape(Self.pathEscaped(record.id)))\">\(WebPage.escape(record.id))</a>",
        WebPage.escape(job.operationSummary),
        "<span class=\"\(record.state.displayName)\">\(record.state.displayName)</span>",
        WebPage.escape(record.runnerId.isEmpty ? "-" : record.runnerId),
        WebPage.age(record.queuedMs, nowMs: now),
      ]
    }
    let queue = WebPage.form(
      action: "/jobs/exec", session: session, id: "queue-exec",
      fields: """
        <h2>Queue a command</h2>
        <p><label>Command, one argument per line (no shell)<br><textarea name="argv" id="argv" rows="3" cols="40" required></textarea></label></p>
        <p><label>Node (id or name; empty: any) <input name="target" id="target"></label>
        <label>Label key=value <input name="label" id="label"></label>
        <label>Timeout (e.g. 30s) <input name="timeout" id="timeout" size="6"></label></p>
        """, submit: "Queue", inline: false)
    return WebPage.layout(
      "Jobs", session: session,
      body: "<p>\(filters)</p>" + WebPage.table(["Job", "Operation", "State", "Runner", "Queued"], rows) + queue)
  }

  /// The exec job the queue form asks for, checked as `deckhand jobs run`
  /// checks its flags; the queue checks the rest as for any job.
  static func execJob(_ form: [String: String]) throws -> Deckhand_Server_V1_Job {
    let argv = (form["argv"] ?? "").split(omittingEmptySubsequences: true) { $0 == "\n" || $0 == "\r\n" || $0 == "\r" }
      .map { String($0) }.filter { !$0.trimmingCharacters(in: .whitespaces).isEmpty }
    guard !argv.isEmpty else { throw DeckhandError(.configurationInvalid, "give the command, one argument per line") }
    var job = Deckhand_Server_V1_Job()
    job.exec.argv = argv
    let target = (form["target"] ?? "").trimmingCharacters(in: .whitespaces)
    if target.isEmpty { job.target.any = true } else { job.target.runnerID = target }
    let label = (form["label"] ?? "").trimmingCharacters(in: .whitespaces)
    if !label.isEmpty {
      let parts = label.split(separator: "=", maxSplits: 1).map(String.init)
      guard parts.count == 2, !parts[0].isEmpty, !parts[1].isEmpty else {
        throw DeckhandError(.configurationInvalid, "label \(label): expected key=value")
      }
      job.target.labels = [parts[0]: parts[1]]
    }
    let timeout = (form["timeout"] ?? "").trimmingCharacters(in: .whitespaces)
    if !timeout.isEmpty {
      guard let duration = DurationText.parse(timeout), duration > .zero else {
        throw DeckhandError(.configurationInvalid, "timeout \(timeout): expected a duration such as 30s or 5m")
      }
      job.exec.timeoutMs = Int64(duration.inMilliseconds)
    }
    return job
  }

  func jobPage(_ id: String, _ session: WebSessions.Session) async throws -> String {
    let record = try await jobs.record(id)
    let job = jobs.message(record)
    var output = ""
    var sequence: Int64 = 0
    var bytes = 0
    outer: while true {
      let batch = try await jobs.store.output(id, after: sequence, limit: 256)
      guard let last = batch.last else { break }
      for chunk in batch {
        bytes += chunk.data.count
        if bytes > Self.maxPageOutput { break outer }
        output += String(decoding: chunk.data, as: UTF8.self)
        sequence = chunk.sequence
      }
      sequence = last.sequence
    }
    let controls =
      record.state.isEnded
      ? ""
      : "<p id=\"controls\">"
        + WebPage.button("Cancel", action: "/jobs/\(Self.pathEscaped(id))/cancel", session: session, id: "cancel")
        + " "
        + WebPage.button(
          "Force cancel", action: "/jobs/\(Self.pathEscaped(id))/force-cancel", session: session, id: "force-cancel")
        + "</p>"
    let events =
      record.state.isEnded
      ? "" : " data-events=\"/jobs/\(WebPage.escape(Self.pathEscaped(id)))/events?after=\(sequence)\""
    return WebPage.layout(
      "Job \(id)", session: session,
      body: """
        <p>\(WebPage.escape(job.operationSummary)) · state <span id="state">\(record.state.displayName)</span>
        · runner \(WebPage.escape(record.runnerId.isEmpty ? "-" : record.runnerId))
        \(record.state.isEnded ? "· exit code \(record.exitCode)" : "")
        \(record.error.isEmpty ? "" : "· <span class=\"error\">\(WebPage.escape(record.error))</span>")</p>
        \(controls)
        <pre id="output"\(events)>\(WebPage.escape(output))</pre>
        <script src="/static/job.js" defer></script>
        """)
  }

  /// Server-sent events of job `id` from output sequence `after`: `output`
  /// (a JSON string, with the sequence as the event's id so that a
  /// reconnecting browser resumes after it), `state`, then `end`.
  func events(of id: String, after: Int64) async throws -> Response {
    let first = try await jobs.record(id)
    let jobs = self.jobs
    return Self.eventStream { write in
      try await jobs.follow(id, from: first) { event in
        switch event {
        case .output(let records, _):
          for record in records where record.sequence > after {
            let text = JSONValue.string(String(decoding: record.data, as: UTF8.self)).serialized() ?? []
            try await write("id: \(record.sequence)\nevent: output\ndata: \(String(decoding: text, as: UTF8.self))\n\n")
          }
        case .state(_, let job):
          try await write("event: state\ndata: \(job.state.displayName)\n\n")
        case .complete(let job):
          try await write("event: end\ndata: \(job.state.displayName)\n\n")
        }
      }
    }
  }

  static func jobState(_ name: String) -> JobState? {
    JobState.allCases.first { $0.displayName == name.uppercased() }
  }

  static let lastEventID = HTTPField.Name("Last-Event-ID")!

  /// Follows a job's output on its page without reloading; the page reads
  /// fine without it.
  static let jobScript = """
    (function () {
      var output = document.getElementById("output");
      var state = document.getElementById("state");
      if (!output || !output.dataset.events || !window.EventSource) return;
      var source = new EventSource(output.dataset.events);
      source.addEventListener("output", function (event) { output.textContent += JSON.parse(event.data); });
      source.addEventListener("state", function (event) { state.textContent = event.data; });
      source.addEventListener("end", function (event) {
        state.textContent = event.data;
        source.close();
        var controls = document.getElementById("controls");
        if (controls) controls.remove();
      });
    })();
    """
}
