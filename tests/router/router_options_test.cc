// Tests for router/options.h: the node lists and the checks that name the bad flag.
#include "router/options.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/support/status_matchers.h"

namespace tandem::router {
namespace {

using ::tandem::testing::StatusIs;

TEST(ParseNodeList, HostPortItems) {
  ASSERT_OK_AND_ASSIGN(NodeList nodes,
                       ParseNodeList("prefill_nodes", " 10.0.0.1:8100, prefill-1.svc:8101,,"));
  ASSERT_EQ(nodes.endpoints.size(), 2u);
  EXPECT_EQ(nodes.endpoints[0].ToString(), "10.0.0.1:8100");
  EXPECT_EQ(nodes.endpoints[1].ToString(), "prefill-1.svc:8101");
  EXPECT_TRUE(nodes.dns_names.empty());
  ASSERT_OK_AND_ASSIGN(nodes, ParseNodeList("decode_nodes", ""));
  EXPECT_TRUE(nodes.endpoints.empty());
  EXPECT_TRUE(nodes.dns_names.empty());
}

TEST(ParseNodeList, DnsItemsBesideStaticOnes) {
  ASSERT_OK_AND_ASSIGN(
      NodeList nodes,
      ParseNodeList("decode_nodes",
                    "dns:tandem-decode.ns.svc.cluster.local:8200, 10.0.0.9:8200, dns:d2:9"));
  ASSERT_EQ(nodes.endpoints.size(), 1u);
  EXPECT_EQ(nodes.endpoints[0].ToString(), "10.0.0.9:8200");
  ASSERT_EQ(nodes.dns_names.size(), 2u);
  EXPECT_EQ(nodes.dns_names[0], (DnsNodeName{"tandem-decode.ns.svc.cluster.local", 8200}));
  EXPECT_EQ(nodes.dns_names[1].ToString(), "dns:d2:9");
}

TEST(ParseNodeList, BadItemsNameTheFlag) {
  for (const char* bad : {"host", ":8100", "host:", "host:0", "host:70000", "host:80x", "dns:",
                          "dns:name", "dns::8200", "dns:name:0", "dns:name:port"}) {
    EXPECT_THAT(ParseNodeList("decode_nodes", bad),
                StatusIs(absl::StatusCode::kInvalidArgument, "--decode_nodes"))
        << bad;
  }
}

TEST(RouterOptions, ValidateNamesTheFlag) {
  RouterOptions o;
  o.model_path = "m.gguf";
  EXPECT_OK(o.Validate());
  RouterOptions bad = o;
  bad.policy = "fastest";
  EXPECT_THAT(bad.Validate(), StatusIs(absl::StatusCode::kInvalidArgument, "--router_policy"));
  bad = o;
  bad.service.generation_defaults.temperature = 2.5;
  EXPECT_THAT(bad.Validate(), StatusIs(absl::StatusCode::kInvalidArgument, "--default_temperature"));
  bad = o;
  bad.service.generation_defaults.top_p = 0;
  EXPECT_THAT(bad.Validate(), StatusIs(absl::StatusCode::kInvalidArgument, "--default_top_p"));
  bad = o;
  bad.service.generation_defaults.top_k = -1;
  EXPECT_THAT(bad.Validate(), StatusIs(absl::StatusCode::kInvalidArgument, "--default_top_k"));
  bad = o;
  bad.service.generation_defaults.max_tokens = -5;
  EXPECT_THAT(bad.Validate(), StatusIs(absl::StatusCode::kInvalidArgument, "--default_max_tokens"));
  bad = o;
  bad.dns_refresh = absl::Milliseconds(5);
  EXPECT_THAT(bad.Validate(),
              StatusIs(absl::StatusCode::kInvalidArgument, "--router_dns_refresh_ms"));
  bad = o;
  bad.service.max_retries = -1;
  EXPECT_THAT(bad.Validate(), StatusIs(absl::StatusCode::kInvalidArgument, "--router_max_retries"));
  bad = o;
  bad.poll_interval = absl::Milliseconds(1);
  EXPECT_THAT(bad.Validate(), StatusIs(absl::StatusCode::kInvalidArgument, "--router_poll_ms"));
  bad = o;
  bad.model_path = "";
  EXPECT_THAT(bad.Validate(), StatusIs(absl::StatusCode::kInvalidArgument, "--model"));
  bad = o;
  bad.port = 70000;
  EXPECT_THAT(bad.Validate(), StatusIs(absl::StatusCode::kInvalidArgument, "--router_port"));
  bad = o;
  bad.service.control_timeout = absl::Milliseconds(1);
  EXPECT_THAT(bad.Validate(),
              StatusIs(absl::StatusCode::kInvalidArgument, "--router_control_timeout_ms"));
}

}  // namespace
}  // namespace tandem::router
