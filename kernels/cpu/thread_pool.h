// kernels/cpu/thread_pool.h
//
// ThreadPool runs data-parallel loops for the "cpu" backend with microsecond dispatch: `threads`
// workers counting the caller, so a pool of 2 starts one extra thread. Idle workers spin briefly on
// a generation counter (decode issues ~300 small ops per token, back to back) and then sleep on a
// futex so an idle server does not burn its cores. The pool owns its threads and joins them on
// destruction. ParallelFor must be called from one thread at a time (the backend's user); it is not
// reentrant (fn must not call ParallelFor).
#pragma once

#include <atomic>
#include <cstdint>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

namespace tandem::kernels::cpu {

class ThreadPool {
 public:
  explicit ThreadPool(int threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int threads() const { return threads_; }

  // Calls fn(begin, end) over disjoint ranges covering [0, n), each at least `grain` long (except
  // the last), on all threads; returns when every range is done. Ranges are claimed dynamically, so
  // uneven work balances; with grain >= n / threads each thread gets one contiguous range.
  template <typename Fn>
  void ParallelFor(int64_t n, int64_t grain, Fn&& fn) {
    if (n <= 0) return;
    if (grain < 1) grain = 1;
    if (threads_ == 1 || n <= grain || n >= (int64_t{1} << 31)) {
      fn(int64_t{0}, n);
      return;
    }
    Run(
        n, grain,
        [](void* ctx, int64_t b, int64_t e) {
          (*static_cast<std::remove_reference_t<Fn>*>(ctx))(b, e);
        },
        &fn);
  }

  // Splits [0, n) into one contiguous range per thread (the bandwidth-bound matvec's best layout).
  template <typename Fn>
  void ParallelForStatic(int64_t n, Fn&& fn) {
    ParallelFor(n, (n + threads_ - 1) / threads_, std::forward<Fn>(fn));
  }

 private:
  using RangeFn = void (*)(void* ctx, int64_t begin, int64_t end);
  void Run(int64_t n, int64_t grain, RangeFn fn, void* ctx);
  void WorkerLoop();
  void DoChunks(uint32_t gen);

  const int threads_;
  std::vector<std::thread> workers_;

  // The current job. Written by the caller before it publishes a generation, read by workers that
  // saw that generation; a worker acts on them only after claiming a range of the same generation,
  // which is impossible once the job has completed, so late readers are harmless.
  std::atomic<RangeFn> fn_{nullptr};
  std::atomic<void*> ctx_{nullptr};
  std::atomic<int64_t> n_{0};
  std::atomic<int64_t> grain_{1};

  // (generation << 32) | next unclaimed index. Claims are tagged with the generation so a worker
  // that wakes late can never take a range of a later job.
  alignas(64) std::atomic<uint64_t> claim_{0};
  alignas(64) std::atomic<int64_t> done_{0};         // elements finished in the current job
  alignas(64) std::atomic<uint32_t> generation_{0};  // futex word; bumped once per job
  alignas(64) std::atomic<int> sleepers_{0};         // workers in (or entering) futex wait
  std::atomic<bool> stop_{false};
};

}  // namespace tandem::kernels::cpu
