internal import CDeckhandExecutorHook

/// The main thread's last job in Deckhand's executables: serving Dispatch's
/// main queue, where Swift's `MainActor` jobs run.
///
/// `dispatchMain()` ends the main thread with `pthread_exit`, and its forced
/// unwind looks each frame up by binary search in `.eh_frame_hdr`: page
/// faults over the table that left 0.47 MiB of an idle echo plugin's 9.3
/// MiB and 0.54 MiB of an idle agent's 19.3 MiB resident (measured per
/// section from `/proc/PID/pagemap`), for a lookup made once. This waits on
/// the queue's eventfd and drains it on the main thread, as Foundation's
/// `RunLoop` does on Linux; `MainActor` work runs on the main thread.
package enum MainQueue {
  /// Serves the main queue on the calling thread, which must be the main
  /// thread, forever.
  package static func serve() -> Never {
    deckhand_serve_main_queue()
  }
}
