// kernels/cuda/sample.cu
//
// Sample: one block per row of logits, entirely on the device; only the row's uniform draw `u`
// (taken on the host from its generator, so every backend consumes the same stream) comes in.
// Greedy rows are a block-wide max over 64-bit keys (value bits, then the inverted id, so the
// lowest id wins ties). Otherwise the op.h pipeline runs as three radix selections over those keys:
// the top_k-th largest scaled logit, the shortest prefix of probabilities (descending, lower id
// first) reaching top_p, then the first token whose cumulative probability exceeds u * (mass of the
// prefix). Each selection walks 8 levels of 8-bit digits; a level histograms counts and probability
// mass of the surviving candidates in shared memory and warp 0 finds the crossing digit.
// Probabilities are kept in a per-row scratch row (`probs`, -1 for tokens cut by top_k).
#include <cstdint>

#include "kernels/cuda/block_reduce.cuh"
#include "kernels/cuda/dispatch.cuh"
#include "kernels/cuda/op_args.h"

namespace tandem::kernels::cuda {
namespace {

constexpr int kThreads = 1024;

struct RadixState {
  float mass[256];
  unsigned int count[256];
  unsigned long long prefix;
  float before;
};

// Maps float order onto unsigned order.
__device__ __forceinline__ uint32_t OrderedBits(float f) {
  const uint32_t u = __float_as_uint(f);
  return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}

// Larger key = earlier in "value descending, lower id first on ties" order.
__device__ __forceinline__ unsigned long long MakeKey(float v, int64_t id) {
  return (static_cast<unsigned long long>(OrderedBits(v)) << 32) |
         (0xFFFFFFFFu - static_cast<uint32_t>(id));
}

__device__ __forceinline__ int32_t KeyId(unsigned long long key) {
  return static_cast<int32_t>(0xFFFFFFFFu - static_cast<uint32_t>(key & 0xFFFFFFFFull));
}

// Warp 0: given this level's histogram, picks the digit (bins scanned from 255 down) at which the
// running mass, starting from `before`, first reaches `target` (> if kStrict, >= otherwise), or the
// lowest non-empty digit if none does. Writes the extended prefix and the mass before that digit.
template <bool kStrict>
__device__ void PickDigit(RadixState& st, unsigned long long prefix, int shift, float before,
                          float target) {
  const int lane = threadIdx.x & 31;
  float mass[8];
  unsigned int count[8];
  float lane_mass = 0.0f;
#pragma unroll
  for (int j = 0; j < 8; ++j) {
    const int b = 255 - 8 * lane - j;  // lane order = descending digits
    mass[j] = st.mass[b];
    count[j] = st.count[b];
    lane_mass += mass[j];
  }
  float incl = lane_mass;
#pragma unroll
  for (int o = 1; o < 32; o <<= 1) {
    const float v = __shfl_up_sync(0xFFFFFFFFu, incl, o);
    if (lane >= o) incl += v;
  }
  float run = before + (incl - lane_mass);
  int found = -1, lowest = -1;
  float found_before = 0.0f, lowest_before = 0.0f;
#pragma unroll
  for (int j = 0; j < 8; ++j) {
    if (count[j] == 0) continue;
    lowest = j;
    lowest_before = run;
    const float next = run + mass[j];
    if (found < 0 && (kStrict ? next > target : next >= target)) {
      found = j;
      found_before = run;
    }
    run = next;
  }
  const unsigned int found_mask = __ballot_sync(0xFFFFFFFFu, found >= 0);
  const unsigned int lowest_mask = __ballot_sync(0xFFFFFFFFu, lowest >= 0);
  int src, j;
  float b4;
  if (found_mask != 0) {
    src = __ffs(found_mask) - 1;  // first lane in descending order
    j = __shfl_sync(0xFFFFFFFFu, found, src);
    b4 = __shfl_sync(0xFFFFFFFFu, found_before, src);
  } else {
    src = lowest_mask != 0 ? 31 - __clz(lowest_mask) : 31;  // last non-empty digit
    j = __shfl_sync(0xFFFFFFFFu, lowest, src);
    b4 = __shfl_sync(0xFFFFFFFFu, lowest_before, src);
    if (j < 0) j = 7;  // no candidate at all: cannot happen, keep the key well-formed
  }
  if (lane == 0) {
    st.prefix = prefix | (static_cast<unsigned long long>(255 - 8 * src - j) << shift);
    st.before = b4;
  }
}

// Among candidates (get(i, key, mass) returns true), ordered by descending key, returns the key of
// the first one at which the running mass reaches `target` (see PickDigit), or the smallest key.
template <bool kStrict, typename Get>
__device__ unsigned long long RadixFind(int64_t vocab, float target, Get get, RadixState& st) {
  unsigned long long prefix = 0, mask = 0;
  float before = 0.0f;
  for (int shift = 56; shift >= 0; shift -= 8) {
    for (int b = threadIdx.x; b < 256; b += blockDim.x) {
      st.mass[b] = 0.0f;
      st.count[b] = 0;
    }
    __syncthreads();
    for (int64_t i = threadIdx.x; i < vocab; i += blockDim.x) {
      unsigned long long key;
      float w;
      if (!get(i, key, w) || (key & mask) != prefix) continue;
      const int b = static_cast<int>((key >> shift) & 0xFF);
      atomicAdd(&st.mass[b], w);
      atomicAdd(&st.count[b], 1u);
    }
    __syncthreads();
    if (threadIdx.x < 32) PickDigit<kStrict>(st, prefix, shift, before, target);
    __syncthreads();
    prefix = st.prefix;
    before = st.before;
    mask |= 0xFFull << shift;
    // The next level's clearing happens after every thread has read prefix/before here: the
    // writes to st.prefix come only after two more barriers.
  }
  return prefix;
}

__global__ void __launch_bounds__(kThreads) SampleKernel(SampleArgs a) {
  __shared__ RadixState st;
  __shared__ float fscratch[32];
  __shared__ unsigned long long uscratch[32];
  const int64_t r = blockIdx.x;
  const int64_t vocab = a.vocab;
  const float* logits = a.logits + r * a.logits_stride;
  const SampleRowConfig cfg = a.configs[r];

  if (!(cfg.temperature > 0.0f)) {  // greedy (NaN too)
    unsigned long long best = 0;
    for (int64_t i = threadIdx.x; i < vocab; i += blockDim.x) {
      const unsigned long long key = MakeKey(logits[i], i);
      best = key > best ? key : best;
    }
    best = BlockMaxU64(best, uscratch);
    if (threadIdx.x == 0) a.out_tokens[r] = KeyId(best);
    return;
  }

  const float temp = cfg.temperature;
  // Keep tokens whose scaled-logit key is >= kth: the top_k largest (lower id first on ties).
  unsigned long long kth = 0;
  if (cfg.top_k > 0 && cfg.top_k < vocab) {
    kth = RadixFind<false>(
        vocab, static_cast<float>(cfg.top_k),
        [&](int64_t i, unsigned long long& key, float& w) {
          key = MakeKey(logits[i] / temp, i);
          w = 1.0f;
          return true;
        },
        st);
  }

  // Softmax over the kept tokens; the row maximum is always kept.
  const float neg_inf = -__int_as_float(0x7F800000);
  float zmax = neg_inf;
  for (int64_t i = threadIdx.x; i < vocab; i += blockDim.x) zmax = fmaxf(zmax, logits[i] / temp);
  zmax = BlockMax(zmax, fscratch);
  float sum = 0.0f;
  for (int64_t i = threadIdx.x; i < vocab; i += blockDim.x) {
    const float z = logits[i] / temp;
    if (MakeKey(z, i) >= kth) sum += expf(z - zmax);
  }
  sum = BlockSum(sum, fscratch);
  float* probs = a.probs + r * vocab;
  for (int64_t i = threadIdx.x; i < vocab; i += blockDim.x) {
    const float z = logits[i] / temp;
    probs[i] = MakeKey(z, i) >= kth ? expf(z - zmax) / sum : -1.0f;
  }
  __syncthreads();  // probs is re-read by other threads of the block

  // Nucleus: keys >= cut.
  unsigned long long cut = 0;
  if (cfg.top_p < 1.0f) {
    cut = RadixFind<false>(
        vocab, cfg.top_p,
        [&](int64_t i, unsigned long long& key, float& w) {
          w = probs[i];
          key = MakeKey(w, i);
          return w >= 0.0f;
        },
        st);
  }
  float mass = 0.0f;
  for (int64_t i = threadIdx.x; i < vocab; i += blockDim.x) {
    const float p = probs[i];
    if (p >= 0.0f && MakeKey(p, i) >= cut) mass += p;
  }
  mass = BlockSum(mass, fscratch);

  const unsigned long long pick = RadixFind<true>(
      vocab, cfg.u * mass,
      [&](int64_t i, unsigned long long& key, float& w) {
        w = probs[i];
        key = MakeKey(w, i);
        return w >= 0.0f && key >= cut;
      },
      st);
  if (threadIdx.x == 0) a.out_tokens[r] = KeyId(pick);
}

}  // namespace

cudaError_t LaunchSample(const SampleArgs& a, cudaStream_t stream) {
  if (a.n == 0) return cudaSuccess;
  if (a.n > 0x7FFFFFFF || a.vocab <= 0 || a.vocab > 0x7FFFFFFF) {
    return cudaErrorInvalidConfiguration;
  }
  SampleKernel<<<static_cast<unsigned int>(a.n), kThreads, 0, stream>>>(a);
  return cudaGetLastError();
}

}  // namespace tandem::kernels::cuda
