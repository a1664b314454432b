import DeckhandCore
import DeckhandPluginHost
import Foundation
import Synchronization

/// A throw-away folder for one test: state and runtime roots, manifests.
/// Short paths, because unix socket paths are limited to 107 bytes.
struct TestWorkspace: ~Copyable {
  let root: String
  let paths: HostPaths

  init() throws {
    let root = "/tmp/dht-\(UUID().uuidString.prefix(8))"
    try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
    self.root = root
    self.paths = HostPaths(stateDirectory: "\(root)/state", runtimeDirectory: "\(root)/run")
  }

  deinit {
    try? FileManager.default.removeItem(atPath: root)
  }

  var launcher: PluginLauncher { PluginLauncher(paths: paths) }

  /// Writes `plugin.json` with these fields into a folder of its own and
  /// parses it.
  func manifest(_ fields: [String: Any]) throws -> PluginManifest {
    try PluginManifest.load(path: manifestFile(fields))
  }

  /// Writes `plugin.json` with these fields and returns its path.
  func manifestFile(_ fields: [String: Any]) throws -> String {
    let folder = "\(root)/manifests/\(UUID().uuidString.prefix(6))"
    try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
    let path = "\(folder)/plugin.json"
    let data = try JSONSerialization.data(withJSONObject: fields, options: [.sortedKeys])
    try data.write(to: URL(fileURLWithPath: path))
    return path
  }

  /// Writes `text` to `name` in the workspace and returns its path.
  func write(_ name: String, _ text: String, executable: Bool = false) throws -> String {
    let path = "\(root)/\(name)"
    try text.write(toFile: path, atomically: true, encoding: .utf8)
    if executable { chmod(path, 0o755) }
    return path
  }
}

/// Where the binaries and examples of this package are.
enum Fixtures {
  /// The build folder holding the test bundle, and so the package's
  /// executables.
  static let binDirectory: String = {
    let executable = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? ""
    return URL(fileURLWithPath: executable).deletingLastPathComponent().path
  }()

  static let packageRoot: String = URL(fileURLWithPath: #filePath)
    .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    .path

  static var echo: String { "\(binDirectory)/deckhand-example-echo" }
  static var testPlugin: String { "\(binDirectory)/deckhand-test-plugin" }
  static var deckhand: String { "\(binDirectory)/deckhand" }

  /// The go-plugin peer's binaries (built by ../shared/peers/goplugin/run.sh
  /// --build, which .ci/run runs).
  static var goPeerBin: String {
    ProcessInfo.processInfo.environment["DECKHAND_GOPLUGIN_PEER_BIN"]
      ?? URL(fileURLWithPath: packageRoot).deletingLastPathComponent()
      .appendingPathComponent("shared/peers/goplugin/build/bin").path
  }

  /// Fields of a manifest for the test plugin with these behaviour
  /// arguments and a unique tag to find its processes by.
  static func testPlugin(_ name: String, args: [String], tag: String, extra: [String: Any] = [:]) -> [String: Any] {
    var fields: [String: Any] = [
      "name": name, "version": "1.0.0", "entrypoint": testPlugin, "args": ["--tag", tag] + args,
    ]
    fields.merge(extra) { _, new in new }
    return fields
  }
}

/// Processes whose command line contains `marker` as an argument.
func processes(withArgument marker: String) -> [Int32] {
  guard let entries = try? FileManager.default.contentsOfDirectory(atPath: "/proc") else { return [] }
  return entries.compactMap { entry -> Int32? in
    guard let pid = Int32(entry), pid != getpid(), isAlive(pid),
      let data = FileManager.default.contents(atPath: "/proc/\(entry)/cmdline")
    else { return nil }
    let arguments = data.split(separator: 0).map { String(decoding: $0, as: UTF8.self) }
    return arguments.contains(marker) ? pid : nil
  }
}

/// Whether a process is alive (and not a zombie).
func isAlive(_ pid: Int32) -> Bool {
  guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8) else { return false }
  return stat.split(separator: ")").last?.split(separator: " ").first != "Z"
}

/// Polls `condition` until it holds or `timeout` passes.
func eventually(timeout: Duration = .seconds(10), _ condition: () -> Bool) async -> Bool {
  let end = ContinuousClock.now + timeout
  while ContinuousClock.now < end {
    if condition() { return true }
    try? await Task.sleep(for: .milliseconds(20))
  }
  return condition()
}

/// Polls an asynchronous `condition` (a CLI call, say) every 100 ms until
/// it holds or `timeout` passes.
func eventually(timeout: Duration = .seconds(10), _ condition: () async -> Bool) async -> Bool {
  let end = ContinuousClock.now + timeout
  while ContinuousClock.now < end {
    if await condition() { return true }
    try? await Task.sleep(for: .milliseconds(100))
  }
  return await condition()
}

/// The events a supervisor reported, in order.
final class EventLog: Sendable {
  private let events = Mutex<[PluginEvent]>([])

  func append(_ event: PluginEvent) { events.withLock { $0.append(event) } }
  var all: [PluginEvent] { events.withLock { $0 } }
  func count(_ kind: PluginEvent.Kind) -> Int { all.filter { $0.event == kind }.count }
  func of(_ kind: PluginEvent.Kind) -> [PluginEvent] { all.filter { $0.event == kind } }
}

/// Runs a command to its end; returns its status and output.
///
/// Output goes to files, not pipes: reading a pipe would block a thread of
/// Swift's cooperative pool, which has one thread per core, and starve every
/// other test running at the same time.
func runCommand(
  _ executable: String, _ arguments: [String], timeout: Duration = .seconds(120), environment: [String: String] = [:],
  stdin: String? = nil
) async throws
  -> (status: Int32, stdout: String, stderr: String)
{
  let base = "/tmp/dhcmd-\(UUID().uuidString.prefix(8))"
  _ = FileManager.default.createFile(atPath: "\(base).out", contents: nil)
  _ = FileManager.default.createFile(atPath: "\(base).err", contents: nil)
  defer {
    try? FileManager.default.removeItem(atPath: "\(base).out")
    try? FileManager.default.removeItem(atPath: "\(base).err")
  }
  let process = Process()
  process.executableURL = URL(fileURLWithPath: executable)
  process.arguments = arguments
  if !environment.isEmpty {
    process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
  }
  process.standardInput = stdin.flatMap { FileHandle(forReadingAtPath: $0) } ?? FileHandle.nullDevice
  process.standardOutput = try FileHandle(forWritingTo: URL(fileURLWithPath: "\(base).out"))
  process.standardError = try FileHandle(forWritingTo: URL(fileURLWithPath: "\(base).err"))
  try process.run()
  if !(await eventually(timeout: timeout) { !process.isRunning }) {
    process.terminate()
    _ = await eventually(timeout: .seconds(5)) { !process.isRunning }
  }
  let stdout = (try? String(contentsOfFile: "\(base).out", encoding: .utf8)) ?? ""
  let stderr = (try? String(contentsOfFile: "\(base).err", encoding: .utf8)) ?? ""
  return (process.terminationStatus, stdout, stderr)
}
