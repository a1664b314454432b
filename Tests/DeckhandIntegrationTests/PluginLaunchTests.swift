import DeckhandCore
import DeckhandPluginHost
import DeckhandPluginProtocol
import DeckhandTestSupport
import Foundation
import Testing

@Suite("Launching plugins: both contracts, other languages, bad launches")
struct PluginLaunchTests {
  func expectAllPassed(_ report: PluginConformanceCheck.Report, _ names: [String]) {
    #expect(report.ok, "\(report.checks.filter { !$0.ok })")
    #expect(report.checks.map(\.name) == names)
  }

  static let guestAgentChecks = ["launch", "start", "status", "status_with_data", "apply", "stop", "exit"]
  static let goPluginChecks = ["launch", "health", "start", "status", "status_with_data", "apply", "stop", "exit"]

  @Test("the Swift example passes the conformance check under the guest-agent contract")
  func echoGuestAgent() async throws {
    let workspace = try TestWorkspace()
    let manifest = try workspace.manifest([
      "name": "echo", "version": "1.0.0", "entrypoint": Fixtures.echo, "config": ["greeting": "hi"],
    ])
    let report = await PluginConformanceCheck(launcher: workspace.launcher).run(manifest)
    expectAllPassed(report, Self.guestAgentChecks)
    let status = report.checks.first { $0.name == "status" }?.detail ?? ""
    #expect(status.contains("state_directory=\(try workspace.paths.pluginStateDirectory("echo"))"))
    #expect(status.contains(#"config=struct:{\"greeting\":\"hi\"}"#), "\(status)")
    #expect(FileManager.default.fileExists(atPath: try workspace.paths.pluginStateDirectory("echo")))
  }

  @Test("the Swift example passes the conformance check under the go-plugin contract")
  func echoGoPlugin() async throws {
    let workspace = try TestWorkspace()
    let manifest = try workspace.manifest([
      "name": "echo-gp", "version": "1.0.0", "entrypoint": Fixtures.echo, "protocol": "go-plugin",
      "config": "plain",
    ])
    let report = await PluginConformanceCheck(launcher: workspace.launcher).run(manifest)
    expectAllPassed(report, Self.goPluginChecks)
    #expect(report.checks.first?.detail.contains(workspace.paths.runtimeDirectory) == true)
  }

  @Test("a Python plugin (grpcio) passes the conformance check")
  func python() async throws {
    let workspace = try TestWorkspace()
    var manifest = try PluginManifest.load(path: "\(Fixtures.packageRoot)/Examples/PythonEcho/plugin.json")
    manifest.timeouts.start = .seconds(20)
    let report = await PluginConformanceCheck(launcher: workspace.launcher).run(manifest)
    expectAllPassed(report, Self.guestAgentChecks)
    #expect(report.checks.first { $0.name == "status" }?.detail.contains("language=python") == true)
  }

  @Test("a plugin built with HashiCorp go-plugin runs unchanged")
  func goPluginPeer() async throws {
    let binary = "\(Fixtures.goPeerBin)/goplugin-plugin"
    try #require(
      FileManager.default.isExecutableFile(atPath: binary),
      "build the go-plugin peer first: ../shared/peers/goplugin/run.sh --build (.ci/run does)")
    let workspace = try TestWorkspace()
    let manifest = try workspace.manifest([
      "name": "gapeer", "version": "1.0.1", "entrypoint": binary, "protocol": "go-plugin",
      "handshake": ["cookie_key": "GAPEER_PLUGIN_COOKIE", "cookie_value": "guest-agent-plugin-v1", "app_version": 1],
    ])
    let report = await PluginConformanceCheck(launcher: workspace.launcher).run(manifest)
    expectAllPassed(report, Self.goPluginChecks)
  }

  @Test("a Swift plugin runs under HashiCorp go-plugin's own host")
  func swiftUnderGoPluginHost() async throws {
    let host = "\(Fixtures.goPeerBin)/goplugin-bench"
    try #require(
      FileManager.default.isExecutableFile(atPath: host),
      "build the go-plugin peer first: ../shared/peers/goplugin/run.sh --build (.ci/run does)")
    let result = try await runCommand(
      host,
      [
        "-mode", "goplugin", "-plugin", Fixtures.echo, "-launches", "2", "-n", "200", "-warmup", "10", "-dur", "200ms",
        "-apply-n", "20", "-idle-wait", "10ms", "-prefix", "swift",
      ])
    #expect(result.status == 0, "\(result.stderr)")
    #expect(result.stdout.contains("swift.launch_median"), "\(result.stdout)")
    #expect(result.stdout.contains("swift.getstatus_seq_p50"), "\(result.stdout)")
    #expect(result.stdout.contains("swift.apply_64k_throughput"), "\(result.stdout)")
  }

  @Test("an SDK plugin's MainActor work runs on its main thread, which serves Dispatch's main queue")
  func mainActor() async throws {
    let workspace = try TestWorkspace()
    let tag = UUID().uuidString
    let manifest = try workspace.manifest(Fixtures.testPlugin("main-actor", args: [], tag: tag))
    let plugin = try await workspace.launcher.launch(manifest)
    let status = try await LeanPluginTransport().withConnection(to: plugin.address) { connection in
      try await connection.getStatus(data: "main-actor", timeout: .seconds(5))
    }
    #expect(status.results == ["main-actor-thread=main"])
    await plugin.kill()
  }

  @Test("a plugin slow to start is waited for within start_s, and killed after it")
  func slowStart() async throws {
    let workspace = try TestWorkspace()
    let tag = UUID().uuidString
    let patient = try workspace.manifest(
      Fixtures.testPlugin("slow", args: ["--slow-start-ms", "1200"], tag: tag, extra: ["timeouts": ["start_s": 10]]))
    let begin = ContinuousClock.now
    let plugin = try await workspace.launcher.launch(patient)
    #expect(begin.duration(to: .now) >= .milliseconds(1200))
    await plugin.kill()

    let impatientTag = UUID().uuidString
    let impatient = try workspace.manifest(
      Fixtures.testPlugin(
        "slow2", args: ["--slow-start-ms", "5000"], tag: impatientTag, extra: ["timeouts": ["start_s": 0.4]]))
    do {
      _ = try await workspace.launcher.launch(impatient)
      Issue.record("launch succeeded")
    } catch let error as DeckhandError {
      #expect(error.code == .startTimeout)
      #expect(error.message.contains("timeouts.start_s"), "\(error.message)")
    }
    #expect(processes(withArgument: impatientTag).isEmpty)
  }

  @Test("stdout chatter before serving does not matter", arguments: ["guest-agent", "go-plugin"])
  func chatter(launchProtocol: String) async throws {
    let workspace = try TestWorkspace()
    let manifest = try workspace.manifest(
      Fixtures.testPlugin(
        "chatty", args: ["--chatter", "40"], tag: UUID().uuidString, extra: ["protocol": launchProtocol]))
    let report = await PluginConformanceCheck(launcher: workspace.launcher).run(manifest)
    #expect(report.ok, "\(report.checks.filter { !$0.ok })")
  }

  @Test("a checksum mismatch refuses the launch; the right checksum launches")
  func checksum() async throws {
    let workspace = try TestWorkspace()
    let tag = UUID().uuidString
    let wrong = String(repeating: "0", count: 64)
    let manifest = try workspace.manifest(
      Fixtures.testPlugin("pinned", args: [], tag: tag, extra: ["sha256": wrong]))
    do {
      _ = try await workspace.launcher.launch(manifest)
      Issue.record("launch succeeded")
    } catch let error as DeckhandError {
      #expect(error.code == .checksumMismatch)
      #expect(error.message.contains(wrong))
      #expect(error.message.contains(Fixtures.testPlugin))
    }
    #expect(processes(withArgument: tag).isEmpty)

    let right = try FileDigest.sha256(ofFile: Fixtures.testPlugin)
    let pinned = try workspace.manifest(Fixtures.testPlugin("pinned", args: [], tag: tag, extra: ["sha256": right]))
    let plugin = try await workspace.launcher.launch(pinned)
    #expect(isAlive(plugin.pid))
    await plugin.kill()
    #expect(!isAlive(plugin.pid))
  }

  @Test("a plugin that exits before serving is reported with its stderr")
  func exitsBeforeServing() async throws {
    let workspace = try TestWorkspace()
    let manifest = try workspace.manifest(
      Fixtures.testPlugin("quitter", args: ["--exit-without-serving"], tag: UUID().uuidString))
    await #expect {
      try await workspace.launcher.launch(manifest)
    } throws: { error in
      let error = error as? DeckhandError
      return error?.code == .pluginExited && error?.message.contains("exited with status 7") == true
        && error?.message.contains("giving up before serving") == true
    }
  }

  @Test(
    "a bad go-plugin handshake says what was expected and what came",
    arguments: [
      ("2|1|unix|/tmp/none|grpc|", "core protocol version 2"),
      ("1|1|unix|/tmp/none|netrpc|", "speaks protocol \"netrpc\""),
      ("1|9|unix|/tmp/none|grpc|", "app protocol version 9, but the host offered 1"),
    ])
  func badHandshake(line: String, expected: String) async throws {
    let workspace = try TestWorkspace()
    let tag = UUID().uuidString
    let script = try workspace.write(
      "bad-plugin.sh", "#!/bin/sh\necho starting\necho '\(line)'\nexec sleep 30\n", executable: true)
    let manifest = try workspace.manifest([
      "name": "bad", "version": "1", "entrypoint": script, "args": [tag], "protocol": "go-plugin",
    ])
    do {
      _ = try await workspace.launcher.launch(manifest)
      Issue.record("launch succeeded")
    } catch let error as DeckhandError {
      #expect(error.code == .handshakeFailed)
      #expect(error.message.contains(expected), "\(error.message)")
    }
    #expect(processes(withArgument: tag).isEmpty)
  }

  @Test(
    "a go-plugin handshake that names a file outside the plugin's folder, or a non-loopback address, fails the launch and removes nothing",
    arguments: ["victim", "runtime-sibling", "dotdot", "remote"])
  func hostileHandshake(target: String) async throws {
    let workspace = try TestWorkspace()
    let tag = UUID().uuidString
    let victim = try workspace.write("victim.txt", "precious\n")
    let sibling = workspace.paths.runtimeDirectory + "/other.sock"
    try FileManager.default.createDirectory(atPath: workspace.paths.runtimeDirectory, withIntermediateDirectories: true)
    _ = FileManager.default.createFile(atPath: sibling, contents: Data("x".utf8))
    let address =
      switch target {
      case "victim": "unix|\(victim)"
      case "runtime-sibling": "unix|\(sibling)"
      case "dotdot": "unix|\(try workspace.paths.socketFolder("hostile"))/../other.sock"
      default: "tcp|192.0.2.1:80"
      }
    let script = try workspace.write(
      "hostile.sh", "#!/bin/sh\necho '1|1|\(address)|grpc|'\nexec sleep 30\n", executable: true)
    let manifest = try workspace.manifest([
      "name": "hostile", "version": "1", "entrypoint": script, "args": [tag], "protocol": "go-plugin",
    ])
    await #expect {
      try await workspace.launcher.launch(manifest)
    } throws: { error in
      let error = error as? DeckhandError
      return error?.code == .handshakeFailed
        && error?.message.contains(address.split(separator: "|")[1]) == true
    }
    #expect(try String(contentsOfFile: victim, encoding: .utf8) == "precious\n")
    #expect(FileManager.default.fileExists(atPath: sibling))
    #expect(processes(withArgument: tag).isEmpty)
  }

  @Test("a plugin's go-plugin socket goes into a folder of its own, which is all the handshake may name")
  func goPluginSocketFolder() async throws {
    let workspace = try TestWorkspace()
    let manifest = try workspace.manifest([
      "name": "echo-folder", "version": "1.0.0", "entrypoint": Fixtures.echo, "protocol": "go-plugin",
    ])
    let plugin = try await workspace.launcher.launch(manifest)
    let folder = try workspace.paths.socketFolder("echo-folder")
    guard case .unix(let path) = plugin.address else {
      Issue.record("not a unix socket: \(plugin.address)")
      return
    }
    #expect((path as NSString).deletingLastPathComponent == folder)
    _ = await plugin.kill()
    #expect(!FileManager.default.fileExists(atPath: path), "its socket is removed after it")
  }

  @Test("a plugin starts from a minimal environment: PATH and locale, its manifest's env and its contract's variables")
  func minimalEnvironment() async throws {
    let workspace = try TestWorkspace()
    let dump = workspace.root + "/env.txt"
    let script = try workspace.write(
      "env-plugin.sh", "#!/bin/sh\nenv > '\(dump)'\necho '9|1|unix|/none|grpc|'\n", executable: true)
    let manifest = try workspace.manifest([
      "name": "envy", "version": "1", "entrypoint": script, "protocol": "go-plugin", "env": ["FROM_MANIFEST": "yes"],
    ])
    var launcher = workspace.launcher
    launcher.baseEnvironment = PluginLauncher.minimalEnvironment(from: [
      "PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "HOME": "/root", "DECKHAND_JOIN_TOKEN": "DHTKN-1-secret",
      "SSH_AUTH_SOCK": "/tmp/agent.sock",
    ])
    await #expect(throws: DeckhandError.self) { try await launcher.launch(manifest) }
    let lines = Set(try String(contentsOfFile: dump, encoding: .utf8).split(separator: "\n").map(String.init))
    let names = Set(lines.compactMap { $0.split(separator: "=", maxSplits: 1).first.map(String.init) })
    #expect(
      lines.contains("PATH=/usr/bin:/bin") && lines.contains("LANG=C.UTF-8") && lines.contains("FROM_MANIFEST=yes"))
    #expect(names.isDisjoint(with: ["HOME", "DECKHAND_JOIN_TOKEN", "SSH_AUTH_SOCK"]), "\(names.sorted())")
    #expect(
      names.isSuperset(of: ["PLUGIN_PROTOCOL_VERSIONS", "PLUGIN_UNIX_SOCKET_DIR", "TMPDIR"]), "\(names.sorted())")
    // The default is the same filter over the host's own environment.
    let inherited = Set(PluginLauncher(paths: workspace.paths).baseEnvironment.keys)
    #expect(inherited.isSubset(of: PluginLauncher.inheritedVariables) && inherited.contains("PATH"))
  }

  @Test("a go-plugin host offering a version the plugin does not speak gets a clear error")
  func versionMismatch() async throws {
    let workspace = try TestWorkspace()
    let manifest = try workspace.manifest([
      "name": "echo-v2", "version": "1", "entrypoint": Fixtures.echo, "protocol": "go-plugin",
      "handshake": ["app_version": 2],
    ])
    await #expect {
      try await workspace.launcher.launch(manifest)
    } throws: { error in
      let message = (error as? DeckhandError)?.message ?? ""
      return message.contains("before printing its go-plugin handshake")
        && message.contains("offers protocol versions 2, but this plugin speaks version 1")
    }
  }

  @Test("a manifest with errors names the file and the fields; nothing is launched")
  func badManifest() throws {
    let workspace = try TestWorkspace()
    let path = try workspace.write(
      "broken.json",
      #"{"name": "x", "version": "1", "entrypoint": "x", "protocol": "smoke", "timeouts": {"stop_s": "ten"}}"#)
    do {
      _ = try PluginManifest.load(path: path)
      Issue.record("loaded")
    } catch let error as DeckhandError {
      #expect(error.code == .manifestInvalid)
      #expect(error.message.hasPrefix(path))
      #expect(error.message.contains(#"field "protocol""#))
      #expect(error.message.contains(#"field "timeouts.stop_s""#))
    }
  }

  @Test("a missing entrypoint is refused before anything runs")
  func missingEntrypoint() async throws {
    let workspace = try TestWorkspace()
    let manifest = try workspace.manifest(["name": "ghost", "version": "1", "entrypoint": "no-such-binary"])
    await #expect {
      try await workspace.launcher.launch(manifest)
    } throws: { error in
      (error as? DeckhandError)?.message.contains("does not exist") == true
    }
  }
}
