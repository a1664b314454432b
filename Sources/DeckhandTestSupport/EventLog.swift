package import DeckhandCore
internal import Synchronization

/// The events a supervisor reported, in order.
package final class EventLog: Sendable {
  private let events = Mutex<[PluginEvent]>([])

  package init() {}

  package func append(_ event: PluginEvent) { events.withLock { $0.append(event) } }
  package var all: [PluginEvent] { events.withLock { $0 } }
  package func count(_ kind: PluginEvent.Kind) -> Int { all.filter { $0.event == kind }.count }
  package func of(_ kind: PluginEvent.Kind) -> [PluginEvent] { all.filter { $0.event == kind } }
}
