#include "runtime/flags.h"

#include "common/flags.h"
#include "common/status.h"
#include "kernels/model/flags.h"
#include "kv_store/options.h"

namespace tandem::runtime {

TANDEM_FLAG(std::string, backend, ModelOptions{}.backend,
            "Kernel backend: cpu, cpu_ref (naive reference) or cuda:N.");

absl::StatusOr<ModelOptions> ModelOptionsFromFlags() {
  ModelOptions o;
  o.model_path = GetFlag(model::FLAGS_model);
  o.backend = GetFlag(FLAGS_backend);
  TANDEM_ASSIGN_OR_RETURN(o.runner, model::RunnerOptionsFromFlags());
  TANDEM_ASSIGN_OR_RETURN(o.kv, model::KvCacheOptionsFromFlags());
  o.kv_block_tokens = kv::KvBlockTokensFromFlags();
  o.kv_namespace = kv::KvNamespaceFromFlags();
  return o;
}

}  // namespace tandem::runtime
