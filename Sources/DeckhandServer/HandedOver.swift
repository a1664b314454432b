/// A value handed over, whole, to one child task: the request iterator of a
/// bidirectional stream, which a child reads while the parent writes.
///
/// `@unchecked Sendable` because the parent gives the value up when it
/// makes the box and never touches it again: only the child that takes it
/// uses it. Region-based isolation cannot see that through a task group's
/// body closure (it could through `Task {}`, the unstructured task this
/// replaces).
final class HandedOver<Value>: @unchecked Sendable {
  private var value: Value?

  init(_ value: consuming Value) { self.value = value }

  /// The value; only once.
  func take() -> Value {
    guard let value else { preconditionFailure("a handed-over value was taken twice") }
    self.value = nil
    return value
  }
}
