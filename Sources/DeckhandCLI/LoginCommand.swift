internal import ArgumentParser
internal import DeckhandClient
internal import DeckhandCore
internal import DeckhandProtocol
internal import Foundation

/// `deckhand login --server ADDRESS --invite INVITE`: turns an invite into
/// a login token and stores it, with the server, where every other
/// command finds them.
struct LoginCommand: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "login",
    abstract: "Turn an invite (deckhand tokens invite) into a login token, stored for the CLI in client.json.")

  @Option(help: "The server, HOST:PORT.") var server: String
  @Option(help: "The invite an operator gave you; it is used up.") var invite: String
  @Option(help: "A note for the login token, e.g. your name.") var description = ""
  @Option(help: "Where to store the server and token. Default: $XDG_CONFIG_HOME/deckhand/client.json.")
  var settings: String?
  @OptionGroup var tracing: TracingOptions

  func run() async throws {
    var options = try OperatorOptions.parse([])
    options.server = server
    options.token = invite.trimmingCharacters(in: .whitespacesAndNewlines)
    options.tracing = tracing
    var request = Deckhand_Control_V1_ConvertInviteRequest()
    request.description_p = description
    let response = try await options.withControl { control, metadata in
      try await control.convertInvite(request, metadata: metadata)
    }
    let path = settings ?? ClientSettings.defaultPath
    try ClientSettings(server: server, token: response.secret).write(to: path)
    print(
      "logged in to \(server) as \(response.token.role.name) (token \(response.token.id)); stored in \(path)"
    )
  }
}
