// The `tandem` binary: parses flags, picks the subcommand, and turns a Status into an exit code and
// one error line. Wiring only.
#include <cstdio>
#include <string>
#include <vector>

#include "cli/generate.h"
#include "cli/kv.h"
#include "cli/serve.h"
#include "decode_node/node_main.h"
#include "prefill_node/node_main.h"
#include "router/node_main.h"
#include "common/flags.h"
#include "common/log.h"
#include "common/status.h"

namespace {

constexpr char kUsage[] =
    "Usage: tandem <command> [flags]\n"
    "\n"
    "Commands:\n"
    "  serve      Start a local cluster (router + prefill + decode processes) serving the\n"
    "             OpenAI API: tandem serve [--serve_port 8000] [--api_keys_file FILE]\n"
    "  generate   Generate text from a prompt in-process: tandem generate --chat \"Hi\"\n"
    "  kv         Inspect the KV store: tandem kv stats|list [N]|lookup KEY|verify|clear\n"
    "             (with --kv_disk_path and/or --redis_url)\n"
    "  router     Run the router alone (as tandem-router): --prefill_nodes, --decode_nodes\n"
    "  prefill    Run a prefill node alone (as tandem-prefill)\n"
    "  decode     Run a decode node alone (as tandem-decode)\n"
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
  // The children of `serve` get this process's flags: everything after the command word (secret
  // ones by environment, see cli/serve.cc).
  std::vector<std::string> self_args;
  bool skipped_command = false;
  for (int i = 1; i < argc; ++i) {
    if (!skipped_command && std::string(argv[i]) == command) {
      skipped_command = true;
      continue;
    }
    self_args.push_back(argv[i]);
  }
  // A secret given on the command line stops showing in /proc/<pid>/cmdline from here on (the
  // environment or a file keeps it out from the start).
  tandem::ScrubSecretArgs(argc, argv);
  absl::Status status;
  if (command == "generate") {
    status = tandem::cli::RunGenerate(args);
  } else if (command == "kv") {
    status = tandem::cli::RunKv(args);
  } else if (command == "serve") {
    status = tandem::cli::RunServe(self_args);
  } else if (command == "router") {
    status = tandem::router::RunRouter();
  } else if (command == "prefill") {
    status = tandem::prefill::RunPrefillNode();
  } else if (command == "decode") {
    status = tandem::decode::RunDecodeNode();
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
