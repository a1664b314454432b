internal import ArgumentParser
internal import DeckhandCore
internal import DeckhandPluginHost
internal import Foundation

/// `deckhand keys`: signing keys for plugins.
struct KeysCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "keys",
    abstract: "Signing keys for plugins.",
    subcommands: [Generate.self]
  )

  struct Generate: ParsableCommand {
    static let configuration = CommandConfiguration(
      abstract:
        "Make an ed25519 key pair: NAME.key (private, mode 0600) and NAME.pub (give it to agents' --trusted-keys)."
    )
    @Argument(help: "The key's name.") var name: String
    @Option(help: "Where to write the two files.") var dir = "."

    func run() throws {
      do {
        let files = try PluginSigning.generateKey(named: name, in: HostOptions.absolute(dir))
        print("private key: \(files.privateKeyPath)\npublic key:  \(files.publicKeyPath)")
      } catch let error as DeckhandError {
        FileHandle.standardError.write(Data("deckhand: \(error.message)\n".utf8))
        throw ExitCode(1)
      }
    }
  }
}

/// `deckhand plugin sign MANIFEST --key KEY`.
struct PluginSignCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "sign",
    abstract: "Sign a manifest together with its entrypoint's digest; writes MANIFEST.sig beside it."
  )
  @Argument(help: "The plugin's manifest (plugin.json).") var manifest: String
  @Option(help: "The private key file (NAME.key from `deckhand keys generate`).") var key: String

  func run() throws {
    do {
      print(try PluginSigning.sign(manifestAt: HostOptions.absolute(manifest), keyFile: HostOptions.absolute(key)))
    } catch let error as DeckhandError {
      FileHandle.standardError.write(Data("deckhand: \(error.message)\n".utf8))
      throw ExitCode(1)
    }
  }
}
