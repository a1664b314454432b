internal import DeckhandCore
internal import DeckhandPluginHost
internal import DeckhandProtocol
internal import DeckhandRuntime
internal import Foundation
internal import SwiftProtobuf

extension Agent {
  /// Registers `agent.*` and `plugins.*` on the command socket.
  func registerBuiltinCommands() throws {
    let manager = self.manager
    let configuration = self.configuration
    let startedAt = self.startedAt
    let paths = self.paths

    try registry.register(
      "agent.status",
      immediate: { _ in
        [
          "Version": .string(DeckhandVersion.current),
          "Uptime": .number(startedAt.duration(to: .now).inSeconds.rounded()),
          "Plugins": .number(Double(manager.count)),
          "StateDir": .string(configuration.stateDirectory),
          "NodeName": .string(configuration.nodeName),
        ]
      })
    try registry.register(
      "agent.config.getoption",
      immediate: { request in
        let name = try Self.field(request, "Option")
        let options = configuration.options
        guard let value = options[name] else {
          throw DeckhandError(
            .configurationInvalid, "unknown option \(name); known: \(options.keys.sorted().joined(separator: ", "))")
        }
        return ["Value": value]
      })
    try registry.register("plugins.install") { request in
      let entry = try await manager.install(manifestPath: try Self.field(request, "Manifest"))
      return ["Plugin": Self.summary(entry)]
    }
    try registry.register("plugins.list") { _ in
      let entries = await manager.all
      let usage = try await BlockingWork.run { PluginManager.usage(of: entries) }
      return ["Plugins": .array(entries.map { Self.summary($0, usage: usage[$0.record.name]?.usage) })]
    }
    try registry.register("plugins.status") { request in
      let entry = try await manager.entry(try Self.field(request, "Name"))
      let data = try Self.optionalField(request, "Data")
      let status = try await entry.supervisor.withConnection { connection in
        try await connection.getStatus(data: data, timeout: entry.manifest.timeouts.call)
      }
      return ["Code": .number(Double(status.code)), "Results": .array(status.results.map(JSONValue.string))]
    }
    try registry.register("plugins.apply") { request in
      let entry = try await manager.entry(try Self.field(request, "Name"))
      var payload = Google_Protobuf_Any()
      payload.typeURL = try Self.field(request, "TypeURL")
      if let text = try Self.optionalField(request, "Value") {
        payload.value = Data(text.utf8)
      } else if let base64 = try Self.optionalField(request, "ValueBase64") {
        guard let bytes = Data(base64Encoded: base64) else {
          throw DeckhandError(.configurationInvalid, "ValueBase64 is not valid base64")
        }
        payload.value = bytes
      }
      try await entry.supervisor.withConnection { connection in
        try await connection.apply(payload, timeout: entry.manifest.timeouts.call)
      }
      return [:]
    }
    try registry.register("plugins.restart") { request in
      let entry = try await manager.restart(try Self.field(request, "Name"))
      return ["Plugin": Self.summary(entry)]
    }
    try registry.register("plugins.remove") { request in
      let name = try Self.field(request, "Name")
      var cleanup = false
      switch request["Cleanup"] {
      case nil, .null: break
      case .bool(let flag): cleanup = flag
      default: throw DeckhandError(.configurationInvalid, "Cleanup must be true or false")
      }
      try await manager.remove(name, cleanup: cleanup)
      return ["Removed": .string(name), "Cleanup": .bool(cleanup)]
    }
    try registry.register("plugins.logs") { request in
      let name = try Self.field(request, "Name")
      var count = 50
      switch request["Lines"] {
      case nil, .null: break
      case .number(let number) where number >= 0 && number <= 100_000: count = Int(number)
      default: throw DeckhandError(.configurationInvalid, "Lines must be a number from 0 to 100000")
      }
      _ = try await manager.entry(name)
      let stderr = LaunchedPlugin.tail(ofFile: try paths.stderrLog(name), lines: count) ?? []
      let errorLog = LaunchedPlugin.tail(ofFile: try paths.errorLog(name), lines: count) ?? []
      return [
        "Lines": .array((stderr + errorLog).suffix(count).map(JSONValue.string)),
        "Stderr": .array(stderr.map(JSONValue.string)),
        "ErrorLog": .array(errorLog.map(JSONValue.string)),
      ]
    }
  }

  /// A plugin as `plugins.list` shows it, with its usage if it runs.
  static func summary(_ entry: PluginManager.Entry, usage: ProcessUsage? = nil) -> JSONValue {
    let snapshot = entry.runtime.snapshot
    var health: [String: JSONValue] = [
      "Code": snapshot.healthCode.map { .number(Double($0)) } ?? .null,
      "Results": .array(snapshot.healthResults.map(JSONValue.string)),
    ]
    if let error = snapshot.healthError { health["Error"] = .string(error) }
    var fields: [String: JSONValue] = [:]
    let limits = entry.manifest.limits
    if !limits.isEmpty {
      let mechanism = entry.supervisor.runningPlugin?.limits?.mechanism ?? ResourceControl.machine.mechanism
      var described: [String: JSONValue] = ["Mechanism": .string(mechanism.rawValue)]
      if let value = limits.memoryMB { described["MemoryMB"] = .number(Double(value)) }
      if let value = limits.cpuPercent { described["CPUPercent"] = .number(Double(value)) }
      if let value = limits.pids { described["Pids"] = .number(Double(value)) }
      if let value = limits.nofile { described["Nofile"] = .number(Double(value)) }
      fields["Limits"] = .object(described)
    }
    if let usage {
      let figures: [String: JSONValue] = [
        "CPUSeconds": .number(usage.cpuSeconds), "ResidentBytes": .number(usage.residentBytes),
      ]
      fields["Usage"] = .object(figures)
    } else {
      fields["Usage"] = .null
    }
    return .object(
      fields.merging([
        "Name": .string(entry.manifest.name),
        "Version": .string(entry.manifest.version),
        "Revision": .number(Double(entry.record.revision)),
        "Protocol": .string(entry.manifest.launchProtocol.rawValue),
        "State": .string(snapshot.state.rawValue),
        "Pid": snapshot.pid.map { .number(Double($0)) } ?? .null,
        "Restarts": .number(Double(snapshot.restarts)),
        "LastExit": snapshot.lastExit.map(JSONValue.string) ?? .null,
        "Health": .object(health),
      ]) { _, new in new })
  }

  static func field(_ request: [String: JSONValue], _ name: String) throws -> String {
    guard let value = try optionalField(request, name) else {
      throw DeckhandError(.configurationInvalid, "\(name) is required")
    }
    return value
  }

  static func optionalField(_ request: [String: JSONValue], _ name: String) throws -> String? {
    switch request[name] {
    case nil, .null: return nil
    case .string(let text): return text
    default: throw DeckhandError(.configurationInvalid, "\(name) must be a string")
    }
  }
}
