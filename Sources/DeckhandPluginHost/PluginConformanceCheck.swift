package import DeckhandCore
internal import DeckhandProtocol
internal import Foundation
internal import SwiftProtobuf

#if canImport(Glibc)
  internal import Glibc
#endif

/// `deckhand plugin check`: launches a plugin once and checks that it keeps
/// the contract, step by step.
package struct PluginConformanceCheck: Sendable {
  /// One step's verdict.
  package struct Check: Hashable, Sendable, Encodable {
    package var name: String
    package var ok: Bool
    package var detail: String

    package init(name: String, ok: Bool, detail: String) {
      self.name = name
      self.ok = ok
      self.detail = detail
    }
  }

  /// The whole report, as `--json` prints it.
  package struct Report: Hashable, Sendable, Encodable {
    package var ok: Bool
    package var plugin: String
    package var version: String
    package var `protocol`: String
    package var checks: [Check]

    package init(ok: Bool, plugin: String, version: String, protocol: String, checks: [Check]) {
      self.ok = ok
      self.plugin = plugin
      self.version = version
      self.protocol = `protocol`
      self.checks = checks
    }
  }

  let launcher: PluginLauncher
  let transport: any PluginTransport

  package init(launcher: PluginLauncher, transport: any PluginTransport = LeanPluginTransport()) {
    self.launcher = launcher
    self.transport = transport
  }

  /// Runs every check; a failed step skips the ones that need it.
  package func run(_ manifest: PluginManifest) async -> Report {
    var checks: [Check] = []
    func record(_ name: String, _ ok: Bool, _ detail: String) {
      checks.append(Check(name: name, ok: ok, detail: detail))
    }
    func report() -> Report {
      Report(
        ok: !checks.isEmpty && checks.allSatisfy(\.ok), plugin: manifest.name, version: manifest.version,
        protocol: manifest.launchProtocol.rawValue, checks: checks)
    }

    let plugin: LaunchedPlugin
    do {
      plugin = try await launcher.launch(manifest)
      record(
        "launch", true,
        "pid \(plugin.pid) serving on \(plugin.address) after \(Self.ms(plugin.launchedAt.duration(to: .now))) ms")
    } catch {
      record("launch", false, "\(error)")
      return report()
    }

    do {
      try await transport.withConnection(to: plugin.address) { connection in
        let call = manifest.timeouts.call
        if manifest.launchProtocol == .goPlugin {
          do {
            let serving = try await connection.checkHealth(service: "plugin", timeout: call)
            record("health", serving, serving ? "grpc.health.v1: plugin SERVING" : "grpc.health.v1: plugin NOT SERVING")
          } catch {
            record("health", false, "\(error)")
          }
        }
        do {
          let start = try plugin.startRequest()
          try await connection.start(start, timeout: call)
          record(
            "start", true,
            "state directory \(start.config.stateDirectoryPath), config \(Self.describe(manifest.config))")
        } catch {
          record("start", false, "\(error)")
        }
        do {
          let status = try await connection.getStatus(data: nil, timeout: call)
          record(
            "status", status.code == 0,
            "code \(status.code), results \(status.results)\(status.code == 0 ? "" : ": a health check needs code 0")")
        } catch {
          record("status", false, "\(error)")
        }
        do {
          let status = try await connection.getStatus(data: "deckhand-check", timeout: call)
          record("status_with_data", true, "code \(status.code), results \(status.results)")
        } catch {
          record("status_with_data", false, "\(error)")
        }
        do {
          var payload = Google_Protobuf_Any()
          payload.typeURL = "type.googleapis.com/google.protobuf.StringValue"
          payload.value = try Google_Protobuf_StringValue("deckhand-check").serializedBytes()
          try await connection.apply(payload, timeout: call)
          record("apply", true, "Apply with a google.protobuf.StringValue accepted")
        } catch {
          record("apply", false, "\(error)")
        }
        let outcome = await plugin.stop(using: connection, cleanup: false)
        record(
          "stop", outcome.replied,
          outcome.replied
            ? "replied within the \(manifest.timeouts.stop) deadline, stopped in \(Self.ms(outcome.elapsed)) ms"
            : "no reply within the \(manifest.timeouts.stop) deadline (timeouts.stop_s): \(outcome.stopError ?? "")")
        let groupGone = kill(-plugin.pid, 0) != 0 && errno == ESRCH
        let socketGone: Bool =
          if case .unix(let path) = plugin.address { !FileManager.default.fileExists(atPath: path) } else { true }
        record(
          "exit", groupGone && socketGone,
          "process \(outcome.exit.map { "\($0)" } ?? "gone"); process group \(groupGone ? "gone" : "still has processes"); socket \(socketGone ? "removed" : "left behind")"
        )
      }
    } catch {
      await plugin.kill()
      record("connect", false, "\(error)")
    }
    return report()
  }

  static func ms(_ duration: Duration) -> String {
    String(format: "%.1f", duration.inMilliseconds)
  }

  static func describe(_ config: PluginManifest.Config?) -> String {
    switch config {
    case nil: "none"
    case .string: "string_config"
    case .object: "struct_config"
    }
  }
}
