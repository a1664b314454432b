internal import ArgumentParser
internal import DeckhandCore
internal import Foundation

/// `deckhand plugins …`: the agent's installed plugins, through its
/// command socket.
struct PluginsCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "plugins",
    abstract: "Install, list, query and remove the plugins of the running agent.",
    subcommands: [Install.self, List.self, Status.self, Apply.self, Restart.self, Remove.self, Logs.self]
  )

  /// What every subcommand shares.
  struct Common: ParsableArguments {
    @OptionGroup var socket: SocketOptions
    @Flag(help: "Print the agent's JSON response instead of a table.")
    var json = false

    /// Sends the request; prints the response as JSON with --json, else
    /// calls `human`.
    func run(_ request: [String: JSONValue], human: ([String: JSONValue]) -> String) throws {
      let response = try socket.call(request)
      if json {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        let data = (try? encoder.encode(JSONValue.object(response))) ?? Data()
        FileHandle.standardOutput.write(data + Data("\n".utf8))
      } else {
        let text = human(response)
        if !text.isEmpty { print(text) }
      }
    }
  }

  struct Install: ParsableCommand {
    static let configuration = CommandConfiguration(
      abstract: "Install a plugin from its manifest, or upgrade the installed plugin of that name.")
    @Argument(help: "The plugin's manifest (plugin.json).") var manifest: String
    @OptionGroup var common: Common
    func run() throws {
      try common.run(["Command": "plugins.install", "Manifest": .string(HostOptions.absolute(manifest))]) {
        PluginsTable.render([$0["Plugin"] ?? .null])
      }
    }
  }

  struct List: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "list", abstract: "List the installed plugins.")
    @OptionGroup var common: Common
    func run() throws {
      try common.run(["Command": "plugins.list"]) { response in
        guard case .array(let plugins) = response["Plugins"], !plugins.isEmpty else { return "no plugins installed" }
        return PluginsTable.render(plugins)
      }
    }
  }

  struct Status: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Ask a plugin for its status (GetStatus).")
    @Argument(help: "The plugin's name.") var name: String
    @Option(help: "Data for the status query.") var data: String?
    @OptionGroup var common: Common
    func run() throws {
      var request: [String: JSONValue] = ["Command": "plugins.status", "Name": .string(name)]
      if let data { request["Data"] = .string(data) }
      try common.run(request) { response in
        var lines = ["code: \(PluginsTable.text(response["Code"]))"]
        if case .array(let results) = response["Results"] { lines += results.map { "  \(PluginsTable.text($0))" } }
        return lines.joined(separator: "\n")
      }
    }
  }

  struct Apply: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Send a payload to a plugin's Apply.")
    @Argument(help: "The plugin's name.") var name: String
    @Option(help: "The payload's type URL.") var typeUrl: String
    @Option(help: "The payload, as text.") var value: String?
    @Option(help: "The payload, base64-encoded.") var valueBase64: String?
    @OptionGroup var common: Common
    func run() throws {
      var request: [String: JSONValue] = [
        "Command": "plugins.apply", "Name": .string(name), "TypeURL": .string(typeUrl),
      ]
      if let value { request["Value"] = .string(value) }
      if let valueBase64 { request["ValueBase64"] = .string(valueBase64) }
      try common.run(request) { _ in "applied" }
    }
  }

  struct Restart: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Stop a plugin and launch it again.")
    @Argument(help: "The plugin's name.") var name: String
    @OptionGroup var common: Common
    func run() throws {
      try common.run(["Command": "plugins.restart", "Name": .string(name)]) {
        PluginsTable.render([$0["Plugin"] ?? .null])
      }
    }
  }

  struct Remove: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Stop a plugin and forget it.")
    @Argument(help: "The plugin's name.") var name: String
    @Flag(help: "Ask the plugin to clean up, and delete its state directory and logs.") var cleanup = false
    @OptionGroup var common: Common
    func run() throws {
      try common.run(["Command": "plugins.remove", "Name": .string(name), "Cleanup": .bool(cleanup)]) { _ in
        "removed \(name)\(cleanup ? " and its state" : "")"
      }
    }
  }

  struct Logs: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Show the end of a plugin's stderr and error log.")
    @Argument(help: "The plugin's name.") var name: String
    @Option(help: "How many lines.") var lines = 50
    @OptionGroup var common: Common
    func run() throws {
      try common.run(["Command": "plugins.logs", "Name": .string(name), "Lines": .number(Double(lines))]) {
        response in
        guard case .array(let lines) = response["Lines"] else { return "" }
        return lines.map { PluginsTable.text($0) }.joined(separator: "\n")
      }
    }
  }
}

/// The human table of plugins.
enum PluginsTable {
  static func render(_ plugins: [JSONValue]) -> String {
    var rows = [["NAME", "VERSION", "REV", "PROTOCOL", "STATE", "PID", "RESTARTS", "HEALTH", "LAST EXIT"]]
    for case .object(let plugin) in plugins {
      var health = "-"
      if case .object(let object) = plugin["Health"], case .number(let code) = object["Code"] {
        health = code == 0 ? "ok" : "code \(Int(code))"
      }
      rows.append([
        text(plugin["Name"]), text(plugin["Version"]), text(plugin["Revision"]), text(plugin["Protocol"]),
        text(plugin["State"]), text(plugin["Pid"]), text(plugin["Restarts"]), health, text(plugin["LastExit"]),
      ])
    }
    let widths = (0..<rows[0].count).map { column in rows.map { $0[column].count }.max() ?? 0 }
    return rows.map { row in
      row.enumerated().map { index, cell in
        index == row.count - 1 ? cell : cell.padding(toLength: widths[index], withPad: " ", startingAt: 0)
      }.joined(separator: "  ")
    }.joined(separator: "\n")
  }

  static func text(_ value: JSONValue?) -> String {
    switch value {
    case .string(let text): text
    case .number(let number): number.rounded() == number ? String(Int(number)) : String(number)
    case .bool(let flag): String(flag)
    case nil, .null: "-"
    default: "\(value!)"
    }
  }
}
