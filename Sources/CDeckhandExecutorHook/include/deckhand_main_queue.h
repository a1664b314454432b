#ifndef DECKHAND_MAIN_QUEUE_H
#define DECKHAND_MAIN_QUEUE_H

/// Runs Dispatch's main queue (where Swift's MainActor jobs go) on the
/// calling thread, the process's main thread, forever: waits on the queue's
/// eventfd and drains it, as Foundation's RunLoop does on Linux.
///
/// `dispatch_main()` does the same job by ending the main thread with
/// `pthread_exit`, whose forced unwind looks up each frame's unwind entry
/// by binary search in `.eh_frame_hdr`: page faults spread over a table of
/// 0.6 MB (a plugin) to 1.8 MB (`deckhand`), about 0.4–0.5 MiB of each
/// process's resident memory for a lookup made once.
__attribute__((noreturn)) void deckhand_serve_main_queue(void);

#endif
