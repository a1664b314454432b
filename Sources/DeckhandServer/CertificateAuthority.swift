internal import Crypto
internal import DeckhandClient
package import DeckhandCore
internal import Foundation
internal import SwiftASN1
internal import X509

/// The server's own CA, made on the first start and kept in the store
/// (shared by replicas, carried by snapshots), and each replica's serving
/// certificate, kept in its state directory (`server.pem`, `server.key`;
/// 0600) and made again when the hosts it must name change. The CA's digest (SHA-256 of its DER) goes
/// into every token, so a holder can check it is talking to this server.
package struct CertificateAuthority: Sendable {
  /// PEM of the CA certificate.
  package let caPEM: String
  /// SHA-256 of the CA certificate's DER, lower-case hex.
  package let digest: String
  /// PEM of the serving certificate (signed by the CA).
  package let serverCertificatePEM: String
  /// PEM of the serving certificate's key.
  package let serverKeyPEM: String
  /// The CA as the store keeps it (certificate and key): a snapshot
  /// restored into a running server must hold the same.
  package let caStorePEM: String

  /// The server's CA, from the store (made and stored on the first start
  /// of the first replica; replicas starting together agree on one), and
  /// this replica's serving certificate for `hosts`, signed by it and kept
  /// in `directory` (0600). A CA kept in `directory` by an older server is
  /// moved into the store, so agents stay joined.
  package static func load(store: any ServerStore, directory: String, hosts: [String]) async throws
    -> CertificateAuthority
  {
    let caPath = "\(directory)/ca.pem"
    let caKeyPath = "\(directory)/ca.key"
    let serverPath = "\(directory)/server.pem"
    let serverKeyPath = "\(directory)/server.key"
    do {
      try FileManager.default.createDirectory(
        atPath: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
      var stored = try await store.secret(Self.secretName)
      if stored == nil {
        let made: String
        if let keyText = try? String(contentsOfFile: caKeyPath, encoding: .utf8),
          let certText = try? String(contentsOfFile: caPath, encoding: .utf8)
        {
          made = certText + keyText
        } else {
          made = try Self.makeCA()
        }
        stored = try await store.claimSecret(Self.secretName, value: made)
      }
      let (ca, caKey) = try Self.parse(stored ?? "")
      var serverPEM = try? String(contentsOfFile: serverPath, encoding: .utf8)
      var serverKeyPEM = try? String(contentsOfFile: serverKeyPath, encoding: .utf8)
      let wanted = Set(hosts)
      if let text = serverPEM, let existing = try? Certificate(pemEncoded: text),
        existing.issuer == ca.subject, wanted.isSubset(of: Self.hosts(of: existing)),
        existing.notValidAfter > Date().addingTimeInterval(86400)
      {
        // Still good.
      } else {
        let key = P256.Signing.PrivateKey()
        let now = Date()
        var names: [GeneralName] = []
        for host in wanted.sorted() {
          if let bytes = Self.ipBytes(host) {
            names.append(.ipAddress(ASN1OctetString(contentBytes: ArraySlice(bytes))))
          } else {
            names.append(.dnsName(host))
          }
        }
        let certificate = try Certificate(
          version: .v3, serialNumber: .init(), publicKey: .init(key.publicKey),
          notValidBefore: now.addingTimeInterval(-3600), notValidAfter: now.addingTimeInterval(5 * 365 * 86400),
          issuer: ca.subject,
          subject: try DistinguishedName {
            OrganizationName("Deckhand")
            CommonName("deckhand server")
          },
          signatureAlgorithm: .ecdsaWithSHA256,
          extensions: try Certificate.Extensions {
            Critical(BasicConstraints.notCertificateAuthority)
            Critical(KeyUsage(digitalSignature: true, keyEncipherment: true))
            try ExtendedKeyUsage([.serverAuth, .clientAuth])
            SubjectAlternativeNames(names)
          },
          issuerPrivateKey: .init(caKey))
        serverPEM = try certificate.serializeAsPEM().pemString
        serverKeyPEM = key.pemRepresentation
        try write(serverKeyPEM!, to: serverKeyPath, mode: 0o600)
        try write(serverPEM!, to: serverPath, mode: 0o600)
      }
      let caText = try ca.serializeAsPEM().pemString
      return CertificateAuthority(
        caPEM: caText, digest: try CertificateDigest.of(pem: caText), serverCertificatePEM: serverPEM!,
        serverKeyPEM: serverKeyPEM!, caStorePEM: stored ?? "")
    } catch let error as DeckhandError {
      throw error
    } catch {
      throw DeckhandError(
        .configurationInvalid, "cannot load or make the server's certificates in \(directory): \(error)", cause: error)
    }
  }

  /// The store's name for the CA: its certificate and key, PEM.
  static let secretName = "ca"

  /// A new CA (P-256, 20 years): its certificate and key, PEM.
  private static func makeCA() throws -> String {
    let key = P256.Signing.PrivateKey()
    let name = try DistinguishedName {
      OrganizationName("Deckhand")
      CommonName("Deckhand CA \(UUID().uuidString.prefix(8).lowercased())")
    }
    let now = Date()
    let ca = try Certificate(
      version: .v3, serialNumber: .init(), publicKey: .init(key.publicKey),
      notValidBefore: now.addingTimeInterval(-3600), notValidAfter: now.addingTimeInterval(20 * 365 * 86400),
      issuer: name, subject: name, signatureAlgorithm: .ecdsaWithSHA256,
      extensions: try Certificate.Extensions {
        Critical(BasicConstraints.isCertificateAuthority(maxPathLength: 0))
        Critical(KeyUsage(keyCertSign: true, cRLSign: true))
      },
      issuerPrivateKey: .init(key))
    return try ca.serializeAsPEM().pemString + "\n" + key.pemRepresentation
  }

  /// The CA certificate and key in `text` (PEM blocks, any order).
  private static func parse(_ text: String) throws -> (Certificate, P256.Signing.PrivateKey) {
    var certificate: Certificate?
    var key: P256.Signing.PrivateKey?
    for document in try PEMDocument.parseMultiple(pemString: text) {
      switch document.discriminator {
      case "CERTIFICATE": certificate = try Certificate(pemDocument: document)
      default: key = try P256.Signing.PrivateKey(pemRepresentation: document.pemString)
      }
    }
    guard let certificate, let key else {
      throw DeckhandError(.internalError, "the CA in the store lacks its certificate or its key")
    }
    return (certificate, key)
  }

  private static func hosts(of certificate: Certificate) -> Set<String> {
    guard let names = try? certificate.extensions.subjectAlternativeNames else { return [] }
    var hosts: Set<String> = []
    for name in names {
      switch name {
      case .dnsName(let host): hosts.insert(host)
      case .ipAddress(let bytes):
        let octets = Array(bytes.bytes)
        if octets.count == 4 { hosts.insert(octets.map(String.init).joined(separator: ".")) }
        if octets.count == 16, let text = Self.ipv6Text(octets) { hosts.insert(text) }
      default: break
      }
    }
    return hosts
  }

  private static func ipBytes(_ host: String) -> [UInt8]? {
    var v4 = in_addr()
    if inet_pton(AF_INET, host, &v4) == 1 { return withUnsafeBytes(of: &v4) { Array($0) } }
    var v6 = in6_addr()
    if inet_pton(AF_INET6, host, &v6) == 1 { return withUnsafeBytes(of: &v6) { Array($0) } }
    return nil
  }

  private static func ipv6Text(_ octets: [UInt8]) -> String? {
    var address = in6_addr()
    withUnsafeMutableBytes(of: &address) { $0.copyBytes(from: octets) }
    var buffer = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN))
    guard inet_ntop(AF_INET6, &address, &buffer, socklen_t(buffer.count)) != nil else { return nil }
    return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
  }

  private static func write(_ text: String, to path: String, mode: mode_t) throws {
    let temporary = "\(path).tmp"
    FileManager.default.createFile(atPath: temporary, contents: Data(text.utf8), attributes: [.posixPermissions: mode])
    guard rename(temporary, path) == 0 else {
      throw DeckhandError(
        .configurationInvalid,
        "cannot write \(path): \(String(cString: strerror(errno))); check that the server's state directory is writable by its user and has free space"
      )
    }
  }
}
