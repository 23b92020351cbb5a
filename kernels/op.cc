#include "kernels/op.h"

#include <type_traits>

namespace tandem::kernels {

std::string_view OpName(const OpCall& call) {
  return std::visit([](const auto& p) { return std::decay_t<decltype(p)>::kName; }, call);
}

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
