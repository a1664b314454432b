internal import NIOCore
internal import NIOPosix

/// Sleeps on an event loop's timer instead of Dispatch's.
///
/// In Swift 6.3, `Task.sleep` hands its wake-up to Dispatch even where
/// ``EventLoopExecutor`` made the event loops Swift's global executor (the
/// sleep asks the default executor, not the enqueue hooks): Dispatch's
/// timer thread fires, a Dispatch worker runs the job, and the job is
/// enqueued on an event loop, round robin. Measured with `perf trace` while
/// a host polled a starting plugin's socket every 50 µs: three threads
/// woken per poll, one poll every 100 µs instead of 50, on the two cores
/// the plugin was starting on. On a loop's timer a sleep that began on a
/// loop wakes only that loop (the hook keeps a resumed task on the loop
/// that resumed it).
package enum LoopSleep {
  /// Sleeps for `duration` on an event loop of NIO's singleton group (the
  /// caller's own when it runs on one). Throws `CancellationError` when the
  /// task is cancelled, as `Task.sleep` does, and the loop's error if it is
  /// shutting down.
  package static func sleep(for duration: Duration) async throws {
    try Task.checkCancellation()
    let loop = MultiThreadedEventLoopGroup.singleton.any()
    let scheduled = loop.scheduleTask(in: TimeAmount(duration)) {}
    do {
      try await withTaskCancellationHandler {
        try await scheduled.futureResult.get()
      } onCancel: {
        scheduled.cancel()
      }
    } catch let error as EventLoopError {
      if case .cancelled = error { throw CancellationError() }
      throw error
    }
  }
}
