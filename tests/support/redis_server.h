// tests/support/redis_server.h
//
// RedisServer: a real redis-server for a test, on 127.0.0.1 with a free port and a temp dir, started
// by fork/exec and stopped by its pid (never by name). Kill() and Restart() (same port, same
// password) let failure tests take the server away and bring it back. No persistence, so a restart
// comes back empty. Not thread-safe; one per test fixture. Waits poll with deadlines, never sleep a
// fixed time.
#pragma once

#include <arpa/inet.h>
#include <hiredis/hiredis.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace tandem::testing {

class RedisServer {
 public:
  explicit RedisServer(std::string password = "") : password_(std::move(password)) {}
  ~RedisServer() {
    Stop();
    if (!dir_.empty()) std::filesystem::remove_all(dir_);
  }

  static bool Available() { return ::access("/usr/bin/redis-server", X_OK) == 0; }

  absl::Status Start() {
    if (dir_.empty()) {
      char tmpl[] = "/tmp/tandem-redis-XXXXXX";
      if (::mkdtemp(tmpl) == nullptr) return absl::InternalError("mkdtemp failed");
      dir_ = tmpl;
    }
    if (port_ == 0) port_ = FreePort();
    std::vector<std::string> args = {"/usr/bin/redis-server", "--bind", "127.0.0.1", "--port",
                                     std::to_string(port_), "--save", "", "--appendonly", "no",
                                     "--dir", dir_, "--daemonize", "no", "--logfile",
                                     dir_ + "/redis.log", "--maxmemory", "2gb",
                                     "--maxmemory-policy", "allkeys-lru"};
    if (!password_.empty()) {
      args.push_back("--requirepass");
      args.push_back(password_);
    }
    pid_ = ::fork();
    if (pid_ < 0) return absl::InternalError("fork failed");
    if (pid_ == 0) {
      std::vector<char*> argv;
      for (auto& a : args) argv.push_back(a.data());
      argv.push_back(nullptr);
      ::execv(argv[0], argv.data());
      ::_exit(127);
    }
    const absl::Time deadline = absl::Now() + absl::Seconds(10);
    while (absl::Now() < deadline) {
      if (Ping()) return absl::OkStatus();
      int status = 0;
      if (::waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        return absl::InternalError(absl::StrCat("redis-server exited at start; see ", dir_,
                                                "/redis.log"));
      }
      std::this_thread::yield();
    }
    return absl::DeadlineExceededError("redis-server did not answer PING within 10 s");
  }

  // SIGKILL: the server vanishes mid-request, as in a crash.
  void Kill() { Signal(SIGKILL); }
  void Stop() { Signal(SIGTERM); }
  absl::Status Restart() { return Start(); }

  int port() const { return port_; }
  pid_t pid() const { return pid_; }
  std::string Url() const {
    return password_.empty() ? absl::StrCat("redis://127.0.0.1:", port_)
                             : absl::StrCat("redis://:", password_, "@127.0.0.1:", port_);
  }

  // A fresh authenticated connection for direct manipulation (corrupting values); caller frees.
  redisContext* Connect() const {
    timeval tv{1, 0};
    redisContext* c = redisConnectWithTimeout("127.0.0.1", port_, tv);
    if (c != nullptr && c->err == 0 && !password_.empty()) {
      auto* r = static_cast<redisReply*>(redisCommand(c, "AUTH %s", password_.c_str()));
      if (r != nullptr) freeReplyObject(r);
    }
    return c;
  }

 private:
  static int FreePort() {
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = 0;
    ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a));
    socklen_t len = sizeof(a);
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
    ::close(fd);
    return ntohs(a.sin_port);
  }

  bool Ping() const {
    redisContext* c = Connect();
    bool ok = false;
    if (c != nullptr && c->err == 0) {
      auto* r = static_cast<redisReply*>(redisCommand(c, "PING"));
      ok = r != nullptr && r->type == REDIS_REPLY_STATUS;
      if (r != nullptr) freeReplyObject(r);
    }
    if (c != nullptr) redisFree(c);
    return ok;
  }

  void Signal(int sig) {
    if (pid_ <= 0) return;
    ::kill(pid_, sig);
    int status = 0;
    ::waitpid(pid_, &status, 0);
    pid_ = -1;
  }

  std::string password_;
  std::string dir_;
  int port_ = 0;
  pid_t pid_ = -1;
};

}  // namespace tandem::testing
