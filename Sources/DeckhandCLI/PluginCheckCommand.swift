internal import ArgumentParser
internal import DeckhandCore
internal import DeckhandPluginHost
internal import Foundation

/// `deckhand plugin check MANIFEST [--json]`: a conformance check for
/// plugin authors.
struct PluginCheckCommand: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "check",
    abstract: "Launch a plugin once and check that it keeps the GuestAgentPlugin contract.",
    discussion: """
      Checks launch, Start (state directory and config), GetStatus without and with data, \
      Apply with an Any payload, Stop within the deadline and the end of the process group. \
      Exits 0 only if every check passed.
      """
  )

  @OptionGroup var host: HostOptions

  @Flag(
    help: "Print the report as JSON: {\"ok\", \"plugin\", \"protocol\", \"checks\": [{\"name\", \"ok\", \"detail\"}]}.")
  var json = false

  func run() async throws {
    let manifest: PluginManifest
    do {
      manifest = try PluginManifest.load(path: host.manifest)
    } catch let error as DeckhandError {
      if json {
        let report = PluginConformanceCheck.Report(
          ok: false, plugin: "", version: "", protocol: "",
          checks: [.init(name: "manifest", ok: false, detail: error.message)])
        print(try Self.encode(report))
        throw ExitCode(1)
      }
      FileHandle.standardError.write(Data("deckhand: \(error.message)\n".utf8))
      throw ExitCode(2)
    }
    let report = await PluginConformanceCheck(
      launcher: PluginLauncher(paths: host.paths), transport: host.transport.transport
    ).run(manifest)
    if json {
      print(try Self.encode(report))
    } else {
      print("plugin \(report.plugin) \(report.version) (\(report.protocol))")
      for check in report.checks {
        print(
          "  \(check.ok ? "ok  " : "FAIL") \(check.name.padding(toLength: 17, withPad: " ", startingAt: 0)) \(check.detail)"
        )
      }
      print(report.ok ? "all checks passed" : "some checks failed")
    }
    if !report.ok { throw ExitCode(1) }
  }

  static func encode(_ report: some Encodable) throws -> String {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
    return String(decoding: try encoder.encode(report), as: UTF8.self)
  }
}
