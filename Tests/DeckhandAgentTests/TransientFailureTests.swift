import DeckhandCore
import Foundation
import GRDB
import GRPCCore
import Testing

@testable import DeckhandAgent

@Suite("TransientFailure: which failures a task is tried again after, instead of FAILED")
struct TransientFailureTests {
  @Test("the server away, a full or busy disk, a busy database: transient")
  func transient() {
    let cases: [any Error] = [
      DeckhandError(.serverUnavailable, "cannot reach the server"),
      DeckhandError(.storageUnavailable, "/var/lib/deckhand: the disk is full"),
      DeckhandError(.internalError, "unpacking failed", cause: POSIXError(.ENOSPC)),
      RPCError(code: .unavailable, message: "connection refused"),
      RPCError(code: .internalError, message: "the server's store failed"),
      DatabaseError(resultCode: .SQLITE_FULL),
      DatabaseError(resultCode: .SQLITE_BUSY),
      CocoaError(.fileWriteOutOfSpace),
      NSError(domain: NSPOSIXErrorDomain, code: Int(ENOSPC)),
      POSIXError(.EIO),
    ]
    for error in cases { #expect(TransientFailure.isTransient(error), "\(error)") }
  }

  @Test("a bad package, manifest, signature or request: final")
  func final() {
    let cases: [any Error] = [
      DeckhandError(.manifestInvalid, "plugin.json: field \"name\" is missing"),
      DeckhandError(.signatureInvalid, "not signed by a trusted key"),
      DeckhandError(.checksumMismatch, "the entrypoint's SHA-256 differs"),
      RPCError(code: .notFound, message: "no artifact"),
      RPCError(code: .permissionDenied, message: "not yours"),
      DatabaseError(resultCode: .SQLITE_CONSTRAINT),
      POSIXError(.EACCES),
    ]
    for error in cases { #expect(!TransientFailure.isTransient(error), "\(error)") }
  }
}
