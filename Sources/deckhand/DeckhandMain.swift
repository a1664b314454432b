// The `deckhand` executable: everything lives in DeckhandCLI.
import ArgumentParser
import DeckhandCLI

@main
enum DeckhandMain {
  static func main() async {
    await DeckhandCommand.main(nil)
  }
}
