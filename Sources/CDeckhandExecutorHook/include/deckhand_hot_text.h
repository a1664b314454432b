#ifndef DECKHAND_HOT_TEXT_H
#define DECKHAND_HOT_TEXT_H

/// Maps, in one system call, the code that starting and serving run: the
/// functions the linker placed between deckhand_hot_text_begin and
/// deckhand_hot_text_end (the first and last entries of Linker/*.order).
/// Each page fault on that code otherwise costs a trap, more so under a
/// hypervisor. Does nothing when the build did not order the code (the two
/// markers are then not around it) or the kernel is older than 5.14.
void deckhand_prefault_hot_text(void);

/// The markers; never called.
void deckhand_hot_text_begin(void);
void deckhand_hot_text_end(void);

#endif
