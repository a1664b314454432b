internal import ArgumentParser
internal import DeckhandCore
internal import DeckhandPluginHost
internal import Foundation

/// `deckhand plugin k8s-manifest MANIFEST --image IMAGE [--namespace NS]`:
/// the plugin as a Kubernetes Pod, Service and (for `network: "none"`)
/// NetworkPolicy.
struct PluginK8sManifestCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "k8s-manifest",
    abstract: "Print a plugin as Kubernetes objects (isolation mode k8s): a Pod, its Service, a NetworkPolicy.",
    discussion: """
      The Pod runs IMAGE with the guest-agent launch contract over TCP (isolation.port, default 7070), \
      memory and CPU limits from the manifest's limits, readiness through GetStatus, and a security \
      context that mirrors the manifest's isolation. Apply it with `kubectl apply -f -`.
      """
  )

  @Argument(help: "The plugin's manifest (plugin.json).")
  var manifest: String

  @Option(help: "The container image holding the plugin.")
  var image: String

  @Option(help: "The Kubernetes namespace.")
  var namespace = "default"

  @Option(help: "The plugin binary's path in the image (default: the image's entrypoint).")
  var command: String?

  func run() throws {
    do {
      let manifest = try PluginManifest.load(path: manifest)
      let identity = try Self.identity(manifest.isolation)
      let objects = KubernetesManifest(
        manifest: manifest, image: image, namespace: namespace, command: command, identity: identity)
      print(try objects.yaml(), terminator: "")
    } catch let error as DeckhandError {
      FileHandle.standardError.write(Data("deckhand: \(error.message)\n".utf8))
      throw ExitCode(2)
    }
  }

  /// The manifest's user and group as ids: numbers as they are, names
  /// through this machine's user database.
  static func identity(_ isolation: PluginManifest.Isolation) throws -> KubernetesManifest.Identity {
    var identity = KubernetesManifest.Identity()
    if let user = isolation.user {
      if let uid = Int(user) {
        identity.uid = uid
      } else if let entry = getpwnam(user) {
        identity.uid = Int(entry.pointee.pw_uid)
        if isolation.group == nil { identity.gid = Int(entry.pointee.pw_gid) }
      }
    }
    if let group = isolation.group {
      if let gid = Int(group) {
        identity.gid = gid
      } else if let entry = getgrnam(group) {
        identity.gid = Int(entry.pointee.gr_gid)
      }
    }
    return identity
  }
}
