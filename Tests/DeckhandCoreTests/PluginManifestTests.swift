import DeckhandCore
import Foundation
import Testing

@Suite("Plugin manifest parsing")
struct PluginManifestTests {
  let path = "/srv/plugins/echo/plugin.json"

  func parse(_ json: String) throws -> PluginManifest {
    try PluginManifest.parse(Data(json.utf8), path: path)
  }

  func problems(_ json: String) -> String {
    do {
      _ = try parse(json)
      return "parsed without error"
    } catch let error as DeckhandError {
      return error.message
    } catch {
      return "unexpected error \(error)"
    }
  }

  @Test("a minimal manifest gets every default")
  func defaults() throws {
    let manifest = try parse(#"{"name": "echo", "version": "1.0.0", "entrypoint": "bin/echo"}"#)
    #expect(manifest.name == "echo")
    #expect(manifest.entrypoint == "/srv/plugins/echo/bin/echo")
    #expect(manifest.directory == "/srv/plugins/echo")
    #expect(manifest.launchProtocol == .guestAgent)
    #expect(manifest.handshake == .deckhand)
    #expect(manifest.sha256 == nil)
    #expect(manifest.config == nil)
    #expect(manifest.timeouts.start == .seconds(30))
    #expect(manifest.timeouts.stop == .seconds(10))
    #expect(manifest.timeouts.call == .seconds(5))
    #expect(manifest.health.interval == .seconds(10))
    #expect(manifest.health.timeout == .seconds(2))
    #expect(manifest.health.failures == 2)
    #expect(manifest.restart.initialBackoff == .seconds(1))
    #expect(manifest.restart.maxBackoff == .seconds(60))
  }

  @Test("every field is read")
  func fullManifest() throws {
    let manifest = try parse(
      """
      { "name": "kv", "version": "2.1", "entrypoint": "/opt/kv/kv", "args": ["-v", "--x=1"],
        "protocol": "go-plugin",
        "handshake": {"cookie_key": "KV_COOKIE", "cookie_value": "abc", "app_version": 3},
        "sha256": "\(String(repeating: "AB", count: 32))",
        "config": {"level": 3, "tags": ["a"], "on": true},
        "env": {"KV_MODE": "fast"},
        "timeouts": {"start_s": 0.5, "stop_s": 2, "call_s": 1.25},
        "health": {"interval_s": 3, "timeout_s": 1, "failures": 4},
        "restart": {"initial_backoff_s": 0.2, "max_backoff_s": 5} }
      """)
    #expect(manifest.entrypoint == "/opt/kv/kv")
    #expect(manifest.args == ["-v", "--x=1"])
    #expect(manifest.launchProtocol == .goPlugin)
    #expect(manifest.handshake == .init(cookieKey: "KV_COOKIE", cookieValue: "abc", appVersion: 3))
    #expect(manifest.sha256 == String(repeating: "ab", count: 32))
    #expect(manifest.config == .object(["level": .number(3), "tags": .array([.string("a")]), "on": .bool(true)]))
    #expect(manifest.environment == ["KV_MODE": "fast"])
    #expect(manifest.timeouts.start == .milliseconds(500))
    #expect(manifest.timeouts.call == .milliseconds(1250))
    #expect(manifest.health.failures == 4)
    #expect(manifest.restart.initialBackoff == .milliseconds(200))
    #expect(manifest.restart.maxBackoff == .seconds(5))
  }

  @Test("a string config is kept as a string")
  func stringConfig() throws {
    let manifest = try parse(#"{"name": "a", "version": "1", "entrypoint": "./a", "config": "x=1"}"#)
    #expect(manifest.config == .string("x=1"))
    #expect(manifest.entrypoint == "/srv/plugins/echo/a")
  }

  @Test(
    "errors name the file, the field and what is wrong",
    arguments: [
      (#"{"version": "1", "entrypoint": "a"}"#, #"field "name": is required"#),
      (#"{"name": "", "version": "1", "entrypoint": "a"}"#, #"field "name": must be a non-empty string"#),
      (#"{"name": "a b", "version": "1", "entrypoint": "a"}"#, #"field "name": "a b" is not a valid name"#),
      (#"{"name": "..", "version": "1", "entrypoint": "a"}"#, #"field "name": ".." is not a valid name"#),
      (#"{"name": "a", "version": 1, "entrypoint": "a"}"#, #"field "version": must be a non-empty string, got 1"#),
      (#"{"name": "a", "version": "1"}"#, #"field "entrypoint": is required"#),
      (
        #"{"name": "a", "version": "1", "entrypoint": "a", "protocol": "grpc"}"#,
        #"field "protocol": must be one of "guest-agent", "go-plugin", got "grpc""#
      ),
      (
        #"{"name": "a", "version": "1", "entrypoint": "a", "sha256": "abc"}"#,
        #"field "sha256": must be 64 hexadecimal"#
      ),
      (
        #"{"name": "a", "version": "1", "entrypoint": "a", "config": 3}"#,
        #"field "config": must be a string or a JSON object, got a number"#
      ),
      (
        #"{"name": "a", "version": "1", "entrypoint": "a", "env": {"X": 1}}"#,
        #"field "env.X": must be a string, got a number"#
      ),
      (
        #"{"name": "a", "version": "1", "entrypoint": "a", "timeouts": {"start_s": -1}}"#,
        #"field "timeouts.start_s": must be a number of seconds greater than 0, got -1"#
      ),
      (
        #"{"name": "a", "version": "1", "entrypoint": "a", "timeouts": {"start": 1}}"#,
        #"field "timeouts.start": unknown field"#
      ),
      (
        #"{"name": "a", "version": "1", "entrypoint": "a", "health": {"failures": 0}}"#,
        #"field "health.failures": must be a whole number from 1 to 1000, got 0"#
      ),
      (
        #"{"name": "a", "version": "1", "entrypoint": "a", "restart": {"initial_backoff_s": 5, "max_backoff_s": 1}}"#,
        #"field "restart.max_backoff_s": must not be smaller"#
      ),
      (#"{"name": "a", "version": "1", "entrypoint": "a", "entrypiont": "b"}"#, #"field "entrypiont": unknown field"#),
      (
        #"{"name": "a", "version": "1", "entrypoint": "a", "handshake": {"app_version": "1"}}"#,
        #"field "handshake.app_version": must be a whole number"#
      ),
      (
        #"{"name": "a", "version": "1", "entrypoint": "a", "args": ["x", 2]}"#,
        #"field "args[1]": must be a string, got a number"#
      ),
      (#"["not an object"]"#, "the manifest must be a JSON object, got an array"),
      (#"{"name": "a", "#, "not valid JSON"),
    ])
  func errors(json: String, expected: String) {
    let message = problems(json)
    #expect(message.hasPrefix(path), "\(message)")
    #expect(message.contains(expected), "\(message)")
  }

  @Test("every problem is reported at once")
  func manyProblems() {
    let message = problems(#"{"name": 1, "protocol": "x", "timeouts": {"call_s": 0}}"#)
    #expect(message.contains("5 problems"), "\(message)")
    for field in ["name", "version", "entrypoint", "protocol", "timeouts.call_s"] {
      #expect(message.contains("field \"\(field)\""), "\(field) missing from \(message)")
    }
  }

  @Test("permissions.commands patterns: exact names, and a trailing * for a prefix")
  func commandPatterns() throws {
    let manifest = try parse(
      #"{"name": "p", "version": "1", "entrypoint": "p", "permissions": {"commands": ["p.*", "exact"]}}"#)
    #expect(manifest.permissions.allowsCommand("p.get"))
    #expect(manifest.permissions.allowsCommand("p."))
    #expect(manifest.permissions.allowsCommand("exact"))
    #expect(!manifest.permissions.allowsCommand("exact.more"))
    #expect(!manifest.permissions.allowsCommand("q.get"))
    #expect(!manifest.permissions.allowsCommand("p"))
    var any = PluginManifest.Permissions()
    any.commands = ["*"]
    #expect(any.allowsCommand("anything"))
    #expect(!PluginManifest.Permissions().allowsCommand("anything"))
  }
}
