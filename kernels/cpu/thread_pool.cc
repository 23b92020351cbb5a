#include "kernels/cpu/thread_pool.h"

#include <linux/futex.h>
#include <sched.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <chrono>

#if defined(__x86_64__)
#include <immintrin.h>
#define TANDEM_CPU_RELAX() _mm_pause()
#else
#define TANDEM_CPU_RELAX() \
  do {                     \
  } while (0)
#endif

namespace tandem::kernels::cpu {
namespace {

// How long an idle worker spins before sleeping: long enough to cover the host-side gap between
// two ops of a decode step, short enough not to matter when the server is idle.
constexpr auto kSpinTime = std::chrono::microseconds(500);
// Low half of claim_: the next unclaimed index; all ones marks a job being set up.
constexpr uint64_t kIndexMask = 0xFFFFFFFFull;

void FutexWait(std::atomic<uint32_t>* word, uint32_t expected) {
  syscall(SYS_futex, reinterpret_cast<uint32_t*>(word), FUTEX_WAIT_PRIVATE, expected, nullptr,
          nullptr, 0);
}

void FutexWakeAll(std::atomic<uint32_t>* word) {
  syscall(SYS_futex, reinterpret_cast<uint32_t*>(word), FUTEX_WAKE_PRIVATE, INT32_MAX, nullptr,
          nullptr, 0);
}

}  // namespace

ThreadPool::ThreadPool(int threads) : threads_(threads < 1 ? 1 : threads) {
  workers_.reserve(threads_ - 1);
  for (int i = 1; i < threads_; ++i) workers_.emplace_back([this] { WorkerLoop(); });
}

ThreadPool::~ThreadPool() {
  stop_.store(true);
  generation_.fetch_add(1, std::memory_order_seq_cst);
  FutexWakeAll(&generation_);
  for (auto& t : workers_) t.join();
}

void ThreadPool::DoChunks(uint32_t gen) {
  const uint64_t tag = static_cast<uint64_t>(gen) << 32;
  uint64_t cur = claim_.load(std::memory_order_seq_cst);
  if ((cur & ~kIndexMask) != tag) return;
  RangeFn fn = fn_.load(std::memory_order_seq_cst);
  void* ctx = ctx_.load(std::memory_order_seq_cst);
  const int64_t n = n_.load(std::memory_order_seq_cst);
  const int64_t grain = grain_.load(std::memory_order_seq_cst);
  // Run() retags claim_ before it rewrites the job fields, so if the tag is still ours after
  // reading them, they are this generation's (all accesses are seq_cst: one total order).
  cur = claim_.load(std::memory_order_seq_cst);
  for (;;) {
    if ((cur & ~kIndexMask) != tag) return;  // a later job (ours completed)
    const int64_t begin = static_cast<int64_t>(cur & kIndexMask);
    if (begin >= n) return;
    const int64_t end = begin + grain < n ? begin + grain : n;
    if (!claim_.compare_exchange_weak(cur, tag | static_cast<uint64_t>(end),
                                      std::memory_order_seq_cst, std::memory_order_seq_cst)) {
      continue;
    }
    // A successful claim means the job is unfinished, so fn and ctx are alive until we report.
    fn(ctx, begin, end);
    done_.fetch_add(end - begin, std::memory_order_seq_cst);
    cur = claim_.load(std::memory_order_seq_cst);
  }
}

void ThreadPool::Run(int64_t n, int64_t grain, RangeFn fn, void* ctx) {
  const uint32_t gen = generation_.load(std::memory_order_relaxed) + 1;
  const uint64_t tag = static_cast<uint64_t>(gen) << 32;
  // Retag first (as exhausted): a worker still holding the previous generation now fails every
  // claim and every tag check, so it can neither take a range nor trust the fields written next.
  claim_.store(tag | kIndexMask, std::memory_order_seq_cst);
  fn_.store(fn, std::memory_order_seq_cst);
  ctx_.store(ctx, std::memory_order_seq_cst);
  n_.store(n, std::memory_order_seq_cst);
  grain_.store(grain, std::memory_order_seq_cst);
  done_.store(0, std::memory_order_seq_cst);
  claim_.store(tag, std::memory_order_seq_cst);
  // seq_cst pairs with the worker's sleepers_ increment: either we see the sleeper and wake it, or
  // it sees the new generation before it sleeps.
  generation_.store(gen, std::memory_order_seq_cst);
  if (sleepers_.load(std::memory_order_seq_cst) > 0) FutexWakeAll(&generation_);
  DoChunks(gen);
  // Only ranges already claimed remain; on an oversubscribed machine their owner may be
  // descheduled, so yield the core now and then instead of spinning on it.
  for (int spins = 0; done_.load(std::memory_order_seq_cst) < n; ++spins) {
    TANDEM_CPU_RELAX();
    if (spins % 1024 == 1023) sched_yield();
  }
}

void ThreadPool::WorkerLoop() {
  // Not a fresh load: a job may have been published before this thread got scheduled.
  uint32_t seen = 0;
  for (;;) {
    uint32_t gen = generation_.load(std::memory_order_acquire);
    if (gen == seen) {
      const auto deadline = std::chrono::steady_clock::now() + kSpinTime;
      int spins = 0;
      while ((gen = generation_.load(std::memory_order_acquire)) == seen) {
        TANDEM_CPU_RELAX();
        if (++spins % 256 == 0 && std::chrono::steady_clock::now() > deadline) {
          sleepers_.fetch_add(1, std::memory_order_seq_cst);
          if (generation_.load(std::memory_order_seq_cst) == seen) FutexWait(&generation_, seen);
          sleepers_.fetch_sub(1, std::memory_order_relaxed);
          spins = 0;
        }
      }
    }
    seen = gen;
    if (stop_.load(std::memory_order_acquire)) return;
    DoChunks(gen);
  }
}

}  // namespace tandem::kernels::cpu
