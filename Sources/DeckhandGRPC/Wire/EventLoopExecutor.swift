internal import CDeckhandExecutorHook
internal import NIOCore
internal import NIOPosix

/// Makes NIO's singleton event loop group Swift's global executor, so that
/// tasks run on the loop thread that reads and writes the sockets: no hop
/// between threads per call.
///
/// NIO's own `unsafeTryInstallSingletonPosixEventLoopGroupAsConcurrencyGlobalExecutor`
/// finds the hook with `dlsym`, which fails, silently, in a binary built
/// with `--static-swift-stdlib` (the runtime's symbols are not exported):
/// such a process then runs its tasks on Dispatch's threads. This links the
/// hook directly and works in both builds. The plugin SDK and `deckhand`
/// both use it.
package enum EventLoopExecutor {
  private typealias EnqueueHook =
    @convention(thin) (UnownedJob, @convention(thin) (UnownedJob) -> Void) -> Void

  /// Installs the hook; false if another one was set first. Call once, from
  /// the main thread, before any task starts.
  package static func install() -> Bool {
    guard deckhand_enqueue_global_hook_is_unset() != 0 else { return false }
    return withUnsafeTemporaryAllocation(of: EnqueueHook.self, capacity: 1) { slot in
      // `any()` is sticky: a job enqueued from a loop thread stays there.
      slot.baseAddress!.initialize(to: { job, _ in
        MultiThreadedEventLoopGroup.singleton.any().enqueue(ExecutorJob(job))
      })
      slot.baseAddress!.withMemoryRebound(to: UnsafeRawPointer.self, capacity: 1) {
        deckhand_set_enqueue_global_hook($0.pointee)
      }
      return true
    }
  }
}
