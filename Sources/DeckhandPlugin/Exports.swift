@_exported public import SwiftProtobuf

@_exported public import struct DeckhandCore.DeckhandError
// What a plugin's code needs besides the SDK's own types, through
// `import DeckhandPlugin` alone: the JSON value of `command(_:request:)`
// and SwiftProtobuf (`Google_Protobuf_Any`, the messages an Apply carries).
@_exported public import enum DeckhandCore.JSONValue
