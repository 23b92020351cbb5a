// tandem-router: the router process. Wiring only: flags, logging, RunRouter, exit code.
#include <cstdio>
#include <string>
#include <vector>

#include "common/flags.h"
#include "common/log.h"
#include "common/status.h"
#include "router/node_main.h"

namespace {

constexpr char kUsage[] =
    "Usage: tandem-router --model PATH --prefill_nodes HOST:PORT,... --decode_nodes HOST:PORT,...\n"
    "\n"
    "Serves the OpenAI API (/v1/chat/completions, /v1/completions, /v1/models) on --router_port\n"
    "(8000), plus /health, /ready and /metrics, and routes each request to a prefill and a decode\n"
    "node. Every flag can also be set by its environment variable (TANDEM_<NAME>).";

}  // namespace

int main(int argc, char** argv) {
  const std::vector<std::string> args = tandem::ParseFlagsOrExit(argc, argv, kUsage);
  if (!args.empty()) {
    std::fprintf(stderr, "tandem-router: unexpected argument '%s'\n%s\n", args[0].c_str(), kUsage);
    return 2;
  }
  absl::StatusOr<tandem::LogOptions> log_options = tandem::LogOptionsFromFlags();
  if (!log_options.ok()) {
    std::fprintf(stderr, "tandem-router: %s\n", std::string(log_options.status().message()).c_str());
    return 2;
  }
  tandem::InitLogging(argv[0], *log_options);
  const absl::Status status = tandem::router::RunRouter();
  if (!status.ok()) {
    std::fprintf(stderr, "tandem-router: %s\n", std::string(status.message()).c_str());
    return tandem::ExitCodeFromStatus(status);
  }
  return 0;
}
