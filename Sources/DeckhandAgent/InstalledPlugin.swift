package import DeckhandCore
package import DeckhandPluginHost
internal import Foundation
package import GRDB

/// A plugin the agent keeps installed: one row of the `plugin` table.
///
/// The manifest's text is kept, not only its path, so that an agent that
/// starts again brings the plugin back even if the file has changed or gone.
package struct InstalledPlugin: Hashable, Sendable, Codable {
  /// The plugin's name (the manifest's `name`), unique per agent.
  package var name: String
  /// Counts installs that changed the manifest or the entrypoint; 1 first.
  package var revision: Int
  /// The manifest file it was installed from.
  package var manifestPath: String
  /// The manifest file's text at install.
  package var manifestText: String
  /// The entrypoint's SHA-256 at install.
  package var entrypointDigest: String
  /// The text of its `plugin.json.sig`, if it was signed.
  package var signatureText: String?
  /// Where the running process is, for re-attaching after an agent
  /// restart; nil while it is not running.
  package var attachment: PluginLauncher.Attachment?
  /// Restarts after crashes or failed health, and by `plugins.restart`.
  package var restarts: Int
  /// How its last process ended, in words.
  package var lastExit: String?
  /// When it was installed (this revision), seconds since the epoch.
  package var installedAt: Double

  package init(
    name: String, revision: Int, manifestPath: String, manifestText: String, entrypointDigest: String,
    signatureText: String? = nil, attachment: PluginLauncher.Attachment? = nil, restarts: Int = 0,
    lastExit: String? = nil,
    installedAt: Double
  ) {
    self.name = name
    self.revision = revision
    self.manifestPath = manifestPath
    self.manifestText = manifestText
    self.entrypointDigest = entrypointDigest
    self.signatureText = signatureText
    self.attachment = attachment
    self.restarts = restarts
    self.lastExit = lastExit
    self.installedAt = installedAt
  }

  /// The manifest, parsed again from the stored text.
  package func manifest() throws -> PluginManifest {
    try PluginManifest.parse(Data(manifestText.utf8), path: manifestPath)
  }
}

extension InstalledPlugin: FetchableRecord, PersistableRecord {
  package static var databaseTableName: String { "plugin" }

  package enum Columns {
    package static let name = Column(CodingKeys.name)
  }
}
