#include "deckhand_executor_hook.h"

// Defined by libswift_Concurrency (a function pointer; only its storage
// matters here).
extern void *swift_task_enqueueGlobal_hook;

int deckhand_enqueue_global_hook_is_unset(void) {
  return __atomic_load_n(&swift_task_enqueueGlobal_hook, __ATOMIC_ACQUIRE) == 0;
}

void deckhand_set_enqueue_global_hook(const void *hook) {
  __atomic_store_n(&swift_task_enqueueGlobal_hook, (void *)hook, __ATOMIC_RELEASE);
}
