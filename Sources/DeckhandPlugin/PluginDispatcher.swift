internal import DeckhandCore
internal import DeckhandGRPC
package import DeckhandPluginProtocol
internal import FoundationEssentials
internal import Tracing

/// Turns `plugin_comm` requests into calls of a ``Plugin``, whichever server
/// carries them. A plugin's error is logged and rethrown as a
/// ``DeckhandError`` (`callFailed`) naming the method.
///
/// When the plugin's author bootstrapped a tracer (swift-distributed-tracing's
/// `InstrumentationSystem`, as `DeckhandPluginTracing` does), each call
/// made inside a trace of the host's (its request carries a `traceparent`)
/// runs in a server span that continues that trace: spans the plugin starts
/// inside are its children.
package struct PluginDispatcher: Sendable {
  let plugin: any Plugin
  /// Whether calls run in spans: a tracer was bootstrapped before serving.
  /// Without one, calls do no tracing work at all.
  package let traced: Bool

  init(plugin: any Plugin, traced: Bool = !(InstrumentationSystem.tracer is NoOpTracer)) {
    self.plugin = plugin
    self.traced = traced
  }

  /// A plugin method failed.
  package func start(_ request: PluginComm_StartRequest) async throws -> PluginComm_StartResponse {
    let config: StartContext.Config =
      switch request.serviceConfig {
      case .stringConfig(let text): .string(text)
      case .structConfig(let structure): .structure(structure)
      case nil: .none
      }
    try await run("Start", rpc: Self.guestAgent + "Start") {
      try await plugin.start(StartContext(stateDirectory: request.config.stateDirectoryPath, config: config))
    }
    return PluginComm_StartResponse()
  }

  package func stop(_ request: PluginComm_StopRequest) async throws -> PluginComm_StopResponse {
    try await run("Stop", rpc: Self.guestAgent + "Stop") { try await plugin.stop(cleanup: request.cleanup) }
    return PluginComm_StopResponse()
  }

  package func getStatus(_ request: PluginComm_GetStatusRequest) async throws -> PluginComm_Status {
    let status = try await run("GetStatus", rpc: Self.guestAgent + "GetStatus") {
      try await plugin.status(data: request.hasData ? request.data : nil)
    }
    var response = PluginComm_Status()
    response.code = status.code
    response.results = status.results
    return response
  }

  package func apply(_ request: PluginComm_ApplyRequest) async throws -> PluginComm_ApplyResponse {
    try await run("Apply", rpc: Self.guestAgent + "Apply") { try await plugin.apply(request.data) }
    return PluginComm_ApplyResponse()
  }

  package func handleCommand(_ request: Deckhand_Host_V1_HandleCommandRequest) async throws
    -> Deckhand_Host_V1_HandleCommandResponse
  {
    guard case .object(let fields) = try JSONValue.parse(Array(request.requestJson)) else {
      throw DeckhandError(.configurationInvalid, "HandleCommand: the request is not a JSON object")
    }
    let answer = try await run("HandleCommand \(request.name)", rpc: "deckhand.host.v1.PluginCommands/HandleCommand") {
      try await plugin.command(request.name, request: fields)
    }
    guard let bytes = JSONValue.object(answer).serialized() else {
      throw DeckhandError(
        .callFailed, "HandleCommand \(request.name): the answer holds a number JSON cannot express")
    }
    var response = Deckhand_Host_V1_HandleCommandResponse()
    response.responseJson = Data(bytes)
    return response
  }

  private static let guestAgent = "plugin_comm.GuestAgentPlugin/"

  private func run<R: Sendable>(_ method: String, rpc: String, _ body: () async throws -> R) async throws -> R {
    // Only calls inside the host's trace get a span: a health check, made
    // outside any, would otherwise start a trace of its own each time.
    guard traced, !CallHeaders.current.isEmpty else { return try await logged(method, body) }
    var parent = InstrumentationContext.topLevel
    InstrumentationSystem.instrument.extract(CallHeaders.current, into: &parent, using: HeaderListExtractor())
    return try await withSpan(rpc, context: parent, ofKind: .server) { span in
      span.attributes["rpc.system"] = "grpc"
      do {
        return try await logged(method, body)
      } catch {
        span.recordError(error)
        span.setStatus(SpanStatus(code: .error))
        throw error
      }
    }
  }

  private func logged<R: Sendable>(_ method: String, _ body: () async throws -> R) async throws -> R {
    do {
      return try await body()
    } catch {
      PluginLog.error("\(method) failed: \(error)")
      throw DeckhandError(.callFailed, "\(method) failed: \(error)", cause: error)
    }
  }
}

/// Reads a trace context from a lean call's headers (``CallHeaders``).
struct HeaderListExtractor: Extractor {
  func extract(key: String, from carrier: [(String, String)]) -> String? {
    let name = key.lowercased()
    return carrier.first { $0.0 == name }?.1
  }
}
