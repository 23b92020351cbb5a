// The registered KV layouts: a new layout is one file plus one line in kLayouts.
#include "absl/strings/str_cat.h"
#include "common/status.h"
#include "kernels/model/kv_cache.h"
#include "kernels/model/paged_kv_cache.h"

namespace tandem::model {
namespace {

using Factory = absl::StatusOr<std::unique_ptr<KvCache>> (*)(kernels::KernelBackend&,
                                                             const format::ModelConfig&,
                                                             const KvCacheOptions&);

template <typename Layout>
absl::StatusOr<std::unique_ptr<KvCache>> Make(kernels::KernelBackend& backend,
                                              const format::ModelConfig& config,
                                              const KvCacheOptions& options) {
  TANDEM_ASSIGN_OR_RETURN(std::unique_ptr<Layout> cache, Layout::Create(backend, config, options));
  return std::unique_ptr<KvCache>(std::move(cache));
}

struct Registered {
  std::string_view name;
  Factory factory;
};

constexpr Registered kLayouts[] = {
    {PagedKvCache::kLayoutName, &Make<PagedKvCache>},
};

}  // namespace

std::vector<std::string_view> KvLayoutNames() {
  std::vector<std::string_view> names;
  for (const Registered& r : kLayouts) names.push_back(r.name);
  return names;
}

std::string KvLayoutNamesText() {
  std::string text;
  for (const Registered& r : kLayouts) absl::StrAppend(&text, text.empty() ? "" : "|", AV(r.name));
  return text;
}

absl::StatusOr<std::unique_ptr<KvCache>> CreateKvCache(kernels::KernelBackend& backend,
                                                       const format::ModelConfig& config,
                                                       const KvCacheOptions& options) {
  for (const Registered& r : kLayouts) {
    if (r.name == options.layout) return r.factory(backend, config, options);
  }
  return absl::InvalidArgumentError(
      absl::StrCat("kv layout '", options.layout, "' is not one of ", KvLayoutNamesText()));
}

}  // namespace tandem::model
