// A flag defined in another translation unit, to check static registration across files.
#include "common/flags.h"

namespace tandem::testing {
TANDEM_FLAG(int64_t, flags_test_other_tu_bytes, int64_t{1} << 30,
            "Test flag defined in flags_test_other_tu.cc.");
}  // namespace tandem::testing
