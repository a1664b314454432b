#define _GNU_SOURCE
#include "deckhand_main_queue.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <unistd.h>

// libdispatch's run-loop integration, exported for CoreFoundation (on
// Linux the handle is an eventfd the queue writes to when it has work).
extern int _dispatch_get_main_queue_handle_4CF(void);
extern void _dispatch_main_queue_callback_4CF(void *message);
extern void dispatch_main(void) __attribute__((noreturn));

void deckhand_serve_main_queue(void) {
  int handle = _dispatch_get_main_queue_handle_4CF();
  if (handle < 0) {
    dispatch_main();
  }
  // Waits with no signal blocked, as dispatch_main() leaves the main thread
  // in sigsuspend() with an empty mask: a process started from a thread
  // that blocks signals (Dispatch's workers block most, and posix_spawn
  // passes the mask on) still ends on SIGTERM.
  sigset_t none;
  sigemptyset(&none);
  for (;;) {
    // Drain first: work queued before the handle existed did not write to it.
    _dispatch_main_queue_callback_4CF(0);
    struct pollfd entry = {.fd = handle, .events = POLLIN, .revents = 0};
    if (ppoll(&entry, 1, 0, &none) < 0) {
      if (errno == EINTR) {
        continue;
      }
      // Not a way to wait any more: Dispatch's own way, rather than a spin.
      dispatch_main();
    }
    uint64_t count;
    // Non-blocking; a read that finds nothing (EAGAIN) is fine.
    (void)read(handle, &count, sizeof count);
  }
}
