#include "kernels/model/kv_access.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "common/status.h"

namespace tandem::model {

absl::StatusOr<absl::flat_hash_map<SeqId, int32_t>> CheckKeysHeld(
    const RowBatch& rows, absl::FunctionRef<absl::StatusOr<int32_t>(SeqId)> length) {
  // Per sequence: `held` is one past the run of positions from 0 that hold KV by the time a row
  // attends (the sequence's length, grown by rows that extend it), `end` one past the largest
  // position written.
  struct Walk {
    int32_t length = 0;
    int32_t held = 0;
    int32_t end = 0;
  };
  absl::flat_hash_map<SeqId, Walk> walks;
  for (int32_t i = 0; i < rows.size(); ++i) {
    const SeqId seq = rows.seq_ids[i];
    const int32_t pos = rows.positions[i];
    auto it = walks.find(seq);
    if (it == walks.end()) {
      TANDEM_ASSIGN_OR_RETURN(const int32_t held, length(seq));
      it = walks.emplace(seq, Walk{held, held, 0}).first;
    }
    Walk& w = it->second;
    if (pos == w.held) w.held = pos + 1;
    const int32_t limit = rows.KeyLimit(i);
    if (limit > w.held) {
      return absl::InvalidArgumentError(absl::StrCat(
          "forward: sequence ", seq, " holds ", w.length, " tokens; the row at position ", pos,
          " reads keys up to position ", limit - 1, " but position ", w.held,
          " is neither held nor computed before it"));
    }
    w.end = std::max(w.end, pos + 1);
  }
  absl::flat_hash_map<SeqId, int32_t> ends;
  for (const auto& [seq, w] : walks) ends[seq] = w.end;
  return ends;
}

int32_t LengthAfter(int32_t length, absl::Span<const int32_t> positions) {
  for (const int32_t pos : positions) {
    if (pos == length) length = pos + 1;
  }
  return length;
}

}  // namespace tandem::model
