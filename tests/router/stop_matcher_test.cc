// Tests for router/stop_matcher.h.
#include "router/stop_matcher.h"

#include <string>
#include <utility>
#include <vector>

#include "gtest/gtest.h"

namespace tandem::router {
namespace {

// Feeds `deltas` and returns everything emitted (Flush included unless stopped) plus the stop flag.
std::pair<std::string, bool> FeedAll(std::vector<std::string> stops,
                                     const std::vector<std::string>& deltas) {
  StopMatcher m(std::move(stops));
  std::string out;
  for (const std::string& d : deltas) {
    StopMatcher::Result r = m.Feed(d);
    out += r.emit;
    if (r.stopped) return {out, true};
  }
  out += m.Flush();
  return {out, false};
}

TEST(StopMatcherTest, HoldsPartialPrefixAcrossChunks) {
  StopMatcher m({"</end>"});
  auto r = m.Feed("Hello </e");
  EXPECT_EQ(r.emit, "Hello ");
  EXPECT_FALSE(r.stopped);
  EXPECT_EQ(m.held(), 3u);
  r = m.Feed("nd> after");
  EXPECT_EQ(r.emit, "");
  EXPECT_TRUE(r.stopped);
  EXPECT_TRUE(m.stopped());
  EXPECT_EQ(m.Feed("more").emit, "");
  EXPECT_TRUE(m.Feed("more").stopped);
  EXPECT_EQ(m.Flush(), "");
}

TEST(StopMatcherTest, FalsePrefixIsReleased) {
  StopMatcher m({"</end>"});
  EXPECT_EQ(m.Feed("a </e").emit, "a ");
  auto r = m.Feed("x");  // "</ex" cannot become "</end>"
  EXPECT_EQ(r.emit, "</ex");
  EXPECT_FALSE(r.stopped);
  EXPECT_EQ(m.held(), 0u);
}

TEST(StopMatcherTest, NoFalseHoldbackAtEnd) {
  StopMatcher m({"STOP"});
  EXPECT_EQ(m.Feed("the ST").emit, "the ");
  EXPECT_EQ(m.Flush(), "ST");
  EXPECT_EQ(FeedAll({"STOP"}, {"no stop here"}),
            std::make_pair(std::string("no stop here"), false));
  EXPECT_EQ(FeedAll({"\n\n"}, {"a\n", "b\n"}), std::make_pair(std::string("a\nb\n"), false));
}

TEST(StopMatcherTest, StopInsideOneDeltaAndByteSplit) {
  EXPECT_EQ(FeedAll({"END"}, {"abcENDdef"}), std::make_pair(std::string("abc"), true));
  EXPECT_EQ(FeedAll({"END"}, {"E", "N", "D"}), std::make_pair(std::string(""), true));
  EXPECT_EQ(FeedAll({"END"}, {"xE", "NxE", "ND!"}), std::make_pair(std::string("xENx"), true));
  // A multi-byte stop split inside a character.
  EXPECT_EQ(FeedAll({"\xC3\xA9t\xC3\xA9"}, {"sum\xC3", "\xA9t\xC3", "\xA9 fin"}),
            std::make_pair(std::string("sum"), true));
}

TEST(StopMatcherTest, MultipleStopsFirstToComplete) {
  EXPECT_EQ(FeedAll({"\n\n", "User:"}, {"answer", "\nUs", "er: next"}),
            std::make_pair(std::string("answer\n"), true));
  EXPECT_EQ(FeedAll({"\n\n", "User:"}, {"answer\n", "\nUser:"}),
            std::make_pair(std::string("answer"), true));
  // Both complete in the same delta: the one starting earlier wins.
  EXPECT_EQ(FeedAll({"bc", "abcd"}, {"xxabcd"}), std::make_pair(std::string("xx"), true));
  // Holdback is the longest prefix over all stops.
  StopMatcher m({"abx", "abcd"});
  EXPECT_EQ(m.Feed("zabc").emit, "z");
  EXPECT_EQ(m.held(), 3u);
}

TEST(StopMatcherTest, NoStops) {
  StopMatcher m({"", ""});
  EXPECT_EQ(m.Feed("anything").emit, "anything");
  EXPECT_EQ(m.held(), 0u);
  EXPECT_EQ(m.Flush(), "");
}

}  // namespace
}  // namespace tandem::router
