import DeckhandAgent
import DeckhandCore
import DeckhandPluginHost
import DeckhandTestSupport
import Foundation
import Testing

@Suite("Signed plugins")
struct SigningTests {
  /// A copy of the test plugin's binary, so that tests can replace it.
  static func copyOfTestPlugin(_ workspace: borrowing TestWorkspace, _ name: String) throws -> String {
    let path = "\(workspace.root)/\(name)"
    try FileManager.default.copyItem(atPath: Fixtures.testPlugin, toPath: path)
    return path
  }

  @Test("a signature verifies, and any change to the manifest, the binary or the key is refused")
  func signAndVerify() throws {
    let workspace = try TestWorkspace()
    let binary = try Self.copyOfTestPlugin(workspace, "tp-bin")
    let keys = "\(workspace.root)/keys"
    let release = try PluginSigning.generateKey(named: "release", in: keys)
    let other = try PluginSigning.generateKey(named: "other", in: "\(workspace.root)/other-keys")
    var info = stat()
    #expect(stat(release.privateKeyPath, &info) == 0 && info.st_mode & 0o777 == 0o600)
    #expect(throws: DeckhandError.self) { try PluginSigning.generateKey(named: "release", in: keys) }

    let manifest = try workspace.manifestFile(["name": "tp", "version": "1.0.0", "entrypoint": binary])
    let signaturePath = try PluginSigning.sign(manifestAt: manifest, keyFile: release.privateKeyPath)
    let text = try String(contentsOfFile: manifest, encoding: .utf8)
    let signature = try String(contentsOfFile: signaturePath, encoding: .utf8)

    // Trusted folder: only the release key's public half.
    let trusted = "\(workspace.root)/trusted"
    try FileManager.default.createDirectory(atPath: trusted, withIntermediateDirectories: true)
    try FileManager.default.copyItem(atPath: release.publicKeyPath, toPath: "\(trusted)/release.pub")
    let policy = try TrustPolicy(directory: trusted, requireSigned: true)
    #expect(try policy.verify(manifestText: text, signature: signature, entrypoint: binary, plugin: "tp") == "release")

    func refusal(_ body: () throws -> Void) -> String {
      do {
        try body()
        return "accepted"
      } catch let error as DeckhandError {
        #expect(error.code == .signatureInvalid)
        return error.message
      } catch {
        return "\(error)"
      }
    }
    #expect(
      refusal { try policy.verify(manifestText: text + " ", signature: signature, entrypoint: binary, plugin: "tp") }
        .contains("manifest changed after it was signed"))
    #expect(
      refusal { try policy.verify(manifestText: text, signature: nil, entrypoint: binary, plugin: "tp") }
        .contains("is not signed"))
    let tampered = signature.replacingOccurrences(of: "\"signature\":\"", with: "\"signature\":\"AAAA")
    #expect(
      refusal { try policy.verify(manifestText: text, signature: tampered, entrypoint: binary, plugin: "tp") }
        .contains("does not verify"))
    #expect(
      refusal { try policy.verify(manifestText: text, signature: "{}", entrypoint: binary, plugin: "tp") }
        .contains("not a deckhand-signature-v1 document"))
    let otherSignature = try {
      let path = try workspace.manifestFile(["name": "tp", "version": "1.0.0", "entrypoint": binary])
      return try String(
        contentsOfFile: PluginSigning.sign(manifestAt: path, keyFile: other.privateKeyPath), encoding: .utf8)
    }()
    #expect(
      refusal { try policy.verify(manifestText: text, signature: otherSignature, entrypoint: binary, plugin: "tp") }
        .contains("does not trust"))
    // The binary changes after signing.
    try Data("#!/bin/sh\nexit 0\n".utf8).write(to: URL(fileURLWithPath: binary))
    #expect(
      refusal { try policy.verify(manifestText: text, signature: signature, entrypoint: binary, plugin: "tp") }
        .contains("is not the binary that was signed"))

    // Without --require-signed, unsigned plugins pass; with it and no key, the agent cannot start.
    #expect(
      try TrustPolicy(directory: trusted, requireSigned: false).verify(
        manifestText: text, signature: nil, entrypoint: binary, plugin: "tp") == nil)
    #expect(throws: DeckhandError.self) {
      try TrustPolicy(directory: "\(workspace.root)/keys-none", requireSigned: true)
    }
    #expect(throws: DeckhandError.self) { try TrustPolicy(directory: nil, requireSigned: true) }
  }

  @Test("an agent with --require-signed refuses unsigned plugins at install and a changed binary at launch")
  func agentPolicy() async throws {
    let workspace = try TestWorkspace()
    let tag = "signed-\(UUID().uuidString.prefix(6))"
    let binary = try Self.copyOfTestPlugin(workspace, "tp-signed")
    let keys = try await runCommand(Fixtures.deckhand, ["keys", "generate", "ops", "--dir", "\(workspace.root)/keys"])
    #expect(keys.status == 0, "\(keys.stderr)")
    let trusted = "\(workspace.root)/trusted"
    try FileManager.default.createDirectory(atPath: trusted, withIntermediateDirectories: true)
    try FileManager.default.copyItem(atPath: "\(workspace.root)/keys/ops.pub", toPath: "\(trusted)/ops.pub")

    let unsigned = try workspace.manifestFile(Fixtures.testPlugin("plain", args: [], tag: tag))
    let signed = try workspace.manifestFile(
      ["name": "signed", "version": "1.0.0", "entrypoint": binary, "args": ["--tag", tag]])
    let sign = try await runCommand(
      Fixtures.deckhand, ["plugin", "sign", signed, "--key", "\(workspace.root)/keys/ops.key"])
    #expect(sign.status == 0, "\(sign.stderr)")

    let agent = try AgentProcess(workspace, extra: ["--trusted-keys", trusted, "--require-signed"])
    try await agent.waitUntilServing()
    let refused = try await agent.call(["Command": "plugins.install", "Manifest": .string(unsigned)])
    #expect(status(refused) == 105)
    #expect(message(refused).contains("is not signed"), "\(message(refused))")
    #expect(try await agent.plugin("plain") == nil)
    #expect(processes(withArgument: tag).isEmpty)

    let accepted = try await agent.call(["Command": "plugins.install", "Manifest": .string(signed)])
    #expect(status(accepted) == 0, "\(accepted)")
    let running = try #require(pid(try await agent.plugin("signed")))

    // The binary is replaced behind the agent's back: the next launch is refused, and nothing runs.
    try FileManager.default.removeItem(atPath: binary)
    try FileManager.default.copyItem(atPath: Fixtures.echo, toPath: binary)
    _ = try await agent.call(["Command": "plugins.restart", "Name": "signed"])
    #expect(await eventually { !isAlive(running) })
    let after = try await agent.plugin("signed")
    #expect(after?["State"] == "failed" || after?["State"] == "restarting")
    #expect(lastExitText(after).contains("is not the binary that was signed"), "\(after ?? [:])")
    #expect(processes(withArgument: tag).isEmpty)
    agent.signal(SIGTERM)
    #expect(await agent.waitForExit())
  }
}

func lastExitText(_ plugin: [String: JSONValue]?) -> String {
  if case .string(let text) = plugin?["LastExit"] { return text }
  return ""
}
