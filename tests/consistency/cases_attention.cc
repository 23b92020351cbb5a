// kv_write, kv_gather and paged_attention cases. Pools are pre-filled with random data so that
// writes to the wrong slot and reads of the wrong page both change the compared result.
#include <algorithm>
#include <numeric>
#include <string>

#include "absl/strings/str_cat.h"
#include "common/status.h"
#include "tests/consistency/cases.h"

namespace tandem::kernels::testing {
namespace {

constexpr int64_t kPageTokens = 16;

// kv_write: rows written to distinct slots scattered over every page, in no particular order, of
// pools pre-filled with noise. kv_gather: the order a prefill reads, positions 0..n-1 through a
// page table of shuffled pages, so a wrong page, offset or widening changes the gathered rows.
class KvCopyCase : public OpCase {
 public:
  KvCopyCase(bool to_pool, DType pool, int64_t n, int64_t kvh, int64_t hd)
      : to_pool_(to_pool),
        pool_(pool),
        n_(n),
        kvh_(kvh),
        hd_(hd),
        pages_((n + kPageTokens - 1) / kPageTokens + 4) {}

  std::string Op() const override {
    return std::string(to_pool_ ? KvWriteParams::kName : KvGatherParams::kName);
  }
  std::string Vars() const override {
    return absl::StrCat("pool=", AV(DTypeName(pool_)), ",n=", n_, ",kv_heads=", kvh_, ",hd=", hd_,
                        ",page_tokens=", kPageTokens);
  }
  // Only the copied rows move.
  double Bytes() const override {
    return static_cast<double>(n_) * kvh_ * hd_ * (2 * 4 + 2 * DTypeBlockBytes(pool_)) + 4 * n_;
  }

  void MakeInputs(std::mt19937& rng) override {
    const Role rows = to_pool_ ? Role::kIn : Role::kOut;
    const Role pools = to_pool_ ? Role::kOut : Role::kIn;
    FillUniform(Add("k", DType::kF32, {n_, kvh_, hd_}, rows), rng, -4, 4);
    FillUniform(Add("v", DType::kF32, {n_, kvh_, hd_}, rows), rng, -4, 4);
    FillUniform(Add("k_pool", pool_, {pages_, kPageTokens, kvh_, hd_}, pools), rng, -1, 1);
    FillUniform(Add("v_pool", pool_, {pages_, kPageTokens, kvh_, hd_}, pools), rng, -1, 1);
    std::vector<int32_t> slots(static_cast<size_t>(n_));
    if (to_pool_) {
      std::vector<int32_t> all(static_cast<size_t>(pages_ * kPageTokens));
      std::iota(all.begin(), all.end(), 0);
      std::shuffle(all.begin(), all.end(), rng);
      std::copy_n(all.begin(), n_, slots.begin());
    } else {
      std::vector<int32_t> page_of(static_cast<size_t>(pages_));
      std::iota(page_of.begin(), page_of.end(), 0);
      std::shuffle(page_of.begin(), page_of.end(), rng);
      for (int64_t p = 0; p < n_; ++p) {
        slots[static_cast<size_t>(p)] = static_cast<int32_t>(
            page_of[static_cast<size_t>(p / kPageTokens)] * kPageTokens + p % kPageTokens);
      }
    }
    SetI32(Add("slots", DType::kI32, {n_}, Role::kIn), slots);
  }
  OpCall MakeCall(const std::vector<TensorView>& v) override {
    if (to_pool_) {
      return KvWriteParams{.k = v[0], .v = v[1], .k_pool = v[2], .v_pool = v[3], .slots = v[4]};
    }
    return KvGatherParams{.k_pool = v[2], .v_pool = v[3], .slots = v[4], .k = v[0], .v = v[1]};
  }

 private:
  bool to_pool_;
  DType pool_;
  int64_t n_, kvh_, hd_, pages_;
};

class PagedAttentionCase : public OpCase {
 public:
  static constexpr int64_t kHeads = 9;
  static constexpr int64_t kKvHeads = 3;
  static constexpr int64_t kHeadDim = 64;

  PagedAttentionCase(DType pool, std::vector<SeqSpec> seqs, const char* label)
      : pool_(pool), seqs_(std::move(seqs)), label_(label) {
    for (const SeqSpec& s : seqs_) {
      n_ += s.queries;
      const int64_t pages = (s.len + kPageTokens - 1) / kPageTokens;
      max_pages_ = std::max(max_pages_, pages);
      used_pages_ += pages;
    }
  }

  std::string Op() const override { return std::string(PagedAttentionParams::kName); }
  std::string Vars() const override {
    std::string lens;
    for (const SeqSpec& s : seqs_)
      absl::StrAppend(&lens, lens.empty() ? "" : "/", s.len, "q", s.queries);
    return absl::StrCat("pool=", AV(DTypeName(pool_)), ",batch=", label_, ",seqs=", lens,
                        ",heads=", kHeads, "/", kKvHeads, ",hd=", kHeadDim);
  }
  double MaxNmse() const override { return pool_ == DType::kF16 ? 1e-6 : 1e-7; }
  std::string MaxNmseReason() const override {
    return pool_ == DType::kF16 ? "with an f16 cache, device kernels may also round q and the "
                                  "softmax weights to f16 for tensor-core MMA: NMSE ~1e-7"
                                : "";
  }
  double Flops() const override {
    double f = 0.0;
    for (const SeqSpec& s : seqs_) {
      for (int32_t q = 0; q < s.queries; ++q) f += 4.0 * kHeads * kHeadDim * (s.len - q);
    }
    return f;
  }

  void MakeInputs(std::mt19937& rng) override {
    const int64_t pool_pages = used_pages_ + 3;  // spare pages that nobody may read
    FillUniform(Add("q", DType::kF32, {n_, kHeads, kHeadDim}, Role::kIn), rng, -1, 1);
    FillUniform(Add("k_pool", pool_, {pool_pages, kPageTokens, kKvHeads, kHeadDim}, Role::kIn), rng,
                -3, 3);
    FillUniform(Add("v_pool", pool_, {pool_pages, kPageTokens, kKvHeads, kHeadDim}, Role::kIn), rng,
                -1, 1);
    FillUniform(Add("out", DType::kF32, {n_, kHeads, kHeadDim}, Role::kOut), rng, -1, 1);
    // Non-contiguous page tables: a shuffled pool handed out in order; unused entries are -1.
    std::vector<int32_t> free_pages(static_cast<size_t>(pool_pages));
    std::iota(free_pages.begin(), free_pages.end(), 0);
    std::shuffle(free_pages.begin(), free_pages.end(), rng);
    std::vector<int32_t> table(seqs_.size() * max_pages_, -1);
    std::vector<int32_t> q_seq, q_pos;
    size_t next = 0;
    for (size_t s = 0; s < seqs_.size(); ++s) {
      const int64_t pages = (seqs_[s].len + kPageTokens - 1) / kPageTokens;
      for (int64_t p = 0; p < pages; ++p) table[s * max_pages_ + p] = free_pages[next++];
    }
    // Queries interleaved across sequences, as a mixed prefill/decode batch would arrive.
    for (int32_t q = 0;; ++q) {
      bool any = false;
      for (size_t s = 0; s < seqs_.size(); ++s) {
        if (q >= seqs_[s].queries) continue;
        any = true;
        q_seq.push_back(static_cast<int32_t>(s));
        q_pos.push_back(seqs_[s].len - seqs_[s].queries + q);
      }
      if (!any) break;
    }
    SetI32(Add("q_seq", DType::kI32, {n_}, Role::kIn), q_seq);
    SetI32(Add("q_pos", DType::kI32, {n_}, Role::kIn), q_pos);
    SetI32(
        Add("page_table", DType::kI32, {static_cast<int64_t>(seqs_.size()), max_pages_}, Role::kIn),
        table);
  }
  OpCall MakeCall(const std::vector<TensorView>& v) override {
    return PagedAttentionParams{.q = v[0],
                                .k_pool = v[1],
                                .v_pool = v[2],
                                .out = v[3],
                                .q_seq = v[4],
                                .q_pos = v[5],
                                .page_table = v[6],
                                .scale = 0.125f};
  }

 private:
  DType pool_;
  std::vector<SeqSpec> seqs_;
  const char* label_;
  int64_t n_ = 0;
  int64_t max_pages_ = 1;
  int64_t used_pages_ = 0;
};

}  // namespace

std::unique_ptr<OpCase> MakeKvWriteCase(DType pool, int64_t n, int64_t kv_heads, int64_t head_dim) {
  return std::make_unique<KvCopyCase>(true, pool, n, kv_heads, head_dim);
}

std::unique_ptr<OpCase> MakeKvGatherCase(DType pool, int64_t n, int64_t kv_heads,
                                         int64_t head_dim) {
  return std::make_unique<KvCopyCase>(false, pool, n, kv_heads, head_dim);
}

std::unique_ptr<OpCase> MakePagedAttentionCase(DType pool, std::vector<SeqSpec> seqs,
                                               const char* label) {
  return std::make_unique<PagedAttentionCase>(pool, std::move(seqs), label);
}

}  // namespace tandem::kernels::testing
