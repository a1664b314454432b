package import DeckhandCore
internal import Foundation

/// A signed plugin as it runs: a root-owned copy of its package folder (and
/// of an entrypoint kept outside it), made from the same bytes whose
/// digests were checked against the signature. What was hashed is what is
/// executed: changing the original files after the check changes nothing,
/// and only root can change the copy, which is checked again before each
/// launch.
///
/// Copies live in `STATE/verified/NAME/DIGEST` (content-addressed, so a
/// rollback finds the previous revision's copy).
package struct VerifiedPackage: Sendable, Hashable {
  /// The copy of the package folder.
  package let directory: String
  /// The copy of an entrypoint outside the package, if it was.
  package let entrypointCopy: String?
  package let signed: SignedDigests

  /// Copies `manifest`'s package into `root/NAME/…`, checking the bytes
  /// copied against `signed`; with `reuse` (an agent restart), an
  /// existing copy is checked instead of the original files. The
  /// copy is root's; `group` (the plugin's, when it runs as another user)
  /// may read it.
  ///
  /// - Throws: ``DeckhandError`` `signatureInvalid` when a file differs
  ///   from what was signed (naming which part).
  package static func prepare(
    _ manifest: PluginManifest, signed: SignedDigests, root: String, group: UInt32? = nil,
    reuse: Bool = false
  ) throws -> VerifiedPackage {
    try PluginName.check(manifest.name)
    let plugin = manifest.name
    for folder in [root, "\(root)/\(plugin)"] {
      guard mkdir(folder, 0o711) == 0 || errno == EEXIST else {
        throw DeckhandError(.launchFailed, "cannot create \(folder): \(String(cString: strerror(errno)))")
      }
      // Traversable (not listable) by a plugin run as another user.
      chmod(folder, 0o711)
    }
    let base = "\(root)/\(plugin)/\(signed.package.prefix(32))"
    let inside = manifest.entrypoint.hasPrefix(manifest.directory + "/")
    let verified = VerifiedPackage(
      directory: base,
      entrypointCopy: inside ? nil : "\(base).entrypoint/\((manifest.entrypoint as NSString).lastPathComponent)",
      signed: signed)
    if reuse, (try? verified.check(manifest, plugin: plugin)) != nil {
      verified.share(group: group)
      return verified
    }

    // Copied aside, checked, then moved in place: a half-made copy is
    // never used.
    let partial = "\(base).partial-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
    defer { try? FileManager.default.removeItem(atPath: partial) }
    let packageDigest = try PackageTree.digest(of: manifest.directory, copyTo: partial)
    guard packageDigest == signed.package else {
      throw DeckhandError(
        .signatureInvalid,
        "plugin \(plugin): the files in \(manifest.directory) are not the package that was signed (a file beside the manifest changed, was added or was removed); sign it again"
      )
    }
    var entrypointDigest: String
    if let copy = verified.entrypointCopy {
      let folder = (copy as NSString).deletingLastPathComponent
      try? FileManager.default.removeItem(atPath: folder)
      guard mkdir(folder, 0o700) == 0 else {
        throw DeckhandError(.launchFailed, "cannot create \(folder): \(String(cString: strerror(errno)))")
      }
      entrypointDigest = try PackageTree.copyFile(manifest.entrypoint, to: copy, mode: 0o700)
    } else {
      entrypointDigest = try FileDigest.sha256(
        ofFile: partial + manifest.entrypoint.dropFirst(manifest.directory.count))
    }
    guard entrypointDigest == signed.entrypoint else {
      throw DeckhandError(
        .signatureInvalid,
        "plugin \(plugin): the entrypoint \(manifest.entrypoint) is not the binary that was signed (sha256 \(entrypointDigest), signed \(signed.entrypoint))"
      )
    }
    // The same bytes may be there already (a reinstall), maybe running.
    if FileManager.default.fileExists(atPath: base) {
      if (try? PackageTree.digest(of: base)) == signed.package {
        verified.share(group: group)
        return verified
      }
      try? FileManager.default.removeItem(atPath: base)
    }
    guard rename(partial, base) == 0 else {
      throw DeckhandError(.launchFailed, "cannot move \(partial) to \(base): \(String(cString: strerror(errno)))")
    }
    verified.share(group: group)
    return verified
  }

  /// Modes and owner of the copy (``PackageTree/share(_:group:)``): also
  /// after the agent's start tightened its state directory.
  private func share(group: UInt32?) {
    PackageTree.share(directory, group: group)
    if let entrypointCopy { PackageTree.share((entrypointCopy as NSString).deletingLastPathComponent, group: group) }
  }

  /// `manifest` as it runs from the copy: its entrypoint and folder there.
  package func relocate(_ manifest: PluginManifest) -> PluginManifest {
    var relocated = manifest
    relocated.entrypoint = entrypointCopy ?? directory + manifest.entrypoint.dropFirst(manifest.directory.count)
    relocated.directory = directory
    return relocated
  }

  /// Checks the copy again (before each launch): its files and entrypoint
  /// still hash to what was signed.
  ///
  /// - Parameter manifest: the manifest as installed (not relocated).
  package func check(_ manifest: PluginManifest, plugin: String) throws {
    guard try PackageTree.digest(of: directory) == signed.package else {
      throw DeckhandError(
        .signatureInvalid,
        "plugin \(plugin): the verified copy in \(directory) changed since it was checked; install the plugin again")
    }
    let entrypoint = relocate(manifest).entrypoint
    let actual = try FileDigest.sha256(ofFile: entrypoint)
    guard actual == signed.entrypoint else {
      throw DeckhandError(
        .signatureInvalid,
        "plugin \(plugin): the entrypoint \(entrypoint) is not the binary that was signed (sha256 \(actual), signed \(signed.entrypoint))"
      )
    }
  }

  /// Removes every copy of `plugin` but those in `keeping`.
  package static func prune(_ plugin: String, root: String, keeping: [VerifiedPackage]) {
    guard PluginName.isValid(plugin) else { return }
    let name = plugin
    let folder = "\(root)/\(name)"
    let kept = Set(keeping.flatMap { [$0.directory, ($0.directory as NSString).lastPathComponent] })
    for entry in (try? FileManager.default.contentsOfDirectory(atPath: folder)) ?? [] {
      let owner = String(entry.split(separator: ".", maxSplits: 1).first ?? "")
      if !kept.contains(owner) { try? FileManager.default.removeItem(atPath: "\(folder)/\(entry)") }
    }
  }
}
