internal import DeckhandCore
internal import DeckhandRuntime
internal import Foundation
internal import GRPCCore

/// Whether a failure is the moment's (the server away, a full or busy
/// disk) rather than the task's (a bad package, a bad manifest).
///
/// A task that fails for a moment's reason is tried again with backoff and
/// never reported FAILED: FAILED is final for a task and pauses its
/// deployment.
enum TransientFailure {
  static func isTransient(_ error: any Error) -> Bool {
    // A full, read-only, failing or busy disk or database.
    if StorageFailure.isStorageFailure(error) { return true }
    switch error {
    case let error as DeckhandError:
      if [.serverUnavailable, .rateLimited, .notConnected].contains(error.code) { return true }
      return error.cause.map(isTransient) ?? false
    case let error as RPCError:
      return [.unavailable, .deadlineExceeded, .resourceExhausted, .aborted, .internalError, .unknown, .cancelled]
        .contains(error.code)
    case let error as POSIXError:
      return posixTransient(error.code.rawValue)
    default:
      let error = error as NSError
      if error.domain == NSPOSIXErrorDomain { return posixTransient(Int32(error.code)) }
      if error.domain == NSCocoaErrorDomain,
        [CocoaError.fileWriteOutOfSpace.rawValue, CocoaError.fileWriteVolumeReadOnly.rawValue].contains(error.code)
      {
        return true
      }
      return (error.userInfo[NSUnderlyingErrorKey] as? any Error).map(isTransient) ?? false
    }
  }

  private static func posixTransient(_ code: Int32) -> Bool {
    [ENOSPC, EDQUOT, EIO, EAGAIN, EBUSY, ENFILE, EMFILE, EROFS, ENOMEM].contains(code)
  }
}
