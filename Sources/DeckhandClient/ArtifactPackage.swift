package import DeckhandCore
internal import Foundation

/// A plugin package: a tar.gz with `plugin.json` at its root and the files
/// it names. Read and unpacked in process (``PackageArchive``); packed with
/// the system's `tar` (an operator's own files, on their machine).
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
    guard let bytes = try PackageArchive.file("plugin.json", in: path) else {
      throw DeckhandError(.manifestInvalid, "\(path) is not a plugin package: it has no plugin.json at its root")
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

  /// Unpacks `path` into `directory`, in this process and under
  /// ``PackageArchive``'s rules (see ``TarStream``): nothing outside it is
  /// written, no link leads out, no set-uid bit is kept; `directory`
  /// appears only once the whole package is unpacked.
  package static func unpack(
    _ path: String, into directory: String, limits: PackageArchive.Limits = PackageArchive.Limits()
  ) throws {
    let parent = (directory as NSString).deletingLastPathComponent
    try FileManager.default.createDirectory(atPath: parent, withIntermediateDirectories: true)
    try PackageArchive.unpack(path, into: directory, limits: limits)
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
