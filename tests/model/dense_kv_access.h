// tests/model/dense_kv_access.h
//
// DenseKvAccess: a KV layout that exists only in tests, to show that a layout is one file. Per
// sequence and layer one contiguous f32 K and V buffer of the whole context ([context_length,
// n_kv_heads, head_dim], position p at row p: no pages, no page table), and attention through
// AttentionPrefill over the sequence's first key_limit rows (a different kernel from the paged
// layout's PagedAttention). The runner drives it unchanged. Rows must be causal (key limit =
// position + 1); rows of one sequence must be consecutive in the call. Owns its buffers; not
// thread-safe. Header-only test support.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <numeric>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "common/model_format/model_config.h"
#include "common/status.h"
#include "kernels/backend.h"
#include "kernels/model/kv_access.h"
#include "kernels/model/kv_cache.h"

namespace tandem::model::testing {

class DenseKvAccess final : public KvAccess {
 public:
  DenseKvAccess(kernels::KernelBackend& backend, const format::ModelConfig& config)
      : backend_(backend), config_(config) {}

  absl::StatusOr<SeqId> AddSequence() {
    Sequence s;
    const int64_t bytes = int64_t{config_.context_length} * config_.kv_dim() * 4;
    for (int l = 0; l < config_.n_layers; ++l) {
      TANDEM_ASSIGN_OR_RETURN(kernels::DeviceBuffer k,
                              kernels::DeviceBuffer::Create(backend_, bytes));
      TANDEM_ASSIGN_OR_RETURN(kernels::DeviceBuffer v,
                              kernels::DeviceBuffer::Create(backend_, bytes));
      s.k.push_back(std::move(k));
      s.v.push_back(std::move(v));
    }
    seqs_.push_back(std::move(s));
    if (kv_pos_.data() == nullptr) {
      std::vector<int32_t> iota(static_cast<size_t>(config_.context_length));
      std::iota(iota.begin(), iota.end(), 0);
      TANDEM_ASSIGN_OR_RETURN(kv_pos_, kernels::DeviceBuffer::Create(backend_, iota.size() * 4));
      TANDEM_RETURN_IF_ERROR(backend_.CopyToDevice(kv_pos_.data(), iota.data(),
                                                   static_cast<int64_t>(iota.size() * 4)));
    }
    return static_cast<SeqId>(seqs_.size() - 1);
  }
  int32_t Length(SeqId seq) const { return seqs_[seq].length; }

  absl::Status Prepare(const RowBatch& rows) override {
    for (int32_t i = 0; i < rows.size(); ++i) {
      if (rows.KeyLimit(i) != rows.positions[i] + 1) {
        return absl::UnimplementedError("dense kv: only causal rows");
      }
      const SeqId seq = rows.seq_ids[i];
      if (i > 0 && rows.seq_ids[i - 1] != seq &&
          std::find(rows.seq_ids.begin(), rows.seq_ids.begin() + i, seq) !=
              rows.seq_ids.begin() + i) {
        return absl::UnimplementedError("dense kv: a sequence's rows must be consecutive");
      }
    }
    // Every position has its row in the buffers already: only which keys are held is checked.
    return CheckKeysHeld(
               rows,
               [this](SeqId seq) -> absl::StatusOr<int32_t> {
                 if (seq < 0 || seq >= static_cast<SeqId>(seqs_.size())) {
                   return absl::InvalidArgumentError(absl::StrCat("dense kv: no sequence ", seq));
                 }
                 return seqs_[seq].length;
               })
        .status();
  }

  absl::Status BeginChunk(const KvChunk& chunk) override {
    chunk_ = chunk;
    runs_.clear();
    for (int32_t i = chunk.begin; i < chunk.end; ++i) {
      if (runs_.empty() || chunk.rows->seq_ids[i] != runs_.back().seq) {
        runs_.push_back(Run{chunk.rows->seq_ids[i], i - chunk.begin, i - chunk.begin});
      }
      runs_.back().end = i - chunk.begin + 1;
      runs_.back().key_end = std::max(runs_.back().key_end, chunk.rows->positions[i] + 1);
    }
    return absl::OkStatus();
  }

  absl::Status Store(int layer, const TensorView& k, const TensorView& v) override {
    TANDEM_RETURN_IF_ERROR(RotateKeys(backend_, config_, k, chunk_.positions));
    for (const Run& r : runs_) {
      // Position p is row p: a KvWrite into the buffer viewed as pages of one token.
      TANDEM_RETURN_IF_ERROR(
          backend_.Run(kernels::KvWriteParams{.k = k.Rows(r.begin, r.end),
                                              .v = v.Rows(r.begin, r.end),
                                              .k_pool = Pool(seqs_[r.seq].k[layer]),
                                              .v_pool = Pool(seqs_[r.seq].v[layer]),
                                              .slots = chunk_.positions.Rows(r.begin, r.end)}));
    }
    return absl::OkStatus();
  }

  absl::Status Attend(int layer, const TensorView& q, const TensorView& out,
                      AttentionContext& ctx) override {
    for (const Run& r : runs_) {
      const int64_t keys = r.key_end;
      TANDEM_RETURN_IF_ERROR(backend_.Run(
          kernels::AttentionPrefillParams{.q = q.Rows(r.begin, r.end),
                                          .k = Rows(seqs_[r.seq].k[layer], keys),
                                          .v = Rows(seqs_[r.seq].v[layer], keys),
                                          .out = out.Rows(r.begin, r.end),
                                          .q_pos = chunk_.positions.Rows(r.begin, r.end),
                                          .kv_pos = kv_pos_.View(DType::kI32, {keys}),
                                          .scale = ctx.scale,
                                          .sparse = kernels::SparseConfig{},
                                          .stats = nullptr}));
    }
    return absl::OkStatus();
  }

  void Commit(const RowBatch& rows) override {
    for (int32_t i = 0; i < rows.size(); ++i) {
      Sequence& s = seqs_[rows.seq_ids[i]];
      s.length = LengthAfter(s.length, {rows.positions[i]});
    }
  }

 private:
  struct Sequence {
    std::vector<kernels::DeviceBuffer> k, v;  // per layer, [context, n_kv_heads, head_dim] f32
    int32_t length = 0;
  };
  struct Run {  // consecutive chunk rows of one sequence: [begin, end) within the chunk
    SeqId seq = 0;
    int32_t begin = 0, end = 0;
    int32_t key_end = 0;
  };

  TensorView Pool(const kernels::DeviceBuffer& b) const {
    return b.View(DType::kF32, {config_.context_length, 1, config_.n_kv_heads, config_.head_dim});
  }
  TensorView Rows(const kernels::DeviceBuffer& b, int64_t n) const {
    return b.View(DType::kF32, {n, config_.n_kv_heads, config_.head_dim});
  }

  kernels::KernelBackend& backend_;
  const format::ModelConfig config_;
  std::vector<Sequence> seqs_;
  kernels::DeviceBuffer kv_pos_;  // 0 .. context_length - 1
  KvChunk chunk_;
  std::vector<Run> runs_;
};

}  // namespace tandem::model::testing
