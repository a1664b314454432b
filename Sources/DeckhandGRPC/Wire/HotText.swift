internal import CDeckhandExecutorHook

/// The code that starting and serving run, mapped at once.
///
/// Release builds place those functions together (`Linker/*.order`); a
/// process faults them in page by page otherwise, and each fault is a trap
/// (more costly under a hypervisor).
package enum HotText {
  /// Maps the ordered code in one `madvise(MADV_POPULATE_READ)`; nothing in
  /// a build without the ordering or on a kernel before 5.14. Call it first
  /// thing in `main`. Measured on the echo plugin (`deckhand plugin bench`,
  /// 30 launches, six alternating rounds): launch median 4.08 ms against
  /// 4.27 ms without, for 0.25 MiB more resident memory. Plugins only: the
  /// agent's ordered range holds whole sections of the Swift runtime (5.6
  /// MiB), and mapping it raised an idle agent from 18.2 to 21 MiB.
  package static func prefault() {
    deckhand_prefault_hot_text()
  }
}
