#ifndef DECKHAND_EXECUTOR_HOOK_H
#define DECKHAND_EXECUTOR_HOOK_H

/// Whether Swift concurrency's global enqueue hook is still unset.
int deckhand_enqueue_global_hook_is_unset(void);

/// Sets Swift concurrency's global enqueue hook
/// (`swift_task_enqueueGlobal_hook`) to `hook`, a Swift-convention function
/// `(Job *, original) -> void`. Linked directly, so it works in builds with
/// the Swift runtime linked in statically, where looking the hook up with
/// dlsym finds nothing.
void deckhand_set_enqueue_global_hook(const void *hook);

#endif
