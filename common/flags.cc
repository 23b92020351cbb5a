#include "common/flags.h"

#include <algorithm>
#include <charconv>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <sstream>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "common/status.h"

namespace tandem {
namespace {

// Function-local so that flags registering from any translation unit's static initialisers find
// it constructed, whatever the link order.
struct Registry {
  absl::Mutex mu;
  std::map<std::string, FlagBase*, std::less<>> flags ABSL_GUARDED_BY(mu);
};
Registry& GetRegistry() {
  static Registry* registry = new Registry();  // never destroyed: flags outlive static dtors
  return *registry;
}

// Flagfiles may include flagfiles; this bounds a cycle.
constexpr int kMaxFlagfileDepth = 8;

std::string Quote(std::string_view text) { return absl::StrCat("'", AV(text), "'"); }

absl::Status ApplyArgs(const std::vector<std::string>& args, int depth, ParsedCommandLine* out);

// __FILE__ is absolute under CMake; --help shows the repository-relative path.
std::string_view RepoRelative(std::string_view file) {
  static constexpr std::string_view kTopFolders[] = {
      "/common/", "/kernels/", "/kv_store/", "/prefill_node/", "/decode_node/",
      "/router/", "/cli/",     "/tests/",    "/bench/"};
  size_t best = std::string_view::npos;
  for (std::string_view folder : kTopFolders) best = std::min(best, file.find(folder));
  return best == std::string_view::npos ? file : file.substr(best + 1);
}

absl::Status ApplyFlagfile(const std::string& path, int depth, ParsedCommandLine* out) {
  if (depth >= kMaxFlagfileDepth) {
    return absl::InvalidArgumentError(
        absl::StrCat("--flagfile: nesting deeper than ", kMaxFlagfileDepth, " at ", path));
  }
  std::ifstream in(path);
  if (!in) return absl::InvalidArgumentError(absl::StrCat("--flagfile: cannot open ", path));
  std::vector<std::string> args;
  std::string line;
  int line_number = 0;
  while (std::getline(in, line)) {
    ++line_number;
    std::string_view text = SV(absl::StripAsciiWhitespace(line));
    if (text.empty() || text.front() == '#') continue;
    if (text.substr(0, 2) != "--") {
      return absl::InvalidArgumentError(absl::StrCat("--flagfile: ", path, ":", line_number,
                                                     ": expected --name=value, got ", Quote(text)));
    }
    args.emplace_back(text);
  }
  ParsedCommandLine nested;
  absl::Status status = ApplyArgs(args, depth + 1, &nested);
  if (!status.ok()) return Annotate(status, absl::StrCat("in flagfile ", path));
  if (!nested.positional.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("--flagfile: ", path, ": positional argument ", Quote(nested.positional[0])));
  }
  out->help = out->help || nested.help;
  return absl::OkStatus();
}

absl::Status ApplyArgs(const std::vector<std::string>& args, int depth, ParsedCommandLine* out) {
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& arg = args[i];
    if (arg == "--") {
      out->positional.insert(out->positional.end(), args.begin() + i + 1, args.end());
      return absl::OkStatus();
    }
    if (arg.size() < 2 || arg[0] != '-') {  // includes "-" (stdin by convention)
      out->positional.push_back(arg);
      continue;
    }
    if (arg[1] != '-') {
      return absl::InvalidArgumentError(
          absl::StrCat("unknown flag ", arg, " (flags are written --name or --name=value)"));
    }
    std::string_view body = std::string_view(arg).substr(2);
    std::string_view name = body;
    std::optional<std::string> value;
    if (size_t eq = body.find('='); eq != std::string_view::npos) {
      name = body.substr(0, eq);
      value = std::string(body.substr(eq + 1));
    }
    if (name == "help" || name == "helpfull") {
      out->help = true;
      continue;
    }
    if (name == "flagfile") {
      if (!value) {
        if (i + 1 >= args.size()) return absl::InvalidArgumentError("--flagfile: missing value");
        value = args[++i];
      }
      TANDEM_RETURN_IF_ERROR(ApplyFlagfile(*value, depth, out));
      continue;
    }
    FlagBase* flag = FindFlag(name);
    if (flag == nullptr && !value && name.substr(0, 2) == "no") {
      FlagBase* negated = FindFlag(name.substr(2));
      if (negated != nullptr && negated->type() == FlagType::kBool) {
        TANDEM_RETURN_IF_ERROR(negated->ParseAndSet("false", FlagSource::kCommandLine));
        continue;
      }
    }
    if (flag == nullptr) {
      return absl::InvalidArgumentError(absl::StrCat("unknown flag --", AV(name)));
    }
    if (!value) {
      if (flag->type() == FlagType::kBool) {
        value = "true";
      } else if (i + 1 < args.size()) {
        value = args[++i];
      } else {
        return absl::InvalidArgumentError(absl::StrCat("--", AV(name), ": missing value"));
      }
    }
    TANDEM_RETURN_IF_ERROR(flag->ParseAndSet(*value, FlagSource::kCommandLine));
  }
  return absl::OkStatus();
}

}  // namespace

std::string_view FlagTypeName(FlagType type) {
  switch (type) {
    case FlagType::kBool:
      return "bool";
    case FlagType::kInt32:
      return "int32";
    case FlagType::kInt64:
      return "int64";
    case FlagType::kDouble:
      return "double";
    case FlagType::kString:
      return "string";
  }
  return "?";
}

FlagBase::FlagBase(const char* name, FlagType type, const char* help, const char* file,
                   FlagSecrecy secrecy)
    : name_(name), type_(type), help_(help), file_(file), secrecy_(secrecy) {
  Registry& registry = GetRegistry();
  absl::MutexLock lock(&registry.mu);
  auto [it, inserted] = registry.flags.emplace(name, this);
  TANDEM_CHECK(inserted) << "flag --" << name << " is defined twice: in " << file << " and in "
                         << it->second->file();
}

std::string FlagBase::EnvVar() const {
  return absl::StrCat("TANDEM_", absl::AsciiStrToUpper(name_));
}

std::string FlagBase::PrintableString() const {
  std::string value = CurrentString();
  if (secret() && !value.empty()) return kRedacted;
  return value;
}

FlagSource FlagBase::source() const {
  absl::MutexLock lock(&source_mu_);
  return source_;
}

void FlagBase::set_source(FlagSource source) {
  absl::MutexLock lock(&source_mu_);
  source_ = source;
}

absl::Status FlagBase::ParseAndSet(std::string_view text, FlagSource source) {
  absl::Status status = ParseAndSetValue(text);
  if (!status.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("--", name_, ": ", secret() ? std::string(kRedacted) : Quote(text), " is not ",
                     type_ == FlagType::kInt32 || type_ == FlagType::kInt64 ? "an " : "a ",
                     AV(FlagTypeName(type_)), status.message()));
  }
  set_source(source);
  return absl::OkStatus();
}

namespace internal {

std::optional<bool> ParseFlagBool(std::string_view text) {
  bool value;
  if (!absl::SimpleAtob(AV(text), &value)) return std::nullopt;
  return value;
}

std::optional<int32_t> ParseFlagInt32(std::string_view text) {
  int32_t value;
  if (!absl::SimpleAtoi(AV(text), &value)) return std::nullopt;
  return value;
}

std::optional<int64_t> ParseFlagInt64(std::string_view text) {
  int64_t value;
  if (!absl::SimpleAtoi(AV(text), &value)) return std::nullopt;
  return value;
}

std::optional<double> ParseFlagDouble(std::string_view text) {
  double value;
  if (!absl::SimpleAtod(AV(text), &value)) return std::nullopt;
  return value;
}

std::string FlagValueToString(bool v) { return v ? "true" : "false"; }
std::string FlagValueToString(int32_t v) { return absl::StrCat(v); }
std::string FlagValueToString(int64_t v) { return absl::StrCat(v); }
std::string FlagValueToString(double v) {
  // Shortest text that parses back to the same double: "0.15", not "0.14999999999999999".
  char buf[64];
  auto [end, ec] = std::to_chars(buf, buf + sizeof(buf), v);
  return std::string(buf, ec == std::errc() ? end : buf);
}
std::string FlagValueToString(const std::string& v) { return v; }

}  // namespace internal

template <typename T>
absl::Status Flag<T>::ParseAndSetValue(std::string_view text) {
  std::optional<T> parsed;
  if constexpr (std::is_same_v<T, bool>) {
    parsed = internal::ParseFlagBool(text);
  } else if constexpr (std::is_same_v<T, int32_t>) {
    parsed = internal::ParseFlagInt32(text);
  } else if constexpr (std::is_same_v<T, int64_t>) {
    parsed = internal::ParseFlagInt64(text);
  } else if constexpr (std::is_same_v<T, double>) {
    parsed = internal::ParseFlagDouble(text);
  } else {
    parsed = std::string(text);
  }
  if (!parsed) return absl::InvalidArgumentError("");
  absl::MutexLock lock(&mu_);
  value_ = std::move(*parsed);
  return absl::OkStatus();
}

template class Flag<bool>;
template class Flag<int32_t>;
template class Flag<int64_t>;
template class Flag<double>;
template class Flag<std::string>;

std::vector<FlagBase*> ListFlags() {
  Registry& registry = GetRegistry();
  absl::MutexLock lock(&registry.mu);
  std::vector<FlagBase*> out;
  out.reserve(registry.flags.size());
  for (const auto& [name, flag] : registry.flags) out.push_back(flag);
  return out;
}

FlagBase* FindFlag(std::string_view name) {
  Registry& registry = GetRegistry();
  absl::MutexLock lock(&registry.mu);
  auto it = registry.flags.find(name);
  return it == registry.flags.end() ? nullptr : it->second;
}

EnvLookup ProcessEnv() {
  return [](const std::string& name) -> std::optional<std::string> {
    const char* value = std::getenv(name.c_str());
    if (value == nullptr) return std::nullopt;
    return std::string(value);
  };
}

absl::StatusOr<ParsedCommandLine> ParseFlags(const std::vector<std::string>& args,
                                             const EnvLookup& env) {
  for (FlagBase* flag : ListFlags()) {
    std::optional<std::string> value = env(flag->EnvVar());
    if (!value) continue;
    absl::Status status = flag->ParseAndSet(*value, FlagSource::kEnv);
    if (!status.ok()) return Annotate(status, absl::StrCat("env ", flag->EnvVar()));
  }
  ParsedCommandLine out;
  TANDEM_RETURN_IF_ERROR(ApplyArgs(args, /*depth=*/0, &out));
  return out;
}

absl::StatusOr<ParsedCommandLine> ParseFlags(int argc, const char* const* argv) {
  std::vector<std::string> args;
  for (int i = 1; i < argc; ++i) args.emplace_back(argv[i]);
  return ParseFlags(args, ProcessEnv());
}

std::string HelpText(std::string_view usage) {
  std::vector<FlagBase*> flags = ListFlags();
  std::stable_sort(flags.begin(), flags.end(),
                   [](const FlagBase* a, const FlagBase* b) { return a->file() < b->file(); });
  std::ostringstream out;
  out << usage << "\n\nFlags (precedence: default < env var < command line; --flagfile=path reads "
      << "one --name=value per line):\n";
  std::string_view file;
  for (const FlagBase* flag : flags) {
    if (flag->file() != file) {
      file = flag->file();
      out << "\n  from " << RepoRelative(file) << ":\n";
    }
    out << "    --" << flag->name() << "=<" << FlagTypeName(flag->type()) << ">  " << flag->help()
        << "\n      default: ";
    if (flag->secret() && !flag->DefaultString().empty()) {
      out << kRedacted;
    } else if (flag->type() == FlagType::kString) {
      out << '"' << flag->DefaultString() << '"';
    } else {
      out << flag->DefaultString();
    }
    out << "  env: " << flag->EnvVar() << "\n";
  }
  return out.str();
}

std::string EffectiveFlags() {
  std::ostringstream out;
  for (const FlagBase* flag : ListFlags()) {
    const char* source = "default";
    if (flag->source() == FlagSource::kEnv) source = "env";
    if (flag->source() == FlagSource::kCommandLine) source = "command line";
    out << flag->name() << "=" << flag->PrintableString() << " (" << source << ")\n";
  }
  return out.str();
}

std::vector<std::string> ParseFlagsOrExit(int argc, const char* const* argv,
                                          std::string_view usage) {
  absl::StatusOr<ParsedCommandLine> parsed = ParseFlags(argc, argv);
  if (!parsed.ok()) {
    std::fprintf(stderr, "%s: %s\n(--help lists every flag)\n", argc > 0 ? argv[0] : "tandem",
                 std::string(parsed.status().message()).c_str());
    std::exit(2);
  }
  if (parsed->help) {
    std::fputs(HelpText(usage).c_str(), stdout);
    std::exit(0);
  }
  return std::move(parsed->positional);
}

FlagSaver::FlagSaver() {
  for (FlagBase* flag : ListFlags()) {
    saved_.push_back({flag, flag->CurrentString(), flag->source()});
  }
}

FlagSaver::~FlagSaver() {
  for (const Saved& s : saved_) {
    if (s.source == FlagSource::kDefault) {
      s.flag->ResetToDefault();
    } else {
      TANDEM_CHECK(s.flag->ParseAndSet(s.value, s.source).ok()) << "restoring --" << s.flag->name();
    }
  }
}

void ScrubSecretArgs(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    std::string_view arg(argv[i]);
    if (arg.substr(0, 2) != "--") continue;
    const size_t eq = arg.find('=');
    const FlagBase* flag =
        FindFlag(arg.substr(2, eq == std::string_view::npos ? arg.npos : eq - 2));
    if (flag == nullptr || !flag->secret()) continue;
    if (eq != std::string_view::npos) {
      std::memset(argv[i] + eq + 1, 'x', arg.size() - eq - 1);
    } else if (i + 1 < argc) {
      std::memset(argv[i + 1], 'x', std::strlen(argv[i + 1]));
      ++i;
    }
  }
}

}  // namespace tandem
