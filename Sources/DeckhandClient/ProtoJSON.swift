package import DeckhandCore
internal import DeckhandProtocol
internal import Foundation
package import SwiftProtobuf

/// The proto3 JSON of the server's messages with every field printed, also
/// those that hold their default value (a worker token's `role`, a node's
/// `0` counts), as Go's `protojson` does with `EmitUnpopulated`.
///
/// swift-protobuf 1.39 always leaves default values out of JSON and has no
/// public reflection to list a message's fields, so this reads the fields
/// from the protos' own descriptors (`deckhandProtoDescriptorSet`, written by
/// `scripts/generate-protos.sh`) and fills in what the encoder left out:
/// `""`, `0`, `"0"` for 64-bit integers, `false`, the enum's zero name, `[]`,
/// `{}`, and `null` for a message field or an optional that is not set.
/// Fields of a `oneof` that is not set stay out, as in `protojson`. Keys use
/// the proto field names, sorted.
package struct ProtoJSON: Sendable {
  /// The printer for the server's protos.
  package static let server: ProtoJSON = {
    do {
      guard let bytes = Data(base64Encoded: deckhandProtoDescriptorSet) else {
        throw DeckhandError(.internalError, "the embedded proto descriptors are not base64")
      }
      return try ProtoJSON(descriptorSet: Google_Protobuf_FileDescriptorSet(serializedBytes: bytes))
    } catch {
      // Generated and committed with the code: a failure here is a build defect.
      preconditionFailure("deckhand: cannot read the embedded proto descriptors: \(error)")
    }
  }()

  private var messages: [String: Google_Protobuf_DescriptorProto] = [:]
  private var enumZeroNames: [String: String] = [:]

  /// Indexes every message and enum of `descriptorSet` by its full name.
  package init(descriptorSet: Google_Protobuf_FileDescriptorSet) {
    for file in descriptorSet.file {
      let prefix = file.package.isEmpty ? "" : file.package + "."
      for message in file.messageType { index(message, prefix: prefix) }
      for type in file.enumType { indexEnum(type, prefix: prefix) }
    }
  }

  private mutating func index(_ message: Google_Protobuf_DescriptorProto, prefix: String) {
    let name = prefix + message.name
    messages[name] = message
    for nested in message.nestedType { index(nested, prefix: name + ".") }
    for type in message.enumType { indexEnum(type, prefix: name + ".") }
  }

  private mutating func indexEnum(_ type: Google_Protobuf_EnumDescriptorProto, prefix: String) {
    enumZeroNames[prefix + type.name] = type.value.first { $0.number == 0 }?.name ?? type.value.first?.name ?? ""
  }

  /// `message` as a JSON value with every field.
  package func value(of message: some SwiftProtobuf.Message) throws -> JSONValue {
    var options = JSONEncodingOptions()
    options.preserveProtoFieldNames = true
    let encoded: [UInt8] = try message.jsonUTF8Bytes(options: options)
    return complete(try JSONValue.parse(encoded), type: Swift.type(of: message).protoMessageName)
  }

  /// `messages` as one JSON text: an array, or the first object alone for
  /// `single`.
  package func text(of messages: [some SwiftProtobuf.Message], single: Bool = false) throws -> String {
    let values = try messages.map { try value(of: $0) }
    let document: JSONValue = single ? (values.first ?? .object([:])) : .array(values)
    return String(decoding: document.serialized() ?? Array("null".utf8), as: UTF8.self)
  }

  /// Adds the fields `value`, a message of `type`, leaves out.
  func complete(_ value: JSONValue, type: String) -> JSONValue {
    guard case .object(var fields) = value, let descriptor = messages[type] else { return value }
    for field in descriptor.field {
      if let present = fields[field.name] {
        fields[field.name] = completeNested(present, field: field)
      } else if let missing = defaultValue(of: field, in: descriptor) {
        fields[field.name] = missing
      }
    }
    return .object(fields)
  }

  /// Completes the messages inside a present field: one, each of a list, or
  /// each value of a map.
  private func completeNested(_ value: JSONValue, field: Google_Protobuf_FieldDescriptorProto) -> JSONValue {
    guard field.type == .message else { return value }
    let typeName = Self.fullName(field.typeName)
    if let entry = mapEntry(of: field) {
      guard case .object(let map) = value, let valueField = entry.field.first(where: { $0.number == 2 }),
        valueField.type == .message
      else { return value }
      return .object(map.mapValues { complete($0, type: Self.fullName(valueField.typeName)) })
    }
    if field.label == .repeated, case .array(let items) = value {
      return .array(items.map { complete($0, type: typeName) })
    }
    return complete(value, type: typeName)
  }

  /// What proto3 JSON prints for `field` when it holds its default, or nil
  /// for a member of a `oneof` (only the set one is printed).
  private func defaultValue(
    of field: Google_Protobuf_FieldDescriptorProto, in message: Google_Protobuf_DescriptorProto
  ) -> JSONValue? {
    if field.hasOneofIndex && !field.proto3Optional { return nil }
    if field.label == .repeated { return mapEntry(of: field) == nil ? .array([]) : .object([:]) }
    if field.proto3Optional { return .null }
    switch field.type {
    case .message, .group: return .null
    case .string, .bytes: return .string("")
    case .bool: return .bool(false)
    case .int64, .uint64, .sint64, .fixed64, .sfixed64: return .string("0")
    case .enum: return .string(enumZeroNames[Self.fullName(field.typeName)] ?? "")
    default: return .number(0)
    }
  }

  private func mapEntry(of field: Google_Protobuf_FieldDescriptorProto) -> Google_Protobuf_DescriptorProto? {
    guard field.label == .repeated, field.type == .message,
      let entry = messages[Self.fullName(field.typeName)], entry.options.mapEntry
    else { return nil }
    return entry
  }

  /// A descriptor's type reference (`.pkg.Message`) as a full name.
  private static func fullName(_ reference: String) -> String {
    reference.hasPrefix(".") ? String(reference.dropFirst()) : reference
  }
}
