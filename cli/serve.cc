#include "cli/serve.h"

#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <sstream>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/cluster_secret.h"
#include "common/flags.h"
#include "common/http_client.h"
#include "common/log.h"
#include "common/model_format/flags.h"
#include "common/process.h"
#include "common/status.h"
#include "httplib.h"
#include "nlohmann/json.hpp"

namespace tandem::cli {

TANDEM_FLAG(int32_t, serve_port, 8000, "tandem serve: the router's port (the OpenAI API).");
TANDEM_FLAG(int32_t, serve_startup_timeout_s, 300,
            "tandem serve: seconds to wait for each process to become ready.");
TANDEM_FLAG(int32_t, serve_stop_timeout_s, 70,
            "tandem serve: seconds a process gets to drain on Ctrl-C before it is killed. Keep it "
            "above --decode_drain_timeout_ms (60 s), so open streams finish or end cleanly.");
TANDEM_FLAG(int32_t, serve_max_restarts, 5,
            "tandem serve: restarts of one process within a minute before serve gives up.");

namespace {

// Flags serve sets itself for each child; the user's values for them are not forwarded.
constexpr const char* kOwnedFlags[] = {
    "ready_file",         "host",        "node_id",       "prefill_port", "decode_port",
    "decode_data_port",   "router_port", "prefill_nodes", "decode_nodes", "serve_port",
    "cluster_secret_file"};

bool IsOwnedFlag(const std::string& arg, bool* takes_next) {
  *takes_next = false;
  for (const char* name : kOwnedFlags) {
    const std::string flag = absl::StrCat("--", name);
    if (arg == flag) {
      *takes_next = true;
      return true;
    }
    if (arg.rfind(flag + "=", 0) == 0) return true;
  }
  return false;
}

// What serve hands on to each child: flags on its command line, and secret flags (FlagSecrecy)
// as environment variables, which other users cannot read in /proc/<pid>/cmdline.
struct Forwarded {
  std::vector<std::string> args;
  std::vector<std::string> env;  // "TANDEM_NAME=value"
};

// The secret flag `arg` names ("--name=value" or "--name" followed by the value), or nullptr.
const FlagBase* SecretFlagOf(const std::string& arg, bool* takes_next) {
  *takes_next = false;
  if (arg.rfind("--", 0) != 0) return nullptr;
  const size_t eq = arg.find('=');
  const FlagBase* flag =
      FindFlag(arg.substr(2, eq == std::string::npos ? std::string::npos : eq - 2));
  if (flag == nullptr || !flag->secret()) return nullptr;
  *takes_next = eq == std::string::npos;
  return flag;
}

Forwarded ForwardedFlags(const std::vector<std::string>& self_args) {
  Forwarded out;
  for (size_t i = 0; i < self_args.size(); ++i) {
    bool takes_next = false;
    if (IsOwnedFlag(self_args[i], &takes_next)) {
      if (takes_next && i + 1 < self_args.size() && self_args[i + 1].rfind("--", 0) != 0) ++i;
      continue;
    }
    if (const FlagBase* secret = SecretFlagOf(self_args[i], &takes_next); secret != nullptr) {
      std::string value;
      if (!takes_next) {
        value = self_args[i].substr(self_args[i].find('=') + 1);
      } else if (i + 1 < self_args.size()) {
        value = self_args[++i];
      }
      out.env.push_back(absl::StrCat(secret->EnvVar(), "=", value));
      continue;
    }
    out.args.push_back(self_args[i]);
  }
  return out;
}

struct Child {
  std::string role;  // prefill | decode | router
  std::vector<std::string> extra_args;  // role-specific flags, ports pinned after the first start
  std::string ready_file;
  pid_t pid = -1;
  std::map<std::string, int> ports;
  std::vector<absl::Time> restarts;
};

class Supervisor {
 public:
  Supervisor(std::string self_exe, Forwarded forwarded, std::string dir)
      : self_exe_(std::move(self_exe)), forwarded_(std::move(forwarded)), dir_(std::move(dir)) {}
  ~Supervisor() { StopAll(); }

  absl::Status Start(Child& child) {
    std::remove(child.ready_file.c_str());
    std::vector<std::string> args = {self_exe_, child.role};
    args.insert(args.end(), forwarded_.args.begin(), forwarded_.args.end());
    args.insert(args.end(), child.extra_args.begin(), child.extra_args.end());
    args.push_back(absl::StrCat("--ready_file=", child.ready_file));
    std::vector<char*> argv;
    for (std::string& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    // The environment, built before fork (no allocation between fork and exec): serve's own, with
    // the secret flags' variables set to the values serve was given.
    std::vector<std::string> env = forwarded_.env;
    for (char** e = environ; *e != nullptr; ++e) {
      const std::string_view entry(*e);
      const std::string_view name = entry.substr(0, entry.find('='));
      const bool overridden = std::any_of(env.begin(), env.end(), [&](const std::string& s) {
        return s.size() > name.size() && s.compare(0, name.size(), name) == 0 &&
               s[name.size()] == '=';
      });
      if (!overridden) env.emplace_back(entry);
    }
    std::vector<char*> envp;
    for (std::string& e : env) envp.push_back(e.data());
    envp.push_back(nullptr);
    const pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0) return absl::InternalError(absl::StrCat("fork: ", std::strerror(errno)));
    if (pid == 0) {
      // A child must not outlive `tandem serve`, even when serve is killed with SIGKILL.
      prctl(PR_SET_PDEATHSIG, SIGTERM);
      if (getppid() != parent) _exit(1);
      sigset_t none;
      sigemptyset(&none);
      pthread_sigmask(SIG_SETMASK, &none, nullptr);
      execve(argv[0], argv.data(), envp.data());
      _exit(127);
    }
    child.pid = pid;
    return WaitReady(child);
  }

  // Reaps children that exited; restarts those that should be running. Error when one dies too
  // often.
  absl::Status Reap(std::vector<Child*>& children) {
    for (Child* child : children) {
      if (child->pid <= 0) continue;
      int wstatus = 0;
      if (waitpid(child->pid, &wstatus, WNOHANG) != child->pid) continue;
      LOG(ERROR) << "tandem serve: the " << child->role << " process (pid " << child->pid
                 << ") " << Describe(wstatus) << "; restarting it";
      std::fprintf(stderr, "tandem serve: the %s process %s; restarting it\n", child->role.c_str(),
                   Describe(wstatus).c_str());
      child->pid = -1;
      const absl::Time now = absl::Now();
      std::erase_if(child->restarts, [now](absl::Time t) { return now - t > absl::Minutes(1); });
      child->restarts.push_back(now);
      if (static_cast<int>(child->restarts.size()) > GetFlag(FLAGS_serve_max_restarts)) {
        return absl::UnavailableError(absl::StrCat("the ", child->role, " process died ",
                                                   child->restarts.size(),
                                                   " times within a minute; giving up"));
      }
      TANDEM_RETURN_IF_ERROR(Start(*child));
    }
    return absl::OkStatus();
  }

  void Track(Child* child) { tracked_.push_back(child); }

  // SIGTERM to every child (router first, so no new work reaches the nodes), then SIGKILL after
  // --serve_stop_timeout_s.
  void StopAll() {
    for (auto it = tracked_.rbegin(); it != tracked_.rend(); ++it) {
      if ((*it)->pid > 0) kill((*it)->pid, SIGTERM);
    }
    const absl::Time deadline = absl::Now() + absl::Seconds(GetFlag(FLAGS_serve_stop_timeout_s));
    for (auto it = tracked_.rbegin(); it != tracked_.rend(); ++it) {
      Child* child = *it;
      while (child->pid > 0) {
        int wstatus = 0;
        if (waitpid(child->pid, &wstatus, WNOHANG) == child->pid) {
          child->pid = -1;
          break;
        }
        if (absl::Now() > deadline) {
          LOG(WARNING) << "tandem serve: " << child->role << " did not stop in time; killing it";
          kill(child->pid, SIGKILL);
          waitpid(child->pid, &wstatus, 0);
          child->pid = -1;
          break;
        }
        absl::SleepFor(absl::Milliseconds(20));
      }
    }
  }

 private:
  static std::string Describe(int wstatus) {
    if (WIFEXITED(wstatus)) return absl::StrCat("exited with code ", WEXITSTATUS(wstatus));
    if (WIFSIGNALED(wstatus)) return absl::StrCat("was killed by signal ", WTERMSIG(wstatus));
    return "stopped";
  }

  absl::Status WaitReady(Child& child) {
    const absl::Time deadline = absl::Now() + absl::Seconds(GetFlag(FLAGS_serve_startup_timeout_s));
    while (absl::Now() < deadline) {
      int wstatus = 0;
      if (waitpid(child.pid, &wstatus, WNOHANG) == child.pid) {
        child.pid = -1;
        return absl::UnavailableError(absl::StrCat("the ", child.role, " process ",
                                                   Describe(wstatus),
                                                   " before it was ready (its log is above)"));
      }
      std::ifstream in(child.ready_file);
      if (in.good()) {
        std::stringstream text;
        text << in.rdbuf();
        auto json = nlohmann::json::parse(text.str(), nullptr, /*allow_exceptions=*/false);
        if (json.is_object() && json.contains("ports") && json["ports"].is_object()) {
          for (auto& [name, port] : json["ports"].items()) {
            if (port.is_number_integer()) child.ports[name] = port.get<int>();
          }
          return absl::OkStatus();
        }
      }
      absl::SleepFor(absl::Milliseconds(50));
    }
    return absl::DeadlineExceededError(absl::StrCat("the ", child.role, " process was not ready in ",
                                                     GetFlag(FLAGS_serve_startup_timeout_s), " s"));
  }

  std::string self_exe_;
  Forwarded forwarded_;
  std::string dir_;
  std::vector<Child*> tracked_;
};

absl::StatusOr<std::string> SelfExe() {
  char buf[4096];
  ssize_t n = readlink("/proc/self/exe", buf, sizeof(buf) - 1);
  if (n <= 0) return absl::InternalError("cannot read /proc/self/exe");
  return std::string(buf, static_cast<size_t>(n));
}

// True when the router serves HTTPS (--tls_cert, forwarded to it like any router flag).
bool RouterUsesTls() {
  const FlagBase* cert = FindFlag("tls_cert");
  return cert != nullptr && !cert->CurrentString().empty();
}

absl::Status WaitRouterReady(int port) {
  const absl::Time deadline = absl::Now() + absl::Seconds(GetFlag(FLAGS_serve_startup_timeout_s));
  absl::Status last;
  while (absl::Now() < deadline) {
    absl::StatusOr<HttpReply> reply;
    if (RouterUsesTls()) {
      // Our own child on loopback: the certificate is the user's to check, not ours.
      httplib::SSLClient client("127.0.0.1", port);
      client.enable_server_certificate_verification(false);
      client.set_connection_timeout(std::chrono::seconds(2));
      httplib::Result r = client.Get("/ready");
      if (r) {
        reply = HttpReply{r->status, r->body};
      } else {
        reply = absl::UnavailableError(httplib::to_string(r.error()));
      }
    } else {
      reply = HttpGet({"127.0.0.1", port}, "/ready");
    }
    if (reply.ok() && reply->status == 200) return absl::OkStatus();
    last = reply.ok() ? absl::UnavailableError(reply->body) : reply.status();
    absl::SleepFor(absl::Milliseconds(100));
  }
  return absl::DeadlineExceededError(
      absl::StrCat("the router did not report ready: ", last.message()));
}

}  // namespace

absl::Status RunServe(const std::vector<std::string>& self_args) {
  BlockTerminationSignals();
  TANDEM_ASSIGN_OR_RETURN(std::string self_exe, SelfExe());
  char dir_template[] = "/tmp/tandem-serve-XXXXXX";
  if (mkdtemp(dir_template) == nullptr) return absl::InternalError("mkdtemp failed");
  const std::string dir = dir_template;
  const int router_port = GetFlag(FLAGS_serve_port);
  if (router_port < 0 || router_port > 65535) {
    return absl::InvalidArgumentError(absl::StrCat("--serve_port=", router_port, ": not a port"));
  }

  // One cluster secret per run unless the user brings one: a file only this user can read, in
  // serve's private temp dir (mkdtemp makes it 0700), named to the children by path.
  std::string secret_file = GetFlag(FLAGS_cluster_secret_file);
  const bool own_secret = secret_file.empty();
  if (own_secret) {
    secret_file = dir + "/cluster_secret";
    TANDEM_RETURN_IF_ERROR(ClusterSecret::WriteNewFile(secret_file));
  } else {
    TANDEM_RETURN_IF_ERROR(ClusterSecret::ReadFile(secret_file).status());
  }
  // Also on an early return: the secret of a run never outlives it.
  absl::Cleanup remove_secret = [&] {
    if (own_secret) std::remove(secret_file.c_str());
    rmdir(dir.c_str());
  };
  const std::string secret_arg = absl::StrCat("--cluster_secret_file=", secret_file);

  Supervisor supervisor(self_exe, ForwardedFlags(self_args), dir);
  Child prefill{
      .role = "prefill",
      .extra_args = {"--host=127.0.0.1", "--prefill_port=0", "--node_id=prefill-0", secret_arg},
      .ready_file = dir + "/prefill.json",
      .pid = -1,
      .ports = {},
      .restarts = {}};
  Child decode{.role = "decode",
               .extra_args = {"--host=127.0.0.1", "--decode_port=0", "--decode_data_port=0",
                              "--node_id=decode-0", secret_arg},
               .ready_file = dir + "/decode.json",
               .pid = -1,
               .ports = {},
               .restarts = {}};
  supervisor.Track(&prefill);
  supervisor.Track(&decode);
  std::fprintf(stderr, "tandem serve: starting the prefill and decode nodes (model %s)\n",
               GetFlag(format::FLAGS_model).c_str());
  TANDEM_RETURN_IF_ERROR(supervisor.Start(prefill));
  TANDEM_RETURN_IF_ERROR(supervisor.Start(decode));
  // A restarted node comes back on the ports the router knows.
  prefill.extra_args = {"--host=127.0.0.1", absl::StrCat("--prefill_port=", prefill.ports["http"]),
                        "--node_id=prefill-0", secret_arg};
  decode.extra_args = {"--host=127.0.0.1", absl::StrCat("--decode_port=", decode.ports["http"]),
                       absl::StrCat("--decode_data_port=", decode.ports["data"]),
                       "--node_id=decode-0", secret_arg};
  Child router{
      .role = "router",
      .extra_args = {"--host=127.0.0.1", absl::StrCat("--router_port=", router_port),
                     absl::StrCat("--prefill_nodes=127.0.0.1:", prefill.ports["http"]),
                     absl::StrCat("--decode_nodes=127.0.0.1:", decode.ports["http"]), secret_arg},
      .ready_file = dir + "/router.json",
      .pid = -1,
      .ports = {},
      .restarts = {}};
  supervisor.Track(&router);
  TANDEM_RETURN_IF_ERROR(supervisor.Start(router));
  const int port = router.ports["http"];
  router.extra_args[1] = absl::StrCat("--router_port=", port);
  TANDEM_RETURN_IF_ERROR(WaitRouterReady(port));

  TANDEM_RETURN_IF_ERROR(WriteReadyFile(GetFlag(FLAGS_ready_file),
                                        {{"http", port},
                                         {"prefill", prefill.ports["http"]},
                                         {"decode", decode.ports["http"]},
                                         {"decode_data", decode.ports["data"]}}));
  std::printf("Tandem is serving %s\nOpenAI base URL: %s://127.0.0.1:%d/v1\nCtrl-C stops it.\n",
              GetFlag(format::FLAGS_model).c_str(), RouterUsesTls() ? "https" : "http", port);
  std::fflush(stdout);

  std::vector<Child*> children = {&prefill, &decode, &router};
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  absl::Status status;
  while (true) {
    timespec wait = {0, 200 * 1000 * 1000};
    const int sig = sigtimedwait(&signals, nullptr, &wait);
    if (sig == SIGINT || sig == SIGTERM) {
      std::fprintf(stderr, "tandem serve: stopping\n");
      break;
    }
    status = supervisor.Reap(children);
    if (!status.ok()) break;
  }
  supervisor.StopAll();
  std::remove(prefill.ready_file.c_str());
  std::remove(decode.ready_file.c_str());
  std::remove(router.ready_file.c_str());
  rmdir(dir.c_str());
  return status;
}

}  // namespace tandem::cli
