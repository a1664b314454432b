internal import Crypto
internal import DeckhandCore
internal import Foundation

/// Signed plugins: an ed25519 signature over a manifest, its whole package
/// (every file in the manifest's folder, ``PackageTree``) and its
/// entrypoint, kept beside the manifest as `plugin.json.sig`.
///
/// The signed message is
/// `deckhand-plugin-signature-v2\n<sha256 of the manifest file>\n<package digest>\n<sha256 of the entrypoint>\n`,
/// so neither the manifest (byte for byte), nor any file beside it, nor the
/// binary can change without the signature failing. An agent runs a signed
/// plugin from a root-owned copy of the bytes it checked
/// (``VerifiedPackage``).
///
/// ```swift
/// let key = try PluginSigning.generateKey(named: "release", in: "/etc/deckhand/keys")
/// try PluginSigning.sign(manifestAt: "/opt/echo/plugin.json", keyFile: key.privateKeyPath)
/// let trust = try TrustPolicy(directory: "/etc/deckhand/trusted", requireSigned: true)
/// let signed = try trust.verify(manifestBytes: bytes, signature: sigText, plugin: "echo")
/// ```
package enum PluginSigning {
  /// The signature file's `format`.
  package static let format = "deckhand-signature-v2"

  /// Where a manifest's signature is kept.
  package static func signaturePath(forManifest path: String) -> String { path + ".sig" }

  /// The files of a new key pair.
  package struct KeyFiles: Sendable {
    /// `NAME.key`: the private key, base64, mode 0600.
    package var privateKeyPath: String
    /// `NAME.pub`: the public key, base64; put it in an agent's
    /// `--trusted-keys` folder.
    package var publicKeyPath: String
  }

  /// Makes an ed25519 key pair and writes `NAME.key` and `NAME.pub` in
  /// `directory`. Refuses to overwrite existing files.
  package static func generateKey(named name: String, in directory: String) throws -> KeyFiles {
    try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    let files = KeyFiles(privateKeyPath: "\(directory)/\(name).key", publicKeyPath: "\(directory)/\(name).pub")
    for path in [files.privateKeyPath, files.publicKeyPath] where FileManager.default.fileExists(atPath: path) {
      throw DeckhandError(.configurationInvalid, "\(path) already exists; choose another name or remove it")
    }
    let key = Curve25519.Signing.PrivateKey()
    try write(key.rawRepresentation.base64EncodedString() + "\n", to: files.privateKeyPath, mode: 0o600)
    try write(key.publicKey.rawRepresentation.base64EncodedString() + "\n", to: files.publicKeyPath, mode: 0o644)
    return files
  }

  /// Signs the manifest at `path` (and its entrypoint) with the private key
  /// in `keyFile`; writes and returns the signature file's path.
  @discardableResult
  package static func sign(manifestAt path: String, keyFile: String) throws -> String {
    let manifest = try PluginManifest.load(path: path)
    guard let manifestBytes = FileManager.default.contents(atPath: path) else {
      throw DeckhandError(.manifestInvalid, "\(path): cannot be read")
    }
    let key: Curve25519.Signing.PrivateKey
    do {
      key = try Curve25519.Signing.PrivateKey(rawRepresentation: try readKey(keyFile))
    } catch {
      throw DeckhandError(
        .configurationInvalid, "\(keyFile) is not an ed25519 private key from `deckhand keys generate`")
    }
    let digests = SignedDigests(
      manifest: hex(SHA256.hash(data: manifestBytes)), package: try PackageTree.digest(of: manifest.directory),
      entrypoint: try FileDigest.sha256(ofFile: manifest.entrypoint), keyName: "")
    let signature = try key.signature(for: message(digests))
    let document: JSONValue = .object([
      "format": .string(format),
      "key": .string(key.publicKey.rawRepresentation.base64EncodedString()),
      "manifest_sha256": .string(digests.manifest),
      "package_sha256": .string(digests.package),
      "entrypoint_sha256": .string(digests.entrypoint),
      "signature": .string(signature.base64EncodedString()),
    ])
    let output = signaturePath(forManifest: path)
    try write(String(decoding: document.serialized() ?? [], as: UTF8.self) + "\n", to: output, mode: 0o644)
    return output
  }

  static func message(_ digests: SignedDigests) -> Data {
    Data(
      "deckhand-plugin-signature-v2\n\(digests.manifest)\n\(digests.package)\n\(digests.entrypoint)\n".utf8)
  }

  static func hex(_ digest: SHA256.Digest) -> String {
    HexText.encode(digest)
  }

  static func readKey(_ path: String) throws -> Data {
    guard let text = try? String(contentsOfFile: path, encoding: .utf8),
      let data = Data(base64Encoded: text.trimmingCharacters(in: .whitespacesAndNewlines))
    else {
      throw DeckhandError(.configurationInvalid, "\(path): cannot read a base64 key")
    }
    return data
  }

  private static func write(_ text: String, to path: String, mode: Int) throws {
    guard FileManager.default.createFile(atPath: path, contents: Data(text.utf8), attributes: [.posixPermissions: mode])
    else {
      throw DeckhandError(
        .configurationInvalid,
        "cannot write \(path): \(String(cString: strerror(errno))); choose a writable folder for the key")
    }
  }
}

/// Which plugins a host runs: signed by one of its trusted keys, and,
/// with `requireSigned`, nothing unsigned.
package struct TrustPolicy: Sendable {
  /// Trusted public keys (raw 32 bytes) by name (the `.pub` file's name).
  let keys: [String: Data]
  /// Whether unsigned plugins are refused.
  package let requireSigned: Bool

  /// Loads every `*.pub` in `directory`.
  ///
  /// - Throws: ``DeckhandCore/DeckhandError`` if the folder cannot be read,
  ///   a key is not an ed25519 public key, or `requireSigned` is set and no
  ///   key is there.
  package init(directory: String?, requireSigned: Bool) throws {
    var keys: [String: Data] = [:]
    if let directory {
      let names: [String]
      do {
        names = try FileManager.default.contentsOfDirectory(atPath: directory)
      } catch {
        throw DeckhandError(
          .configurationInvalid, "--trusted-keys \(directory): cannot be read: \(error.localizedDescription)")
      }
      for name in names.sorted() where name.hasSuffix(".pub") {
        let raw = try PluginSigning.readKey("\(directory)/\(name)")
        guard (try? Curve25519.Signing.PublicKey(rawRepresentation: raw)) != nil else {
          throw DeckhandError(.configurationInvalid, "\(directory)/\(name) is not an ed25519 public key")
        }
        keys[String(name.dropLast(4))] = raw
      }
    }
    if requireSigned && keys.isEmpty {
      throw DeckhandError(
        .configurationInvalid,
        "--require-signed needs at least one trusted key (*.pub) in --trusted-keys\(directory.map { " (\($0) has none)" } ?? "")"
      )
    }
    self.keys = keys
    self.requireSigned = requireSigned
  }

  /// Checks a plugin's signature: `signature` is the text of its
  /// `plugin.json.sig` (nil if it has none), `manifestBytes` the manifest
  /// as read once (what is parsed and stored). Returns what the signature
  /// vouches for, which the package's bytes must then match
  /// (``VerifiedPackage``); nil for an unsigned plugin that the policy
  /// lets through.
  ///
  /// - Throws: ``DeckhandCore/DeckhandError`` (`signatureInvalid`) saying
  ///   why the plugin is refused.
  package func verify(manifestBytes: [UInt8], signature: String?, plugin: String) throws -> SignedDigests? {
    guard let signature else {
      if requireSigned {
        throw DeckhandError(
          .signatureInvalid,
          "plugin \(plugin) is not signed and this agent runs only signed plugins (--require-signed); sign it with `deckhand plugin sign`"
        )
      }
      return nil
    }
    guard case .object(let document) = try? JSONValue.parse(Array(signature.utf8)) else {
      throw DeckhandError(
        .signatureInvalid, "plugin \(plugin): its signature file is not a \(PluginSigning.format) document")
    }
    if document["format"] == .string("deckhand-signature-v1") {
      throw DeckhandError(
        .signatureInvalid,
        "plugin \(plugin): its signature (deckhand-signature-v1) covers only the entrypoint, not the whole package; sign it again with `deckhand plugin sign`"
      )
    }
    guard document["format"] == .string(PluginSigning.format),
      case .string(let keyText) = document["key"], let key = Data(base64Encoded: keyText),
      case .string(let manifestDigest) = document["manifest_sha256"],
      case .string(let packageDigest) = document["package_sha256"],
      case .string(let entrypointDigest) = document["entrypoint_sha256"],
      case .string(let signatureText) = document["signature"], let signatureBytes = Data(base64Encoded: signatureText)
    else {
      throw DeckhandError(
        .signatureInvalid, "plugin \(plugin): its signature file is not a \(PluginSigning.format) document")
    }
    guard let name = keys.first(where: { $0.value == key })?.key else {
      throw DeckhandError(
        .signatureInvalid, "plugin \(plugin) is signed by a key this agent does not trust (not in --trusted-keys)")
    }
    let digests = SignedDigests(
      manifest: manifestDigest, package: packageDigest, entrypoint: entrypointDigest, keyName: name)
    guard let publicKey = try? Curve25519.Signing.PublicKey(rawRepresentation: key),
      publicKey.isValidSignature(signatureBytes, for: PluginSigning.message(digests))
    else {
      throw DeckhandError(.signatureInvalid, "plugin \(plugin): the signature does not verify with key \(name)")
    }
    guard PluginSigning.hex(SHA256.hash(data: manifestBytes)) == manifestDigest else {
      throw DeckhandError(
        .signatureInvalid, "plugin \(plugin): the manifest changed after it was signed; sign it again")
    }
    return digests
  }
}

/// What a valid signature vouches for: the digests of the manifest, the
/// package folder and the entrypoint, and the trusted key that signed them.
package struct SignedDigests: Sendable, Hashable {
  package var manifest: String
  package var package: String
  package var entrypoint: String
  /// The `.pub` file's name of the key that signed ("" while signing).
  package var keyName: String
}
