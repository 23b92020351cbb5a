// tandem-prefill: the prefill node process. Wiring only: flags, logging, RunPrefillNode, exit code.
#include <cstdio>
#include <string>

#include "common/flags.h"
#include "common/log.h"
#include "common/status.h"
#include "prefill_node/node_main.h"

namespace {

constexpr char kUsage[] =
    "Usage: tandem-prefill --model PATH [flags]\n"
    "\n"
    "Serves POST /internal/v1/prefill on --prefill_port (8100): prefill with KV reuse from the\n"
    "node's KV store, first token, KV shipped to the decode node. Every flag can also be set by\n"
    "its environment variable (TANDEM_<NAME>).";

}  // namespace

int main(int argc, char** argv) {
  const std::vector<std::string> args = tandem::ParseFlagsOrExit(argc, argv, kUsage);
  if (!args.empty()) {
    std::fprintf(stderr, "tandem-prefill: unexpected argument '%s'\n%s\n", args[0].c_str(), kUsage);
    return 2;
  }
  absl::StatusOr<tandem::LogOptions> log_options = tandem::LogOptionsFromFlags();
  if (!log_options.ok()) {
    std::fprintf(stderr, "tandem-prefill: %s\n",
                 std::string(log_options.status().message()).c_str());
    return 2;
  }
  tandem::InitLogging(argv[0], *log_options);
  const absl::Status status = tandem::prefill::RunPrefillNode();
  if (!status.ok()) {
    std::fprintf(stderr, "tandem-prefill: %s\n", std::string(status.message()).c_str());
    return tandem::ExitCodeFromStatus(status);
  }
  return 0;
}
