internal import Foundation

/// Where the binaries and examples of this package are.
package enum Fixtures {
  /// The build folder holding the test bundle, and so the package's
  /// executables.
  package static let binDirectory: String = {
    let executable = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? ""
    return URL(fileURLWithPath: executable).deletingLastPathComponent().path
  }()

  package static let packageRoot: String = URL(fileURLWithPath: #filePath)
    .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path

  package static var echo: String { "\(binDirectory)/deckhand-example-echo" }
  package static var testPlugin: String { "\(binDirectory)/deckhand-test-plugin" }
  package static var deckhand: String { "\(binDirectory)/deckhand" }

  /// The go-plugin peer's binaries (built by ../shared/peers/goplugin/run.sh
  /// --build, which .ci/run runs).
  package static var goPeerBin: String {
    ProcessInfo.processInfo.environment["DECKHAND_GOPLUGIN_PEER_BIN"]
      ?? URL(fileURLWithPath: packageRoot).deletingLastPathComponent()
      .appendingPathComponent("shared/peers/goplugin/build/bin").path
  }

  /// Fields of a manifest for the test plugin with these behaviour
  /// arguments and a unique tag to find its processes by.
  package static func testPlugin(_ name: String, args: [String], tag: String, extra: [String: Any] = [:]) -> [String:
    Any]
  {
    var fields: [String: Any] = [
      "name": name, "version": "1.0.0", "entrypoint": testPlugin, "args": ["--tag", tag] + args,
    ]
    fields.merge(extra) { _, new in new }
    return fields
  }
}
