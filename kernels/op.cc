#include "kernels/op.h"

namespace tandem::kernels {
namespace {

struct NameOf {
  std::string_view operator()(const MatMulParams&) const { return "matmul"; }
  std::string_view operator()(const EmbeddingParams&) const { return "embedding"; }
  std::string_view operator()(const RmsNormParams&) const { return "rmsnorm"; }
  std::string_view operator()(const RopeParams&) const { return "rope"; }
  std::string_view operator()(const SwiGluParams&) const { return "swiglu"; }
  std::string_view operator()(const SoftmaxParams&) const { return "softmax"; }
  std::string_view operator()(const KvWriteParams&) const { return "kv_write"; }
  std::string_view operator()(const KvGatherParams&) const { return "kv_gather"; }
  std::string_view operator()(const PagedAttentionParams&) const { return "paged_attention"; }
  std::string_view operator()(const SampleParams&) const { return "sample"; }
  std::string_view operator()(const AttentionPrefillParams&) const { return "attention_prefill"; }
};

}  // namespace

std::string_view OpName(const OpCall& call) { return std::visit(NameOf{}, call); }

std::string_view SparseMethodName(SparseMethod m) {
  switch (m) {
    case SparseMethod::kDense:
      return "dense";
    case SparseMethod::kSale:
      return "sale";
    case SparseMethod::kPowerAttention:
      return "power";
  }
  return "unknown";
}

std::optional<SparseMethod> ParseSparseMethod(std::string_view name) {
  for (SparseMethod m : {SparseMethod::kDense, SparseMethod::kSale, SparseMethod::kPowerAttention}) {
    if (name == SparseMethodName(m)) return m;
  }
  return std::nullopt;
}

}  // namespace tandem::kernels
