// Tests of the "cpu" backend's ThreadPool: coverage of ranges, many back-to-back dispatches, and
// wake-up after the workers have gone to sleep.
#include "kernels/cpu/thread_pool.h"

#include <atomic>
#include <chrono>
#include <vector>

#include "gtest/gtest.h"

namespace tandem::kernels::cpu {
namespace {

void ExpectCoversOnce(ThreadPool& pool, int64_t n, int64_t grain) {
  std::vector<std::atomic<int>> hits(static_cast<size_t>(n));
  pool.ParallelFor(n, grain, [&](int64_t b, int64_t e) {
    ASSERT_LE(0, b);
    ASSERT_LE(b, e);
    ASSERT_LE(e, n);
    for (int64_t i = b; i < e; ++i) hits[i].fetch_add(1);
  });
  for (int64_t i = 0; i < n; ++i) ASSERT_EQ(hits[i].load(), 1) << "index " << i << " of " << n;
}

TEST(ThreadPoolTest, CoversEveryIndexOnce) {
  for (int threads : {1, 2, 3, 4}) {
    ThreadPool pool(threads);
    for (int64_t n : {0, 1, 2, 7, 64, 1000}) {
      for (int64_t grain : {1, 3, 16, 5000}) ExpectCoversOnce(pool, n, grain);
    }
  }
}

TEST(ThreadPoolTest, StaticSplitGivesOneRangePerThread) {
  ThreadPool pool(2);
  std::atomic<int> calls{0};
  pool.ParallelForStatic(100, [&](int64_t b, int64_t e) {
    EXPECT_EQ(e - b, 50);
    calls.fetch_add(1);
  });
  EXPECT_EQ(calls.load(), 2);
}

TEST(ThreadPoolTest, ManyBackToBackDispatches) {
  ThreadPool pool(2);
  std::atomic<int64_t> sum{0};
  for (int iter = 0; iter < 20000; ++iter) {
    pool.ParallelFor(2, 1, [&](int64_t b, int64_t e) { sum.fetch_add(e - b); });
  }
  EXPECT_EQ(sum.load(), 40000);
}

TEST(ThreadPoolTest, WakesWorkersAfterTheySleep) {
  ThreadPool pool(2);
  for (int round = 0; round < 3; ++round) {
    // Idle long enough (the spin phase is 0.5 ms) that workers reach the futex wait.
    const auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(5);
    while (std::chrono::steady_clock::now() < until) {
    }
    ExpectCoversOnce(pool, 1000, 1);
  }
}

}  // namespace
}  // namespace tandem::kernels::cpu
