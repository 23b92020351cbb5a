// common/flags.h
//
// The one registry of Tandem's command-line flags (ARCHITECTURE.md §6, style.md §3.9). Each flag is
// declared once, with TANDEM_FLAG, in the flags.cc beside the Options it fills; the registry derives
// its env var (`TANDEM_` + upper-case name) and lists it in `--help` with its default. Values come
// from, in increasing precedence: the default, the env var, the command line (`--flagfile=path`
// reads `--name=value` lines in place, `#` starts a comment).
//
// Only processes read flags: a main() calls ParseFlagsOrExit() once, then turns flag values into
// Options structs that it hands to libraries. Library code never calls GetFlag() or getenv().
//
// Flag objects are globals with static storage. They register themselves during static
// initialisation into a function-local registry, so flags defined in any translation unit linked
// into the process are known before main(); do not read a flag from another global's constructor.
// Libraries are static archives, so an object file is linked only if main() uses something in it:
// keep each TANDEM_FLAG beside the XxxOptionsFromFlags() that main() calls, and its flags are
// registered (and listed by --help) exactly when the process uses them.
// GetFlag/SetFlag are thread-safe; parsing is meant to run once, early in main().
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"

namespace tandem {

enum class FlagType { kBool, kInt32, kInt64, kDouble, kString };
// Where a flag's current value came from; logged with the effective configuration.
enum class FlagSource { kDefault, kEnv, kCommandLine };
// A secret flag (an API key, a URL with a password) is never printed: --help, the effective
// configuration and parse errors show "<redacted>", and `tandem serve` hands it to its children
// through the environment rather than their command lines.
enum class FlagSecrecy { kPublic, kSecret };
inline constexpr char kRedacted[] = "<redacted>";

std::string_view FlagTypeName(FlagType type);  // "bool", "int32", "int64", "double", "string"

// Type-erased view of one flag, as the registry, the parser and --help see it.
class FlagBase {
 public:
  FlagBase(const char* name, FlagType type, const char* help, const char* file,
           FlagSecrecy secrecy = FlagSecrecy::kPublic);
  FlagBase(const FlagBase&) = delete;
  FlagBase& operator=(const FlagBase&) = delete;

  std::string_view name() const { return name_; }
  FlagType type() const { return type_; }
  std::string_view help() const { return help_; }
  std::string_view file() const { return file_; }  // the .cc that declared the flag
  std::string EnvVar() const;                      // "TANDEM_" + upper-case name
  bool secret() const { return secrecy_ == FlagSecrecy::kSecret; }
  // CurrentString(), or kRedacted for a secret flag that is set to a non-empty value.
  std::string PrintableString() const;

  virtual std::string DefaultString() const = 0;
  virtual std::string CurrentString() const = 0;
  FlagSource source() const;

  // Parses `text` strictly and stores it. InvalidArgument "--name: 'text' is not an int32" (the
  // value is left unchanged) on a bad value.
  absl::Status ParseAndSet(std::string_view text, FlagSource source);
  // Restores the default value and source (tests, FlagSaver).
  virtual void ResetToDefault() = 0;

 protected:
  ~FlagBase() = default;
  virtual absl::Status ParseAndSetValue(std::string_view text) = 0;
  void set_source(FlagSource source);

 private:
  const char* name_;
  FlagType type_;
  const char* help_;
  const char* file_;
  const FlagSecrecy secrecy_;
  mutable absl::Mutex source_mu_;
  FlagSource source_ ABSL_GUARDED_BY(source_mu_) = FlagSource::kDefault;
};

template <typename T>
constexpr FlagType FlagTypeOf() {
  if constexpr (std::is_same_v<T, bool>) {
    return FlagType::kBool;
  } else if constexpr (std::is_same_v<T, int32_t>) {
    return FlagType::kInt32;
  } else if constexpr (std::is_same_v<T, int64_t>) {
    return FlagType::kInt64;
  } else if constexpr (std::is_same_v<T, double>) {
    return FlagType::kDouble;
  } else {
    static_assert(std::is_same_v<T, std::string>,
                  "flag types: bool, int32_t, int64_t, double, std::string");
    return FlagType::kString;
  }
}

namespace internal {
// Strict parsers shared by flags and env vars; nullopt when `text` is not a valid T.
std::optional<bool> ParseFlagBool(std::string_view text);
std::optional<int32_t> ParseFlagInt32(std::string_view text);
std::optional<int64_t> ParseFlagInt64(std::string_view text);
std::optional<double> ParseFlagDouble(std::string_view text);
std::string FlagValueToString(bool v);
std::string FlagValueToString(int32_t v);
std::string FlagValueToString(int64_t v);
std::string FlagValueToString(double v);
std::string FlagValueToString(const std::string& v);
}  // namespace internal

// One typed flag. Declare with TANDEM_FLAG; read with GetFlag(FLAGS_name).
template <typename T>
class Flag final : public FlagBase {
 public:
  template <typename D>
  Flag(const char* name, D&& default_value, const char* help, const char* file,
       FlagSecrecy secrecy = FlagSecrecy::kPublic)
      : FlagBase(name, FlagTypeOf<T>(), help, file, secrecy),
        default_(std::forward<D>(default_value)),
        value_(default_) {}

  T Get() const {
    absl::MutexLock lock(&mu_);
    return value_;
  }
  void Set(T value) {
    {
      absl::MutexLock lock(&mu_);
      value_ = std::move(value);
    }
    set_source(FlagSource::kCommandLine);
  }
  const T& default_value() const { return default_; }

  std::string DefaultString() const override { return internal::FlagValueToString(default_); }
  std::string CurrentString() const override { return internal::FlagValueToString(Get()); }
  void ResetToDefault() override {
    {
      absl::MutexLock lock(&mu_);
      value_ = default_;
    }
    set_source(FlagSource::kDefault);
  }

 private:
  absl::Status ParseAndSetValue(std::string_view text) override;

  const T default_;
  mutable absl::Mutex mu_;
  T value_ ABSL_GUARDED_BY(mu_);
};

// Defined in flags.cc for the five flag types.
extern template class Flag<bool>;
extern template class Flag<int32_t>;
extern template class Flag<int64_t>;
extern template class Flag<double>;
extern template class Flag<std::string>;

template <typename T>
T GetFlag(const Flag<T>& flag) {
  return flag.Get();
}
// For tests and for processes that derive one flag from another; marks the flag as set.
template <typename T, typename V>
void SetFlag(Flag<T>* flag, V&& value) {
  flag->Set(T(std::forward<V>(value)));
}

// Every registered flag, sorted by name.
std::vector<FlagBase*> ListFlags();
// The flag named `name` (without dashes), or nullptr.
FlagBase* FindFlag(std::string_view name);

struct ParsedCommandLine {
  std::vector<std::string> positional;  // subcommand and operands, in order
  bool help = false;                    // --help was given: print HelpText() and exit 0
};

// Looks up an env var; returns nullopt when unset. Tests pass their own.
using EnvLookup = std::function<std::optional<std::string>(const std::string& name)>;
EnvLookup ProcessEnv();

// Applies env vars (for every registered flag), then `args` (argv without argv[0]) in order.
// Accepts --name=value, --name value (non-bool), --bool, --nobool, --bool=true|false, --flagfile,
// --help, and `--` (everything after it is positional). Errors are InvalidArgument naming the flag:
// "unknown flag --foo", "--max_tokens: 'abc' is not an int32", "--max_tokens: missing value".
// Flags already applied before an error keep their new values.
absl::StatusOr<ParsedCommandLine> ParseFlags(const std::vector<std::string>& args,
                                             const EnvLookup& env);
absl::StatusOr<ParsedCommandLine> ParseFlags(int argc, const char* const* argv);

// "Usage: ..." followed by every flag, grouped by the file that declares it, with its type,
// default and env var.
std::string HelpText(std::string_view usage);
// One "name=value (source)" per line, sorted: what a process logs once at start.
std::string EffectiveFlags();

// For main(): parses argv; on --help prints HelpText(usage) to stdout and exits 0; on an error
// prints it to stderr and exits 2. Returns the positional args.
std::vector<std::string> ParseFlagsOrExit(int argc, const char* const* argv,
                                          std::string_view usage);

// Overwrites, in place, the values of secret flags in argv (--name=value, or --name value) with
// 'x', so that /proc/<pid>/cmdline no longer shows them. Call after parsing.
void ScrubSecretArgs(int argc, char** argv);

// Saves every flag's value on construction and restores it on destruction (tests).
class FlagSaver {
 public:
  FlagSaver();
  ~FlagSaver();
  FlagSaver(const FlagSaver&) = delete;
  FlagSaver& operator=(const FlagSaver&) = delete;

 private:
  struct Saved {
    FlagBase* flag;
    std::string value;
    FlagSource source;
  };
  std::vector<Saved> saved_;
};

}  // namespace tandem

// Defines the flag object FLAGS_<name> in the current namespace. Use once per name, project-wide,
// in a .cc file; a second definition of a name aborts at start-up naming both files. glog's macros
// use its own globals unqualified (FLAGS_v in VLOG), so a flag named like a glog flag must be
// defined in an unnamed namespace, as common/log.cc does for --v.
#define TANDEM_FLAG(type, name, default_value, help) \
  ::tandem::Flag<type> FLAGS_##name(#name, default_value, help, __FILE__)
// As TANDEM_FLAG, for a value that must never be printed (FlagSecrecy::kSecret).
#define TANDEM_SECRET_FLAG(type, name, default_value, help)               \
  ::tandem::Flag<type> FLAGS_##name(#name, default_value, help, __FILE__, \
                                    ::tandem::FlagSecrecy::kSecret)
// Makes a flag defined in another .cc visible (same namespace as its definition).
#define TANDEM_DECLARE_FLAG(type, name) extern ::tandem::Flag<type> FLAGS_##name
