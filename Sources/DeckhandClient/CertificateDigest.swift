internal import Crypto
internal import DeckhandCore
internal import SwiftASN1

/// The digest that names a server's CA in every token it makes.
package enum CertificateDigest {
  /// SHA-256 of a PEM certificate's DER, lower-case hex: what tokens carry.
  ///
  /// - Throws: an error from the PEM reader when `pem` is not one PEM
  ///   document.
  package static func of(pem: String) throws -> String {
    let document = try PEMDocument(pemString: pem)
    return HexText.encode(SHA256.hash(data: document.derBytes))
  }
}
