import DeckhandAgent
import DeckhandClient
import DeckhandCore
import DeckhandTestSupport
import Foundation
import Testing

@Suite("AgentConfiguration: the join token kept off the command line")
struct AgentConfigurationTests {
  private func file(_ text: String, mode: mode_t, in workspace: borrowing TestWorkspace) throws -> String {
    let path = try workspace.write("token-\(UUID().uuidString.prefix(6))", text)
    chmod(path, mode)
    return path
  }

  @Test("a token file only its owner reads gives the token, trimmed")
  func readsPrivateFile() throws {
    let workspace = try TestWorkspace()
    #expect(
      try AgentConfiguration.readJoinToken(file: file("DHTKN-1-abc\n", mode: 0o600, in: workspace)) == "DHTKN-1-abc")
    #expect(
      try AgentConfiguration.readJoinToken(file: file(" DHTKN-1-abc ", mode: 0o640, in: workspace)) == "DHTKN-1-abc")
  }

  @Test(
    "a token file others can read, an empty one, a folder or a missing one is refused, saying why",
    arguments: [
      ("world", "readable by other users"), ("empty", "holds no token"), ("folder", "not a regular file"),
      ("missing", "cannot read"),
    ])
  func refuses(kind: String, expected: String) throws {
    let workspace = try TestWorkspace()
    let path: String
    switch kind {
    case "world": path = try file("DHTKN-1-abc", mode: 0o644, in: workspace)
    case "empty": path = try file("\n", mode: 0o600, in: workspace)
    case "folder": path = workspace.root
    default: path = workspace.root + "/none"
    }
    #expect {
      try AgentConfiguration.readJoinToken(file: path)
    } throws: { error in
      (error as? DeckhandError)?.code == .configurationInvalid && "\(error)".contains(expected)
    }
  }

  @Test("join_token_file in the TOML config is read the same way")
  func toml() throws {
    let workspace = try TestWorkspace()
    let token = try file("DHTKN-1-fromfile", mode: 0o600, in: workspace)
    let config = try workspace.write("agent.toml", "join_token_file = \"\(token)\"\n")
    var configuration = AgentConfiguration.defaults()
    try configuration.apply(tomlFile: config)
    #expect(configuration.joinToken == "DHTKN-1-fromfile")
  }

  @Test("package limits come from the TOML config; a zero or negative limit is refused")
  func packageLimits() throws {
    let workspace = try TestWorkspace()
    let config = try workspace.write(
      "agent.toml", "package_max_mb = 2\npackage_max_unpacked_mb = 3\npackage_max_files = 40\n")
    var configuration = AgentConfiguration.defaults()
    #expect(configuration.packageLimits == PackageArchive.Limits())
    try configuration.apply(tomlFile: config)
    #expect(configuration.packageLimits.compressedBytes == 2 << 20)
    #expect(configuration.packageLimits.stream.unpackedBytes == 3 << 20)
    #expect(configuration.packageLimits.stream.entries == 40)
    let zero = try workspace.write("zero.toml", "package_max_files = 0\n")
    #expect(throws: DeckhandError.self) { try configuration.apply(tomlFile: zero) }
  }

  @Test("otlp_endpoint in the TOML config sets where traces go; a number there is refused")
  func otlpEndpoint() throws {
    let workspace = try TestWorkspace()
    var configuration = AgentConfiguration.defaults()
    #expect(configuration.otlpEndpoint == nil)
    try configuration.apply(tomlFile: try workspace.write("agent.toml", "otlp_endpoint = \"http://127.0.0.1:4317\"\n"))
    #expect(configuration.otlpEndpoint == "http://127.0.0.1:4317")
    let wrong = try workspace.write("wrong.toml", "otlp_endpoint = 4317\n")
    #expect(throws: DeckhandError.self) { try configuration.apply(tomlFile: wrong) }
  }
}
