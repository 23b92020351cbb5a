// kernels/cuda/attention_prefill_host.cc
//
// CudaBackend::RunAttentionPrefill: the host half of the f32 AttentionPrefill (attention_prefill.cu).
// The block mask is sized by the smallest and largest positions, exactly as cpu_ref's Selection,
// so the host reads q_pos and kv_pos back (one synchronising copy: this op already needs the host
// to size its buffers). The static part of the selection (every block, PowerAttention's pattern,
// SALE's sink and local window) is computed here with the rules of kernels/sparse_pattern.h, which
// cpu_ref and the kernels share, and uploaded; SALE's estimated blocks are added on the device. AttentionStats are counted on the host
// from the final mask, reading it back only when stats are requested and SALE changed it.
#include <algorithm>
#include <cstdint>
#include <iterator>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/status.h"
#include "kernels/cuda/cuda_backend.h"
#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/op_args.h"
#include "kernels/cuda/op_prepare.h"
#include "kernels/sparse_pattern.h"

namespace tandem::kernels::cuda {
namespace {

int64_t Align256(int64_t v) { return (v + 255) / 256 * 256; }

// Copies a strided device i32 vector to the host; fails on a negative entry, like cpu_ref.
absl::Status ReadPositions(const char* name, const int32_t* dev, int64_t n, int64_t stride,
                           cudaStream_t stream, std::vector<int32_t>* out) {
  out->assign(static_cast<size_t>(n), 0);
  if (n == 0) return absl::OkStatus();
  std::vector<int32_t> raw(static_cast<size_t>((n - 1) * stride + 1));
  TANDEM_RETURN_IF_CUDA_ERROR(cudaMemcpyAsync(raw.data(), dev, raw.size() * sizeof(int32_t),
                                              cudaMemcpyDeviceToHost, stream));
  TANDEM_RETURN_IF_CUDA_ERROR(cudaStreamSynchronize(stream));
  for (int64_t i = 0; i < n; ++i) {
    (*out)[i] = raw[static_cast<size_t>(i * stride)];
    if ((*out)[i] < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("attention_prefill: ", name, "[", i, "]=", (*out)[i], " < 0"));
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status CudaBackend::RunAttentionPrefill(const AttentionPrefillParams& p) {
  TANDEM_ASSIGN_OR_RETURN(const AttentionPrefillArgs a, PrepareAttentionPrefill(p, device_));
  if (p.stats != nullptr) *p.stats = AttentionStats{};
  if (a.n_q == 0) return absl::OkStatus();
  std::vector<int32_t> qpos, kpos;
  TANDEM_RETURN_IF_ERROR(ReadPositions("q_pos", a.q_pos, a.n_q, a.q_pos_stride, stream_, &qpos));
  TANDEM_RETURN_IF_ERROR(
      ReadPositions("kv_pos", a.kv_pos, a.n_kv, a.kv_pos_stride, stream_, &kpos));

  const SparseConfig& c = p.sparse;
  PrefillMaskArgs m;
  m.bq = QBlock(c);
  m.bk = KBlock(c);
  if (a.n_kv > 0) {
    const auto [qmin, qmax] = std::minmax_element(qpos.begin(), qpos.end());
    const auto [kmin, kmax] = std::minmax_element(kpos.begin(), kpos.end());
    m.qb0 = *qmin / m.bq;
    m.n_qb = *qmax / m.bq - m.qb0 + 1;
    m.kb0 = *kmin / m.bk;
    m.n_kb = *kmax / m.bk - m.kb0 + 1;
  }
  const bool sale_sparse = c.method == SparseMethod::kSale && !SaleIsDense(c, a.n_kv);
  const bool every_block =
      c.method == SparseMethod::kDense || (c.method == SparseMethod::kSale && !sale_sparse);
  const int64_t head_blocks = m.n_qb * m.n_kb;
  std::vector<uint8_t> keep;
  if (!every_block && a.n_kv > 0) {
    keep.assign(static_cast<size_t>(a.n_heads * head_blocks), 0);
    for (int64_t qb = 0; qb < m.n_qb; ++qb) {
      for (int64_t kb = 0; kb < m.n_kb; ++kb) {
        const bool k = c.method == SparseMethod::kPowerAttention
                           ? PowerKeeps(c, qb + m.qb0, kb + m.kb0)
                           : SaleMandatory(c, qb + m.qb0, kb + m.kb0);
        keep[static_cast<size_t>(qb * m.n_kb + kb)] = k ? 1 : 0;
      }
    }
    for (int64_t h = 1; h < a.n_heads; ++h) {
      std::copy_n(keep.begin(), head_blocks, keep.begin() + h * head_blocks);
    }
  }

  // Scratch: [mask | SALE: k_mean, q8, q_scale, q_mean_dot, k8, k_scale, row_threshold].
  const int64_t q_rows = a.n_q * a.n_heads, k_rows = a.n_kv * a.n_kv_heads, hd = a.head_dim;
  const int64_t sizes[] = {static_cast<int64_t>(keep.size()),
                           sale_sparse ? a.n_kv_heads * hd * 4 : 0,
                           sale_sparse ? q_rows * hd : 0,
                           sale_sparse ? q_rows * 4 : 0,
                           sale_sparse ? q_rows * 4 : 0,
                           sale_sparse ? k_rows * hd : 0,
                           sale_sparse ? k_rows * 4 : 0,
                           sale_sparse ? q_rows * 8 : 0};
  int64_t offsets[std::size(sizes)];
  int64_t total = 0;
  for (size_t i = 0; i < std::size(sizes); ++i) {
    offsets[i] = total;
    total += Align256(sizes[i]);
  }
  if (total > 0) TANDEM_RETURN_IF_ERROR(EnsureScratch(total));
  char* base = static_cast<char*>(scratch_);
  if (!keep.empty()) {
    m.keep = reinterpret_cast<uint8_t*>(base + offsets[0]);
    // From pageable memory: returns once `keep` is staged, so it may go out of scope after.
    TANDEM_RETURN_IF_CUDA_ERROR(
        cudaMemcpyAsync(m.keep, keep.data(), keep.size(), cudaMemcpyHostToDevice, stream_));
  }
  if (sale_sparse) {
    SaleSelectArgs s;
    s.config = c;
    s.k_mean = reinterpret_cast<float*>(base + offsets[1]);
    s.q8 = reinterpret_cast<int8_t*>(base + offsets[2]);
    s.q_scale = reinterpret_cast<float*>(base + offsets[3]);
    s.q_mean_dot = reinterpret_cast<float*>(base + offsets[4]);
    s.k8 = reinterpret_cast<int8_t*>(base + offsets[5]);
    s.k_scale = reinterpret_cast<float*>(base + offsets[6]);
    s.row_threshold = reinterpret_cast<double*>(base + offsets[7]);
    TANDEM_RETURN_IF_CUDA_ERROR(LaunchSaleSelectF32(a, s, m, stream_));
  }
  TANDEM_RETURN_IF_CUDA_ERROR(LaunchAttentionPrefillF32(a, m, stream_));

  if (p.stats != nullptr && a.n_kv > 0) {
    if (sale_sparse) {
      TANDEM_RETURN_IF_CUDA_ERROR(
          cudaMemcpyAsync(keep.data(), m.keep, keep.size(), cudaMemcpyDeviceToHost, stream_));
      TANDEM_RETURN_IF_CUDA_ERROR(cudaStreamSynchronize(stream_));
    }
    // A block is causal when its smallest key position is <= its largest query position.
    std::vector<int32_t> qb_max(static_cast<size_t>(m.n_qb), -1);
    std::vector<int32_t> kb_min(static_cast<size_t>(m.n_kb), INT32_MAX);
    for (int32_t x : qpos) qb_max[x / m.bq - m.qb0] = std::max(qb_max[x / m.bq - m.qb0], x);
    for (int32_t x : kpos) kb_min[x / m.bk - m.kb0] = std::min(kb_min[x / m.bk - m.kb0], x);
    for (int64_t h = 0; h < a.n_heads; ++h) {
      for (int64_t qb = 0; qb < m.n_qb; ++qb) {
        for (int64_t kb = 0; kb < m.n_kb; ++kb) {
          if (kb_min[kb] > qb_max[qb]) continue;
          ++p.stats->causal_blocks;
          p.stats->computed_blocks +=
              keep.empty() ? 1 : keep[static_cast<size_t>(h * head_blocks + qb * m.n_kb + kb)];
        }
      }
    }
  }
  return absl::OkStatus();
}

}  // namespace tandem::kernels::cuda
