import DeckhandClient
import DeckhandCore
import DeckhandTestSupport
import Foundation
import Testing

@Suite("PackageArchive: unpacking in process, all or nothing")
struct PackageArchiveTests {
  private func good() -> TarWriter {
    var tar = TarWriter()
    tar.add("./plugin.json", content: Array(#"{"name": "echo", "version": "1", "entrypoint": "bin/echo"}"#.utf8))
    tar.add("./bin/echo", mode: 0o4755 & 0o755, content: Array("#!/bin/sh\n".utf8))
    tar.add("./bin/link", type: "2", link: "echo")
    return tar
  }

  @Test("a good package unpacks whole; its manifest reads without unpacking")
  func unpacks() throws {
    let workspace = try TestWorkspace()
    let archive = workspace.root + "/good.tar.gz"
    try good().writeGzip(to: archive)
    let target = workspace.root + "/out/pkg"
    try FileManager.default.createDirectory(atPath: workspace.root + "/out", withIntermediateDirectories: true)
    try PackageArchive.unpack(archive, into: target)
    #expect(FileManager.default.fileExists(atPath: target + "/plugin.json"))
    #expect(try FileManager.default.destinationOfSymbolicLink(atPath: target + "/bin/link") == "echo")
    #expect(FileManager.default.isExecutableFile(atPath: target + "/bin/echo"))
    #expect(try ArtifactPackage.manifest(path: archive).name == "echo")
    #expect(try FileManager.default.contentsOfDirectory(atPath: workspace.root + "/out") == ["pkg"], "no staging left")
  }

  @Test(
    "a hostile or broken package writes nothing outside, leaves no folder behind, and says why",
    arguments: ["dotdot", "absolute", "link-out", "setuid", "truncated", "not-gzip", "bomb"])
  func refuses(kind: String) throws {
    let workspace = try TestWorkspace()
    let archive = workspace.root + "/bad.tar.gz"
    let outside = workspace.root + "/outside"
    var tar = good()
    switch kind {
    case "dotdot": tar.add("../outside", content: Array("pwned".utf8))
    case "absolute": tar.add(outside, content: Array("pwned".utf8))
    case "link-out":
      tar.add("escape", type: "2", link: "../..")
    case "setuid": tar.add("bin/root", mode: 0o4755, content: [1])
    case "bomb": tar.add("zeros", content: [UInt8](repeating: 0, count: 3 << 20))
    default: break
    }
    try tar.writeGzip(to: archive)
    if kind == "truncated" {
      let bytes = try Data(contentsOf: URL(fileURLWithPath: archive))
      try bytes.prefix(bytes.count / 2).write(to: URL(fileURLWithPath: archive))
    } else if kind == "not-gzip" {
      try Data("this is not a package".utf8).write(to: URL(fileURLWithPath: archive))
    }
    let target = workspace.root + "/out/pkg"
    try FileManager.default.createDirectory(atPath: workspace.root + "/out", withIntermediateDirectories: true)
    let limits = PackageArchive.Limits(stream: .init(unpackedBytes: 1 << 20))
    #expect {
      try PackageArchive.unpack(archive, into: target, limits: limits)
    } throws: { error in
      (error as? DeckhandError)?.code == .manifestInvalid && "\(error)".contains("refused")
    }
    #expect(!FileManager.default.fileExists(atPath: outside))
    #expect(
      try FileManager.default.contentsOfDirectory(atPath: workspace.root + "/out").isEmpty, "nothing half-unpacked")
  }
}
