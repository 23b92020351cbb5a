// tandem-decode: the decode node process (ARCHITECTURE.md §8). Wiring only.
#include <cstdio>
#include <string>

#include "common/flags.h"
#include "common/log.h"
#include "common/status.h"
#include "decode_node/node_main.h"

namespace {

constexpr char kUsage[] =
    "Usage: tandem-decode --model PATH [flags]\n"
    "\n"
    "Serves decode for a Tandem cluster: HTTP on --decode_port (8200), KV data plane on\n"
    "--decode_data_port (8201). Every flag can also be set by its environment variable\n"
    "(TANDEM_<NAME>).";

}  // namespace

int main(int argc, char** argv) {
  tandem::ParseFlagsOrExit(argc, argv, kUsage);
  auto log_options = tandem::LogOptionsFromFlags();
  if (!log_options.ok()) {
    std::fprintf(stderr, "tandem-decode: %s\n", std::string(log_options.status().message()).c_str());
    return 2;
  }
  tandem::InitLogging(argv[0], *log_options);
  const absl::Status status = tandem::decode::RunDecodeNode();
  if (!status.ok()) {
    std::fprintf(stderr, "tandem-decode: %s\n", std::string(status.message()).c_str());
    return tandem::ExitCodeFromStatus(status);
  }
  return 0;
}
