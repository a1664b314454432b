package import DeckhandCore
package import DeckhandPluginHost
internal import Foundation

/// A throw-away folder for one test: state and runtime roots, manifests.
/// Short paths, because unix socket paths are limited to 107 bytes.
package struct TestWorkspace: ~Copyable {
  package let root: String
  package let paths: HostPaths

  package init() throws {
    let root = "/tmp/dht-\(UUID().uuidString.prefix(8))"
    try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
    self.root = root
    self.paths = HostPaths(stateDirectory: "\(root)/state", runtimeDirectory: "\(root)/run")
  }

  deinit {
    // A plugin outlives a SIGKILLed host by design (the next host adopts
    // it); at the end of the test nothing will, so the plugins of this
    // workspace's hosts (marked with its owner entry) end with it.
    for pid in ProcessSweep(marker: launcher.ownerEntry).members() { kill(pid, SIGKILL) }
    try? FileManager.default.removeItem(atPath: root)
  }

  package var launcher: PluginLauncher { PluginLauncher(paths: paths) }

  /// Writes `plugin.json` with these fields into a folder of its own and
  /// parses it.
  package func manifest(_ fields: [String: Any]) throws -> PluginManifest {
    try PluginManifest.load(path: manifestFile(fields))
  }

  /// Writes `plugin.json` with these fields and returns its path.
  package func manifestFile(_ fields: [String: Any]) throws -> String {
    let folder = "\(root)/manifests/\(UUID().uuidString.prefix(6))"
    try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
    let path = "\(folder)/plugin.json"
    let data = try JSONSerialization.data(withJSONObject: fields, options: [.sortedKeys])
    try data.write(to: URL(fileURLWithPath: path))
    return path
  }

  /// Writes `text` to `name` in the workspace and returns its path.
  package func write(_ name: String, _ text: String, executable: Bool = false) throws -> String {
    let path = "\(root)/\(name)"
    try text.write(toFile: path, atomically: true, encoding: .utf8)
    if executable { chmod(path, 0o755) }
    return path
  }
}
