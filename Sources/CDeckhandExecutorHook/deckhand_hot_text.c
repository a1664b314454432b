#include "deckhand_hot_text.h"

#include <stdint.h>
#include <sys/mman.h>

#ifndef MADV_POPULATE_READ
#define MADV_POPULATE_READ 22
#endif

/* Sections of their own, so that the order files can name them; bodies that
   differ, so that no linker folds them into one. */
__attribute__((noinline, used, section(".text.deckhand_hot_text_begin"))) void deckhand_hot_text_begin(void) {
  __asm__ volatile("" ::: "memory");
}

__attribute__((noinline, used, section(".text.deckhand_hot_text_end"))) void deckhand_hot_text_end(void) {
  __asm__ volatile("nop" ::: "memory");
}

void deckhand_prefault_hot_text(void) {
  uintptr_t begin = (uintptr_t)&deckhand_hot_text_begin & ~(uintptr_t)4095;
  uintptr_t end = (uintptr_t)&deckhand_hot_text_end;
  /* Unordered builds put the markers anywhere: only a plausible range. */
  if (end <= begin || end - begin > ((uintptr_t)16 << 20)) return;
  (void)madvise((void *)begin, end - begin, MADV_POPULATE_READ);
}
