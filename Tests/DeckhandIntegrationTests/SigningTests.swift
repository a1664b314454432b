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

  /// A package folder: plugin.json, the test plugin's binary and a module
  /// beside it, as a signed Python plugin would have.
  static func package(_ workspace: borrowing TestWorkspace, _ name: String, args: [String] = []) throws -> String {
    let folder = "\(workspace.root)/\(name)"
    try FileManager.default.createDirectory(atPath: "\(folder)/lib", withIntermediateDirectories: true)
    try FileManager.default.copyItem(atPath: Fixtures.testPlugin, toPath: "\(folder)/tp-bin")
    try Data("print('helper')\n".utf8).write(to: URL(fileURLWithPath: "\(folder)/lib/helper.py"))
    let fields: JSONValue = .object([
      "name": .string(name), "version": "1.0.0", "entrypoint": "tp-bin", "args": .array(args.map { .string($0) }),
    ])
    try Data(fields.serialized() ?? []).write(to: URL(fileURLWithPath: "\(folder)/plugin.json"))
    return "\(folder)/plugin.json"
  }

  @Test("a signature covers the manifest, every file of the package and the entrypoint; what runs is the checked copy")
  func signAndVerify() throws {
    let workspace = try TestWorkspace()
    let manifestPath = try Self.package(workspace, "tp")
    let folder = (manifestPath as NSString).deletingLastPathComponent
    let keys = "\(workspace.root)/keys"
    let release = try PluginSigning.generateKey(named: "release", in: keys)
    let other = try PluginSigning.generateKey(named: "other", in: "\(workspace.root)/other-keys")
    var info = stat()
    #expect(stat(release.privateKeyPath, &info) == 0 && info.st_mode & 0o777 == 0o600)
    #expect(throws: DeckhandError.self) { try PluginSigning.generateKey(named: "release", in: keys) }

    let signaturePath = try PluginSigning.sign(manifestAt: manifestPath, keyFile: release.privateKeyPath)
    let bytes = Array(try Data(contentsOf: URL(fileURLWithPath: manifestPath)))
    let signature = try String(contentsOfFile: signaturePath, encoding: .utf8)
    let manifest = try PluginManifest.load(path: manifestPath)

    // Trusted folder: only the release key's public half.
    let trusted = "\(workspace.root)/trusted"
    try FileManager.default.createDirectory(atPath: trusted, withIntermediateDirectories: true)
    try FileManager.default.copyItem(atPath: release.publicKeyPath, toPath: "\(trusted)/release.pub")
    let policy = try TrustPolicy(directory: trusted, requireSigned: true)
    let signed = try #require(try policy.verify(manifestBytes: bytes, signature: signature, plugin: "tp"))
    #expect(signed.keyName == "release")

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
      refusal { _ = try policy.verify(manifestBytes: bytes + [0x20], signature: signature, plugin: "tp") }
        .contains("manifest changed after it was signed"))
    #expect(
      refusal { _ = try policy.verify(manifestBytes: bytes, signature: nil, plugin: "tp") }.contains("is not signed"))
    let tampered = signature.replacingOccurrences(of: "\"signature\":\"", with: "\"signature\":\"AAAA")
    #expect(
      refusal { _ = try policy.verify(manifestBytes: bytes, signature: tampered, plugin: "tp") }
        .contains("does not verify"))
    #expect(
      refusal { _ = try policy.verify(manifestBytes: bytes, signature: "{}", plugin: "tp") }
        .contains("not a deckhand-signature-v2 document"))
    let old = signature.replacingOccurrences(of: "deckhand-signature-v2", with: "deckhand-signature-v1")
    #expect(
      refusal { _ = try policy.verify(manifestBytes: bytes, signature: old, plugin: "tp") }
        .contains("covers only the entrypoint"))
    let otherSignature = try {
      let path = try Self.package(workspace, "tp-other")
      return try String(
        contentsOfFile: PluginSigning.sign(manifestAt: path, keyFile: other.privateKeyPath), encoding: .utf8)
    }()
    #expect(
      refusal { _ = try policy.verify(manifestBytes: bytes, signature: otherSignature, plugin: "tp") }
        .contains("does not trust"))

    // The checked copy: root's, private without a group, and what runs.
    let root = "\(workspace.root)/verified"
    let verified = try VerifiedPackage.prepare(manifest, signed: signed, root: root)
    let relocated = verified.relocate(manifest)
    #expect(relocated.entrypoint == "\(verified.directory)/tp-bin" && relocated.directory == verified.directory)
    #expect(
      FileManager.default.contents(atPath: "\(verified.directory)/lib/helper.py") == Data("print('helper')\n".utf8))
    #expect(stat(verified.directory, &info) == 0 && info.st_uid == 0 && info.st_mode & 0o077 == 0)
    // The original changes after the check: the copy still runs and still checks.
    try Data("#!/bin/sh\nexit 0\n".utf8).write(to: URL(fileURLWithPath: "\(folder)/tp-bin"))
    try verified.check(manifest, plugin: "tp")
    // Any file of the package changed, added or removed, or the binary, is refused at install.
    try FileManager.default.removeItem(atPath: verified.directory)
    #expect(
      refusal { _ = try VerifiedPackage.prepare(manifest, signed: signed, root: root) }
        .contains("not the package that was signed"))
    for change in ["module", "added", "removed"] {
      try? FileManager.default.removeItem(atPath: folder)
      _ = try Self.package(workspace, "tp")
      switch change {
      case "module": try Data("import os\n".utf8).write(to: URL(fileURLWithPath: "\(folder)/lib/helper.py"))
      case "added": _ = FileManager.default.createFile(atPath: "\(folder)/lib/extra.py", contents: Data())
      default: try FileManager.default.removeItem(atPath: "\(folder)/lib/helper.py")
      }
      #expect(
        refusal { _ = try VerifiedPackage.prepare(manifest, signed: signed, root: root) }
          .contains("not the package that was signed"), "\(change)")
    }
    // The copy tampered with (by root) fails the check before a launch.
    try? FileManager.default.removeItem(atPath: folder)
    _ = try Self.package(workspace, "tp")
    let fresh = try VerifiedPackage.prepare(manifest, signed: signed, root: root)
    try Data("tampered".utf8).write(to: URL(fileURLWithPath: "\(fresh.directory)/lib/helper.py"))
    #expect(refusal { try fresh.check(manifest, plugin: "tp") }.contains("changed since it was checked"))
    // A set-uid file in a package is refused.
    chmod("\(folder)/lib/helper.py", 0o4755)
    #expect(refusal { _ = try PackageTree.digest(of: folder) }.contains("set-uid"))

    // Without --require-signed, unsigned plugins pass; with it and no key, the agent cannot start.
    #expect(
      try TrustPolicy(directory: trusted, requireSigned: false).verify(
        manifestBytes: bytes, signature: nil, plugin: "tp")
        == nil)
    #expect(throws: DeckhandError.self) {
      try TrustPolicy(directory: "\(workspace.root)/keys-none", requireSigned: true)
    }
    #expect(throws: DeckhandError.self) { try TrustPolicy(directory: nil, requireSigned: true) }
  }

  @Test("an agent with --require-signed refuses unsigned plugins, runs the checked copy, and refuses a changed one")
  func agentPolicy() async throws {
    let workspace = try TestWorkspace()
    let tag = "signed-\(UUID().uuidString.prefix(6))"
    let keys = try await runCommand(Fixtures.deckhand, ["keys", "generate", "ops", "--dir", "\(workspace.root)/keys"])
    #expect(keys.status == 0, "\(keys.stderr)")
    let trusted = "\(workspace.root)/trusted"
    try FileManager.default.createDirectory(atPath: trusted, withIntermediateDirectories: true)
    try FileManager.default.copyItem(atPath: "\(workspace.root)/keys/ops.pub", toPath: "\(trusted)/ops.pub")

    let unsigned = try workspace.manifestFile(Fixtures.testPlugin("plain", args: [], tag: tag))
    let signed = try Self.package(workspace, "signed", args: ["--tag", tag])
    let folder = (signed as NSString).deletingLastPathComponent
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
    let executable = try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(running)/exe")
    let copies = "\(workspace.paths.stateDirectory)/verified/signed/"
    #expect(executable.hasPrefix(copies), "it runs the checked copy, not \(executable)")

    // The binary is replaced behind the agent's back: what runs after a restart is still the signed copy.
    try FileManager.default.removeItem(atPath: "\(folder)/tp-bin")
    try FileManager.default.copyItem(atPath: Fixtures.echo, toPath: "\(folder)/tp-bin")
    _ = try await agent.call(["Command": "plugins.restart", "Name": "signed"])
    #expect(await eventually { !isAlive(running) })
    #expect(await eventually { (try? await agent.plugin("signed"))?["State"] == "running" })
    let restarted = try #require(pid(try await agent.plugin("signed")))
    #expect(try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(restarted)/exe") == executable)
    // Installing the changed package again is refused.
    let again = try await agent.call(["Command": "plugins.install", "Manifest": .string(signed)])
    #expect(message(again).contains("not the package that was signed"), "\(again)")

    // The copy itself changed: the next launch is refused, and nothing runs.
    try Data("tampered".utf8).write(
      to: URL(fileURLWithPath: executable.replacingOccurrences(of: "tp-bin", with: "lib/helper.py")))
    _ = try await agent.call(["Command": "plugins.restart", "Name": "signed"])
    #expect(await eventually { !isAlive(restarted) })
    let after = try await agent.plugin("signed")
    #expect(after?["State"] == "failed" || after?["State"] == "restarting")
    #expect(lastExitText(after).contains("changed since it was checked"), "\(after ?? [:])")
    #expect(processes(withArgument: tag).isEmpty)
    agent.signal(SIGTERM)
    #expect(await agent.waitForExit())
  }
}

func lastExitText(_ plugin: [String: JSONValue]?) -> String {
  if case .string(let text) = plugin?["LastExit"] { return text }
  return ""
}
