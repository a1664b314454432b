#ifndef DECKHAND_MAIN_QUEUE_H
#define DECKHAND_MAIN_QUEUE_H

/// Runs Dispatch's main queue (where Swift's MainActor jobs go) on the
/// calling thread, the process's main thread, forever: waits on the queue's
/// eventfd and drains it, as Foundation's RunLoop does on Linux, instead of
/// ending the thread as `dispatch_main()` does (why: `MainQueue.swift`).
/// Falls back to `dispatch_main()` if it cannot wait on the queue.
__attribute__((noreturn)) void deckhand_serve_main_queue(void);

#endif
