internal import DeckhandCore
internal import NIOSSL
internal import PostgresNIO

/// PostgreSQL's errors, said as Deckhand's: what happened and what to do.
/// postgres-nio hides a server error's text from its description (it may
/// hold data), so the SQLSTATE and message are read here.
enum PostgresFailure {
  /// `error` as a ``DeckhandError``, naming `database` (the URL without its
  /// password). Errors that are already Deckhand's pass unchanged.
  static func describe(_ error: any Error, database: String) -> any Error {
    if error is DeckhandError || error is CancellationError { return error }
    if let transaction = error as? PostgresTransactionError {
      // The transaction's own failure, or what it ran that failed.
      let inner = transaction.closureError ?? transaction.beginError ?? transaction.commitError
      return inner.map { describe($0, database: database) } ?? transaction
    }
    guard let error = error as? PSQLError else { return error }
    if let info = error.serverInfo {
      let state = info[.sqlState] ?? ""
      let message = info[.message] ?? "an error"
      switch state {
      case "23505":
        return DeckhandError(.alreadyExists, "\(database): \(message)", cause: error)
      case "53100", "53200", "53300", "57P03", "57P01", "08000", "08003", "08006":
        // Disk full, out of memory, too many connections, starting up or
        // shutting down, connection failures: the moment's, not the data's.
        return DeckhandError(
          .storageUnavailable, "\(database) cannot take this now (SQLSTATE \(state)): \(message)", cause: error)
      default:
        return DeckhandError(.internalError, "\(database): \(message) (SQLSTATE \(state))", cause: error)
      }
    }
    if let underlying = error.underlying,
      underlying is NIOSSLError || underlying is NIOSSLExtraError
        || "\(underlying)".contains("handshake")
    {
      return DeckhandError(
        .configurationInvalid,
        "the database \(database) failed the TLS checks: \(underlying); sslmode=require and verify-full check "
          + "the certificate's CA (the system's, or sslrootcert=FILE) and that it names the host; verify-ca checks "
          + "the CA only", cause: error)
    }
    switch error.code {
    case .connectionError, .serverClosedConnection, .clientClosedConnection, .poolClosed, .uncleanShutdown:
      return DeckhandError(
        .storageUnavailable,
        "cannot reach the database \(database): \(error.underlying.map { "\($0)" } ?? "the connection closed"); "
          + "check that PostgreSQL runs and --database-url", cause: error)
    case .sslUnsupported:
      return DeckhandError(
        .configurationInvalid, "the database \(database) does not offer TLS, which sslmode asks for", cause: error)
    case .failedToAddSSLHandler:
      return DeckhandError(.configurationInvalid, "cannot set up TLS to the database \(database)", cause: error)
    case .authMechanismRequiresPassword, .unsupportedAuthMechanism, .saslError:
      return DeckhandError(
        .configurationInvalid,
        "the database \(database) refused the credentials (\(error.code)); check the user and password in --database-url",
        cause: error)
    default:
      return DeckhandError(.internalError, "the database \(database): \(String(reflecting: error))", cause: error)
    }
  }
}
