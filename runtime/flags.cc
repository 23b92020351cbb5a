#include "runtime/flags.h"

#include "common/flags.h"
#include "common/status.h"
#include "kernels/model/flags.h"
#include "kv_store/options.h"

namespace tandem::runtime {

absl::StatusOr<ModelOptions> ModelOptionsFromFlags() {
  ModelOptions o;
  o.model_path = GetFlag(model::FLAGS_model);
  o.backend = GetFlag(model::FLAGS_backend);
  TANDEM_ASSIGN_OR_RETURN(o.runner, model::RunnerOptionsFromFlags());
  TANDEM_ASSIGN_OR_RETURN(o.kv, model::KvCacheOptionsFromFlags());
  o.kv_block_tokens = kv::KvBlockTokensFromFlags();
  o.kv_namespace = kv::KvNamespaceFromFlags();
  return o;
}

}  // namespace tandem::runtime
