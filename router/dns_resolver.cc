// router/dns_resolver.cc
#include "router/dns_resolver.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <sys/socket.h>

#include <algorithm>
#include <tuple>

#include "absl/strings/str_cat.h"
#include "common/status.h"

namespace tandem::router {

std::string DnsNodeName::ToString() const { return absl::StrCat("dns:", name, ":", port); }

absl::StatusOr<std::vector<HttpEndpoint>> ResolveDnsName(const DnsNodeName& dns) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  const int rc = getaddrinfo(dns.name.c_str(), nullptr, &hints, &found);
  if (rc != 0) {
    const std::string why = absl::StrCat("resolving ", dns.name, ": ", gai_strerror(rc));
    if (rc == EAI_NONAME || rc == EAI_NODATA) return absl::NotFoundError(why);
    return absl::UnavailableError(why);
  }
  std::vector<HttpEndpoint> out;
  for (const addrinfo* a = found; a != nullptr; a = a->ai_next) {
    char text[INET6_ADDRSTRLEN] = {};
    const void* addr = nullptr;
    if (a->ai_family == AF_INET) {
      addr = &reinterpret_cast<const sockaddr_in*>(a->ai_addr)->sin_addr;
    } else if (a->ai_family == AF_INET6) {
      addr = &reinterpret_cast<const sockaddr_in6*>(a->ai_addr)->sin6_addr;
    } else {
      continue;
    }
    if (inet_ntop(a->ai_family, addr, text, sizeof(text)) == nullptr) continue;
    out.push_back(HttpEndpoint{text, dns.port});
  }
  freeaddrinfo(found);
  auto key = [](const HttpEndpoint& e) { return std::tie(e.host, e.port); };
  std::sort(out.begin(), out.end(), [&](const auto& a, const auto& b) { return key(a) < key(b); });
  out.erase(std::unique(out.begin(), out.end(),
                        [&](const auto& a, const auto& b) { return key(a) == key(b); }),
            out.end());
  if (out.empty()) return absl::NotFoundError(absl::StrCat("resolving ", dns.name, ": no address"));
  return out;
}

}  // namespace tandem::router
