import DeckhandClient
import DeckhandCore
import DeckhandProtocol
import DeckhandTestSupport
import Foundation
import GRPCCore
import Testing

@Suite("Traces: one trace from the CLI through the server and the agent into a plugin", .serialized)
struct TracesTests {
  /// The spans of `trace`.
  func spans(_ receiver: OTLPReceiver, trace: String) -> [OTLPReceiver.Span] {
    receiver.spans.filter { $0.traceID == trace }
  }

  /// The root span named `name` that `deckhand-cli` sent, the `index`th
  /// of that name (the commands run one after another).
  func cliRoot(_ receiver: OTLPReceiver, _ name: String, index: Int = 0) async -> OTLPReceiver.Span? {
    _ = await eventually(timeout: .seconds(10)) {
      receiver.spans.filter { $0.service == "deckhand-cli" && $0.name == name }.count > index
    }
    let roots = receiver.spans.filter { $0.service == "deckhand-cli" && $0.name == name }
    #expect(roots.count == index + 1, "\(roots)")
    #expect(roots.allSatisfy { $0.parentSpanID == "" }, "a command's span has a parent: \(roots)")
    return roots.count > index ? roots[index] : nil
  }

  @Test("a job run with --wait, and an apply to an SDK plugin and to a Go plugin, are each one trace across processes")
  func oneTrace() async throws {
    let receiver = try await OTLPReceiver()
    defer { receiver.stop() }
    let traced = ["--otlp-endpoint", receiver.endpoint]
    let root = try TestWorkspace()
    let server = try ServerProcess(root: root.root, port: try FreePort.next(), extra: traced)
    try await server.waitUntilServing()
    let node = try TestWorkspace()
    let agent = try await AgentProcess.joined(
      node, to: server, name: "traced-1", extra: traced + ["--log-format", "json", "--log-level", "debug"])
    defer { agent.signal(SIGKILL) }

    // An exec job: the CLI's command span, its QueueJob call, the server's
    // span for that call, and the agent's span for the job, in one trace.
    let run = try await server.cli(["jobs", "run", "--wait"] + traced + ["--", "true"])
    #expect(run.status == 0, "\(run.stderr)")
    guard let command = await cliRoot(receiver, "deckhand jobs run") else { return }
    let whole = await eventually(timeout: .seconds(10)) {
      let spans = spans(receiver, trace: command.traceID)
      return spans.contains { $0.service == "deckhand-server" && $0.name == "deckhand.server.v1.Jobs/QueueJob" }
        && spans.contains { $0.service == "deckhand-agent" && $0.name == "job exec" }
    }
    let runSpans = spans(receiver, trace: command.traceID)
    #expect(whole, "\(runSpans)")
    let call = runSpans.first { $0.service == "deckhand-cli" && $0.name == "deckhand.server.v1.Jobs/QueueJob" }
    let served = runSpans.first { $0.service == "deckhand-server" && $0.name == "deckhand.server.v1.Jobs/QueueJob" }
    let job = runSpans.first { $0.service == "deckhand-agent" && $0.name == "job exec" }
    #expect(call?.kind == 3 && call?.parentSpanID == command.spanID, "\(runSpans)")
    #expect(served?.kind == 2 && served?.parentSpanID == call?.spanID, "\(runSpans)")
    // The job ran later, on another process: it joined the trace through
    // the context the server kept with the job.
    #expect(job?.parentSpanID == served?.spanID && job?.parentSpanID.isEmpty == false, "\(runSpans)")
    #expect(Set(runSpans.map(\.service)) == ["deckhand-cli", "deckhand-server", "deckhand-agent"])

    // An apply to an SDK plugin (DeckhandPluginTracing): the agent's call
    // is a client span, and the plugin's server span and its own child
    // continue it.
    let manifest = try node.manifestFile([
      "name": "traced", "version": "1.0.0", "entrypoint": "\(Fixtures.binDirectory)/deckhand-test-traced-plugin",
    ])
    let installed = try await agent.call(["Command": "plugins.install", "Manifest": .string(manifest)])
    #expect(installed["Status"] == .number(0), "\(installed)")
    let apply = try await server.cli(["jobs", "apply", "traced", "--value", "hello", "--wait"] + traced)
    #expect(apply.status == 0, "\(apply.stderr)")
    guard let applyCommand = await cliRoot(receiver, "deckhand jobs apply") else { return }
    let reached = await eventually(timeout: .seconds(15)) {
      spans(receiver, trace: applyCommand.traceID).contains { $0.name == "traced-plugin.work" }
    }
    let applySpans = spans(receiver, trace: applyCommand.traceID)
    #expect(reached, "no span from inside the plugin: \(applySpans)")
    let applyJob = applySpans.first { $0.service == "deckhand-agent" && $0.name == "job plugin.apply" }
    let agentCall = applySpans.first {
      $0.service == "deckhand-agent" && $0.name == "plugin_comm.GuestAgentPlugin/Apply"
    }
    let pluginCall = applySpans.first { $0.service == "traced" && $0.name == "plugin_comm.GuestAgentPlugin/Apply" }
    let work = applySpans.first { $0.name == "traced-plugin.work" }
    #expect(applyJob != nil && agentCall?.parentSpanID == applyJob?.spanID, "\(applySpans)")
    #expect(agentCall?.kind == 3 && pluginCall?.kind == 2, "\(applySpans)")
    #expect(pluginCall?.parentSpanID == agentCall?.spanID && pluginCall != nil, "\(applySpans)")
    #expect(work?.service == "traced" && work?.parentSpanID == pluginCall?.spanID, "\(applySpans)")

    // A plugin in Go continues the same trace with OpenTelemetry Go's own
    // W3C propagator, and exports its span (stdout exporter) to its stdout
    // log, which `deckhand logs` shows.
    let goPlugin = Fixtures.packageRoot + "/.build-go/deckhand-go-traced-plugin"
    try #require(
      FileManager.default.isExecutableFile(atPath: goPlugin),
      "\(goPlugin) is missing: scripts/test.sh builds it (Tests/Fixtures/GoTracedPlugin/build.sh)")
    let goManifest = try node.manifestFile(["name": "go-traced", "version": "1.0.0", "entrypoint": goPlugin])
    let goInstalled = try await agent.call(["Command": "plugins.install", "Manifest": .string(goManifest)])
    #expect(goInstalled["Status"] == .number(0), "\(goInstalled)")
    let goApply = try await server.cli(["jobs", "apply", "go-traced", "--wait"] + traced)
    #expect(goApply.status == 0, "\(goApply.stderr)")
    guard let goCommand = await cliRoot(receiver, "deckhand jobs apply", index: 1) else { return }
    _ = await eventually(timeout: .seconds(10)) {
      spans(receiver, trace: goCommand.traceID).contains {
        $0.service == "deckhand-agent" && $0.name == "plugin_comm.GuestAgentPlugin/Apply"
      }
    }
    let goCall = spans(receiver, trace: goCommand.traceID).first {
      $0.service == "deckhand-agent" && $0.name == "plugin_comm.GuestAgentPlugin/Apply"
    }
    var goSpan: (trace: String, parent: String)?
    _ = await eventually(timeout: .seconds(10)) {
      let logs = (try? await server.cli(["logs", "traced-1", "go-traced"]))?.stdout ?? ""
      for line in logs.split(separator: "\n") where line.contains("\"go-plugin.apply\"") {
        guard case .object(let span) = try? JSONValue.parse(Array(line.utf8)),
          case .object(let context) = span["SpanContext"], case .object(let parent) = span["Parent"],
          case .string(let trace) = context["TraceID"], case .string(let parentSpan) = parent["SpanID"]
        else { continue }
        goSpan = (trace, parentSpan)
      }
      return goSpan != nil
    }
    #expect(goSpan?.trace == goCommand.traceID, "\(String(describing: goSpan))")
    #expect(
      goCall != nil && goSpan?.parent == goCall?.spanID, "\(String(describing: goSpan)) \(String(describing: goCall))")

    // The plugin's health checks run outside any trace: no span of theirs.
    #expect(!receiver.spans.contains { $0.name.hasSuffix("/GetStatus") }, "\(receiver.spans.map(\.name))")
    // JSON log lines made inside the job's span carry its trace id.
    let agentLog = (try? String(contentsOfFile: agent.log, encoding: .utf8)) ?? ""
    #expect(agentLog.contains("\"trace_id\":\"\(applyCommand.traceID)\""), "\(agentLog.suffix(3000))")
    #expect(receiver.unreadable.isEmpty)
  }

  @Test("a deployment's trace reaches the agent with its task: the download, the install and the plugin's Start")
  func deployment() async throws {
    let receiver = try await OTLPReceiver()
    defer { receiver.stop() }
    let traced = ["--otlp-endpoint", receiver.endpoint]
    let root = try TestWorkspace()
    let server = try ServerProcess(root: root.root, port: try FreePort.next(), extra: traced)
    try await server.waitUntilServing()
    let node = try TestWorkspace()
    let agent = try await AgentProcess.joined(node, to: server, name: "traced-2", extra: traced)
    defer { agent.signal(SIGKILL) }

    // The traced test plugin, packaged as "traced-dep".
    let folder = "\(root.root)/pkg"
    try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
    try FileManager.default.copyItem(
      atPath: "\(Fixtures.binDirectory)/deckhand-test-traced-plugin", toPath: "\(folder)/traced")
    try Data(#"{"name": "traced-dep", "version": "1.0.0", "entrypoint": "traced"}"#.utf8)
      .write(to: URL(fileURLWithPath: "\(folder)/plugin.json"))
    let package = "\(root.root)/traced-dep.tar.gz"
    try ArtifactPackage.pack(folder, into: package)
    #expect(try await server.cli(["artifacts", "push", package]).status == 0)
    let deployed = try await server.cli(["deploy", "traced-dep@1.0.0"] + traced)
    #expect(deployed.status == 0, "\(deployed.stderr)")

    guard let command = await cliRoot(receiver, "deckhand deploy") else { return }
    let reached = await eventually(timeout: .seconds(20)) {
      spans(receiver, trace: command.traceID).contains {
        $0.service == "traced-dep" && $0.name == "plugin_comm.GuestAgentPlugin/Start"
      }
    }
    let all = spans(receiver, trace: command.traceID)
    #expect(reached, "the plugin's Start did not join the deployment's trace: \(all)")
    let created = all.first {
      $0.service == "deckhand-server" && $0.name == "deckhand.control.v1.Control/CreateDeployment"
    }
    let task = all.first { $0.service == "deckhand-agent" && $0.name == "task traced-dep" }
    let start = all.first { $0.service == "deckhand-agent" && $0.name == "plugin_comm.GuestAgentPlugin/Start" }
    let started = all.first { $0.service == "traced-dep" && $0.name == "plugin_comm.GuestAgentPlugin/Start" }
    #expect(created != nil && task?.parentSpanID == created?.spanID, "\(all)")
    // The download, from the agent's side and the server's.
    let download = all.first {
      $0.service == "deckhand-agent" && $0.name == "deckhand.dispatcher.v1.Dispatcher/DownloadArtifact"
    }
    let served = all.first {
      $0.service == "deckhand-server" && $0.name == "deckhand.dispatcher.v1.Dispatcher/DownloadArtifact"
    }
    #expect(task != nil && download?.parentSpanID == task?.spanID, "\(all)")
    #expect(download != nil && served?.parentSpanID == download?.spanID, "\(all)")
    #expect(task != nil && start?.parentSpanID == task?.spanID, "\(all)")
    #expect(start != nil && started?.parentSpanID == start?.spanID, "\(all)")
  }

  @Test("the server records the trace of the QueueJob call, not one a client puts in the job")
  func forgedTraceContext() async throws {
    let receiver = try await OTLPReceiver()
    defer { receiver.stop() }
    let root = try TestWorkspace()
    let server = try ServerProcess(
      root: root.root, port: try FreePort.next(), extra: ["--otlp-endpoint", receiver.endpoint])
    try await server.waitUntilServing()
    let untraced = try TestWorkspace()
    let plain = try ServerProcess(root: untraced.root, port: try FreePort.next())
    try await plain.waitUntilServing()
    let forged = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    for (target, isTraced) in [(server, true), (plain, false)] {
      let endpoint = try ServerEndpoint(parsing: target.endpoint)
      let ca = try await ControlPlaneClient.trustedCA(at: endpoint, token: target.operatorToken)
      let job = try await ControlPlaneClient.withClient(endpoint, caPEM: ca) { client in
        let jobs = Deckhand_Server_V1_Jobs.Client(wrapping: client)
        var request = Deckhand_Server_V1_QueueJobRequest()
        request.job.noop = .init()
        request.job.target.any = true
        request.job.traceContext = ["traceparent": forged, "x-padding": String(repeating: "x", count: 4096)]
        let metadata = ControlPlaneClient.metadata(target.operatorToken)
        let id = try await jobs.queueJob(request, metadata: metadata).jobID
        var get = Deckhand_Server_V1_GetJobRequest()
        get.jobID = id
        return try await jobs.getJob(get, metadata: metadata)
      }
      #expect(!job.traceContext.values.contains(forged), "\(job.traceContext)")
      #expect(job.traceContext["x-padding"] == nil)
      if isTraced {
        // The server's own span for the call: a new trace.
        let parent = job.traceContext["traceparent"] ?? ""
        #expect(parent.hasPrefix("00-") && parent.count == 55, "\(job.traceContext)")
      } else {
        // Off by default: nothing is recorded.
        #expect(job.traceContext.isEmpty, "\(job.traceContext)")
      }
    }
  }
}
