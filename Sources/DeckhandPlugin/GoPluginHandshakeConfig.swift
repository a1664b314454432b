internal import DeckhandCore

/// The go-plugin magic cookie a plugin accepts and the app protocol version
/// it speaks under it. The host's manifest must name the same
/// (`handshake.cookie_key`, `cookie_value`, `app_version`).
public struct GoPluginHandshakeConfig: Hashable, Sendable {
  public var cookieKey: String
  public var cookieValue: String
  public var appVersion: Int

  public init(cookieKey: String, cookieValue: String, appVersion: Int = 1) {
    self.cookieKey = cookieKey
    self.cookieValue = cookieValue
    self.appVersion = appVersion
  }

  /// Deckhand's own cookie, the default of manifests and of the SDK.
  public static let deckhand = GoPluginHandshakeConfig(
    cookieKey: PluginManifest.Handshake.deckhand.cookieKey,
    cookieValue: PluginManifest.Handshake.deckhand.cookieValue,
    appVersion: PluginManifest.Handshake.deckhand.appVersion
  )

  var manifestHandshake: PluginManifest.Handshake {
    PluginManifest.Handshake(cookieKey: cookieKey, cookieValue: cookieValue, appVersion: appVersion)
  }
}
