// tests/support/nmse.h
//
// The normalised mean squared error the tests compare outputs by: sum (got - want)^2 / sum want^2,
// in double. A non-finite value in `got`, or a size mismatch, is +inf, so that an unwritten
// (NaN-poisoned) output always fails a threshold; an all-zero `want` gives the plain squared error.
#pragma once

#include <cmath>
#include <vector>

namespace tandem::testing {

inline double Nmse(const std::vector<float>& got, const std::vector<float>& want) {
  if (got.size() != want.size()) return INFINITY;
  double num = 0.0, den = 0.0;
  for (size_t i = 0; i < want.size(); ++i) {
    if (!std::isfinite(got[i])) return INFINITY;
    const double diff = static_cast<double>(got[i]) - want[i];
    num += diff * diff;
    den += static_cast<double>(want[i]) * want[i];
  }
  return den > 0.0 ? num / den : num;
}

}  // namespace tandem::testing
