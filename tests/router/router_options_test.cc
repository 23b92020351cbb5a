// Tests for router/options.h: the node lists and the checks that name the bad flag.
#include "router/options.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/support/status_matchers.h"

namespace tandem::router {
namespace {

using ::tandem::testing::StatusIs;

TEST(ParseNodeList, HostPortItems) {
  ASSERT_OK_AND_ASSIGN(std::vector<HttpEndpoint> nodes,
                       ParseNodeList("prefill_nodes", " 10.0.0.1:8100, prefill-1.svc:8101,,"));
  ASSERT_EQ(nodes.size(), 2u);
  EXPECT_EQ(nodes[0].ToString(), "10.0.0.1:8100");
  EXPECT_EQ(nodes[1].ToString(), "prefill-1.svc:8101");
  ASSERT_OK_AND_ASSIGN(nodes, ParseNodeList("decode_nodes", ""));
  EXPECT_TRUE(nodes.empty());
}

TEST(ParseNodeList, BadItemsNameTheFlag) {
  for (const char* bad : {"host", ":8100", "host:", "host:0", "host:70000", "host:80x"}) {
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
  bad.max_retries = -1;
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
  bad.control_timeout = absl::Milliseconds(1);
  EXPECT_THAT(bad.Validate(),
              StatusIs(absl::StatusCode::kInvalidArgument, "--router_control_timeout_ms"));
}

}  // namespace
}  // namespace tandem::router
