/// An error from Deckhand: a stable ``Code`` to match on, a message that says
/// what went wrong and what to do next, and the error underneath, if any.
///
/// ```swift
/// throw DeckhandError(.manifestInvalid, "plugin.json: field \"name\" is missing")
/// ```
public struct DeckhandError: Error, Hashable, Sendable, CustomStringConvertible {
  /// What kind of failure this is. Extensible: new codes may be added.
  public struct Code: Hashable, Sendable, CustomStringConvertible {
    private let name: String
    private init(_ name: String) { self.name = name }
    public var description: String { name }

    /// The plugin manifest could not be read or is not valid.
    public static let manifestInvalid = Code("manifestInvalid")
    /// The entrypoint's SHA-256 differs from the manifest's.
    public static let checksumMismatch = Code("checksumMismatch")
    /// The plugin process could not be started.
    public static let launchFailed = Code("launchFailed")
    /// The plugin did not become ready within its start timeout.
    public static let startTimeout = Code("startTimeout")
    /// The go-plugin handshake line was malformed or incompatible.
    public static let handshakeFailed = Code("handshakeFailed")
    /// The plugin exited while the host was waiting for it.
    public static let pluginExited = Code("pluginExited")
    /// A call to the plugin failed or timed out.
    public static let callFailed = Code("callFailed")
    /// A path or setting of the host is unusable.
    public static let configurationInvalid = Code("configurationInvalid")
    /// A plugin's signature is missing, untrusted or does not verify.
    public static let signatureInvalid = Code("signatureInvalid")
    /// The machine cannot give a plugin the isolation its manifest asks for.
    public static let isolationUnavailable = Code("isolationUnavailable")
    /// A token or credential is malformed, unknown, expired or revoked.
    public static let tokenInvalid = Code("tokenInvalid")
    /// The caller's role may not do this (a worker calling an operator's RPC).
    public static let permissionDenied = Code("permissionDenied")
    /// The server cannot be reached or is shutting down (try again later).
    public static let serverUnavailable = Code("serverUnavailable")
    /// The server answered, but its CA is not the one the token names:
    /// never trusted, never retried.
    public static let serverUntrusted = Code("serverUntrusted")
    /// The caller asked too often (sessions per window); back off.
    public static let rateLimited = Code("rateLimited")
    /// The node concerned has no agent connected right now.
    public static let notConnected = Code("notConnected")
    /// Something asked for does not exist (node, deployment, artifact).
    public static let notFound = Code("notFound")
    /// The agent's Host API cannot be reached (the plugin runs without
    /// one, under `deckhand plugin run` say).
    public static let hostUnavailable = Code("hostUnavailable")
    /// The name is taken (a command another plugin registered).
    public static let alreadyExists = Code("alreadyExists")
    /// A disk or database cannot take a write now (the file system is full,
    /// read-only or failing, the database busy); the message names the
    /// path. Nothing is wrong with the request: try again once it can.
    public static let storageUnavailable = Code("storageUnavailable")
    /// Something inside Deckhand failed that should not have.
    public static let internalError = Code("internalError")
  }

  /// What kind of failure this is.
  public var code: Code
  /// A human message: what went wrong, naming the file, plugin or field, and
  /// what to do next.
  public var message: String
  /// The error that caused this one, if any.
  public var cause: (any Error)?

  public init(_ code: Code, _ message: String, cause: (any Error)? = nil) {
    self.code = code
    self.message = message
    self.cause = cause
  }

  public var description: String {
    if let cause { return "\(message) (\(cause))" }
    return message
  }

  public static func == (lhs: Self, rhs: Self) -> Bool {
    lhs.code == rhs.code && lhs.message == rhs.message
  }

  public func hash(into hasher: inout Hasher) {
    hasher.combine(code)
    hasher.combine(message)
  }
}
