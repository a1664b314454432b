package import DeckhandCore
internal import Foundation

/// A plugin package: a tar.gz with `plugin.json` at its root and the files
/// it names. Read and unpacked with the system's `tar`.
package enum ArtifactPackage {
  /// This machine's platform, as packages and nodes name it: `linux/x86_64`.
  package static var platform: String {
    var system = utsname()
    uname(&system)
    let machine = withUnsafeBytes(of: &system.machine) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
    return "linux/\(machine)"
  }

  /// The package's manifest, read without unpacking.
  ///
  /// - Throws: ``DeckhandError`` if it is not a tar.gz or has no
  ///   `plugin.json` that parses.
  package static func manifest(path: String) throws -> PluginManifest {
    let (status, output, errors) = try run("/bin/tar", ["-xzOf", path, "./plugin.json"])
    var bytes = output
    if status != 0 {
      let second = try run("/bin/tar", ["-xzOf", path, "plugin.json"])
      guard second.status == 0 else {
        throw DeckhandError(
          .manifestInvalid,
          "\(path) is not a plugin package (a tar.gz with plugin.json at its root): \(String(decoding: errors + second.errors, as: UTF8.self))"
        )
      }
      bytes = second.output
    }
    return try PluginManifest.parse(Data(bytes), path: "/package/plugin.json")
  }

  /// Checks that the package's manifest names `name` at `version`.
  package static func check(path: String, name: String, version: String) throws {
    let manifest = try manifest(path: path)
    guard manifest.name == name, manifest.version == version else {
      throw DeckhandError(
        .manifestInvalid,
        "the package's plugin.json is \(manifest.name)@\(manifest.version), but the upload says \(name)@\(version)")
    }
  }

  /// Unpacks `path` into `directory` (created).
  package static func unpack(_ path: String, into directory: String) throws {
    try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    let (status, _, errors) = try run("/bin/tar", ["-xzf", path, "-C", directory, "--no-same-owner"])
    guard status == 0 else {
      throw DeckhandError(
        .manifestInvalid, "cannot unpack \(path): \(String(decoding: errors, as: UTF8.self))")
    }
  }

  /// Packs `directory`'s contents into the tar.gz `path`.
  package static func pack(_ directory: String, into path: String) throws {
    let (status, _, errors) = try run("/bin/tar", ["-czf", path, "-C", directory, "."])
    guard status == 0 else {
      throw DeckhandError(.configurationInvalid, "cannot pack \(directory): \(String(decoding: errors, as: UTF8.self))")
    }
  }

  private static func run(_ executable: String, _ arguments: [String]) throws -> (
    status: Int32, output: [UInt8], errors: [UInt8]
  ) {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: executable)
    process.arguments = arguments
    let output = Pipe()
    let errors = Pipe()
    process.standardOutput = output
    process.standardError = errors
    process.standardInput = FileHandle.nullDevice
    try process.run()
    let outputData = output.fileHandleForReading.readDataToEndOfFile()
    let errorData = errors.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return (process.terminationStatus, Array(outputData), Array(errorData))
  }
}
