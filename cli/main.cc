// The `tandem` binary: parses flags, picks the subcommand, and turns a Status into an exit code and
// one error line. Wiring only.
#include <cstdio>
#include <string>
#include <vector>

#include "cli/generate.h"
#include "cli/kv.h"
#include "common/flags.h"
#include "common/log.h"
#include "common/status.h"

namespace {

constexpr char kUsage[] =
    "Usage: tandem <command> [flags]\n"
    "\n"
    "Commands:\n"
    "  generate   Generate text from a prompt in-process: tandem generate --chat \"Hi\"\n"
    "  kv         Inspect the KV store: tandem kv stats|list [N]|lookup KEY|verify|clear\n"
    "             (with --kv_disk_path and/or --redis_url)\n"
    "\n"
    "Every flag can also be set by its environment variable (TANDEM_<NAME>).";

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> args = tandem::ParseFlagsOrExit(argc, argv, kUsage);
  auto log_options = tandem::LogOptionsFromFlags();
  if (!log_options.ok()) {
    std::fprintf(stderr, "tandem: %s\n", std::string(log_options.status().message()).c_str());
    return 2;
  }
  tandem::InitLogging(argv[0], *log_options);
  if (args.empty()) {
    std::fprintf(stderr, "tandem: missing command\n%s\n", kUsage);
    return 2;
  }
  const std::string command = args[0];
  args.erase(args.begin());
  absl::Status status;
  if (command == "generate") {
    status = tandem::cli::RunGenerate(args);
  } else if (command == "kv") {
    status = tandem::cli::RunKv(args);
  } else {
    std::fprintf(stderr, "tandem: unknown command '%s'\n%s\n", command.c_str(), kUsage);
    return 2;
  }
  if (!status.ok()) {
    std::fprintf(stderr, "tandem %s: %s\n", command.c_str(), std::string(status.message()).c_str());
    return tandem::ExitCodeFromStatus(status);
  }
  return 0;
}
