// The plugin-facing messages live in DeckhandPluginProtocol (so that the
// plugin SDK links neither grpc-swift-2 nor Deckhand's own services); the
// rest of Deckhand sees them through this module.
@_exported public import DeckhandPluginProtocol
