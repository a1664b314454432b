package import DeckhandCore
internal import Foundation
internal import GRDB

/// A failed write to a state directory, said in words: which directory,
/// and that its disk is full (or read-only, or failing), as
/// ``DeckhandError`` `storageUnavailable`.
///
/// SQLite says "database or disk is full" and names no file; a full disk is
/// an operator's problem to fix, so the message names the directory and
/// what still works.
package enum StorageFailure {
  /// `error` as a `storageUnavailable` error naming `directory`, if it is a
  /// storage failure; else `error` itself.
  package static func describe(_ error: any Error, directory: String) -> any Error {
    guard let reason = reason(error) else { return error }
    return DeckhandError(
      .storageUnavailable, "\(directory): \(reason); writes are refused until it is fixed", cause: error)
  }

  /// Whether `error` is a storage failure: one ``describe(_:directory:)``
  /// made, or one it would describe.
  package static func isStorageFailure(_ error: any Error) -> Bool {
    (error as? DeckhandError)?.code == .storageUnavailable || reason(error) != nil
  }

  private static func reason(_ error: any Error) -> String? {
    if let error = error as? DatabaseError {
      switch error.resultCode {
      case .SQLITE_FULL: return "the disk is full"
      case .SQLITE_IOERR: return "the disk failed a write (I/O error: full, or failing)"
      case .SQLITE_READONLY: return "the database is read-only"
      case .SQLITE_BUSY, .SQLITE_LOCKED: return "the database is busy"
      case .SQLITE_CANTOPEN: return "the database cannot be opened"
      default: return nil
      }
    }
    let error = error as NSError
    guard
      error.domain == NSPOSIXErrorDomain
        || (error.domain == NSCocoaErrorDomain && error.code == CocoaError.fileWriteOutOfSpace.rawValue)
    else { return nil }
    if error.domain == NSCocoaErrorDomain { return "the disk is full" }
    switch Int32(error.code) {
    case ENOSPC, EDQUOT: return "the disk is full"
    case EROFS: return "the file system is read-only"
    case EIO: return "the disk failed a write (I/O error)"
    default: return nil
    }
  }
}
