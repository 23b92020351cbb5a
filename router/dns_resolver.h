// router/dns_resolver.h
//
// DNS discovery of nodes (ARCHITECTURE.md §8): a `dns:name:port` item of --prefill_nodes or
// --decode_nodes names a DNS name whose every address is one node listening on `port`, such as a
// Kubernetes headless Service (one A/AAAA record per ready pod). NodeRegistry resolves each name
// again every --router_dns_refresh_ms and adds and drops nodes as the answer changes.
//
// ResolveDnsName uses the system resolver (getaddrinfo: /etc/hosts, then DNS, per nsswitch.conf),
// so it blocks for as long as the resolver does. Thread-safe.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/http_client.h"

namespace tandem::router {

struct DnsNodeName {
  std::string name;  // a DNS name (or an address literal)
  int port = 0;      // every address's node listens here
  std::string ToString() const;  // "dns:name:port"
  bool operator==(const DnsNodeName&) const = default;
};

// Every address of `dns.name` (IPv4 and IPv6, numeric, without duplicates, sorted) with
// `dns.port`. NotFound when the name has no address (NXDOMAIN or no records: a headless Service
// with no ready pod), Unavailable for a resolver failure (server unreachable, timeout).
absl::StatusOr<std::vector<HttpEndpoint>> ResolveDnsName(const DnsNodeName& dns);

// What NodeRegistry resolves with: ResolveDnsName, or a test's stand-in.
using DnsResolver = std::function<absl::StatusOr<std::vector<HttpEndpoint>>(const DnsNodeName&)>;

}  // namespace tandem::router
