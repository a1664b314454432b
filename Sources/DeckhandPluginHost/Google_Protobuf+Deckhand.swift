internal import DeckhandCore
internal import SwiftProtobuf

extension Google_Protobuf_Struct {
  /// Converts a manifest's config object.
  init(jsonObject: [String: JSONValue]) {
    self.init()
    for (key, value) in jsonObject { fields[key] = Google_Protobuf_Value(json: value) }
  }
}

extension Google_Protobuf_Value {
  init(json: JSONValue) {
    self.init()
    switch json {
    case .null: nullValue = .nullValue
    case .bool(let flag): boolValue = flag
    case .number(let number): numberValue = number
    case .string(let text): stringValue = text
    case .array(let items):
      listValue = Google_Protobuf_ListValue(values: items.map(Google_Protobuf_Value.init(json:)))
    case .object(let object): structValue = Google_Protobuf_Struct(jsonObject: object)
    }
  }
}

extension Google_Protobuf_Duration {
  init(_ duration: Duration) {
    let (seconds, attoseconds) = duration.components
    self.init(seconds: seconds, nanos: Int32(attoseconds / 1_000_000_000))
  }
}
