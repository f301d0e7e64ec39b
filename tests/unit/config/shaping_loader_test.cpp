#include <gtest/gtest.h>

#include "config/changes.hpp"
#include "config/describe.hpp"
#include "config/loader.hpp"
#include "unit/config/diagnostic_matchers.hpp"

using namespace smtplb::config;
using namespace std::chrono_literals;

namespace {

const std::string kBase = R"(
[[listener]]
name = "relay"
bind = "127.0.0.1:2525"
role = "relay"
trusted_networks = ["127.0.0.0/8"]
pool = "out"

[[pool]]
name = "out"
[[pool.backend]]
name = "ip1"
address = "127.0.0.1:2601"
[[pool.backend]]
name = "ip2"
address = "127.0.0.1:2602"
)";

LoadResult load(const std::string& shaping) {
    return load_string(kBase + shaping, "test.toml");
}

::testing::AssertionResult fails(const std::string& shaping, const std::string& path,
                                 const std::string& text) {
    return test_support::refused_with(load(shaping), path, text);
}

const std::string kPath = "pool[0].destination_limit[0]";

}  // namespace

TEST(ShapingLoader, ReadsDestinationLimits) {
    auto r = load(R"(
[[pool.destination_limit]]
domain = "Gmail.com"
messages = "100/1m"
burst = 20
concurrent_transactions = 5

[[pool.destination_limit]]
domain = "*"
messages = "1000/h"
max_keys = 5000

[[pool.destination_limit]]
domain = "yahoo.com"
concurrent_transactions = 2
)");
    ASSERT_TRUE(r.config) << r.diagnostics.format("test.toml");
    const auto& limits = r.config->pools[0].destination_limits;
    ASSERT_EQ(limits.size(), 3u);
    EXPECT_EQ(limits[0].domain, "gmail.com");
    EXPECT_EQ(limits[0].messages, 100u);
    EXPECT_EQ(limits[0].period, 1min);
    EXPECT_EQ(limits[0].burst, 20u);
    EXPECT_EQ(limits[0].concurrent_transactions, 5u);
    EXPECT_TRUE(limits[1].is_wildcard());
    EXPECT_EQ(limits[1].burst, 1000u);  // the whole quantity unless told
    EXPECT_EQ(limits[1].max_keys, 5000u);
    EXPECT_EQ(limits[2].messages, 0u);
    EXPECT_EQ(limits[2].concurrent_transactions, 2u);
}

TEST(ShapingLoader, CheckPrintsThemAndTheyReadBack) {
    auto r = load(
        "[[pool.destination_limit]]\ndomain = \"gmail.com\"\nmessages = \"2/1m\"\nburst = 2\n"
        "[[pool.destination_limit]]\ndomain = \"*\"\nconcurrent_transactions = 3\n");
    ASSERT_TRUE(r.config) << r.diagnostics.format("test.toml");
    auto text = describe(*r.config);
    EXPECT_NE(text.find("[[pool.destination_limit]]\ndomain = \"gmail.com\"\nmessages = "
                        "\"2/1m\"\nburst = 2\nmax_keys = 100000\n"),
              std::string::npos)
        << text;
    auto again = load_string(text, "described");
    ASSERT_TRUE(again.config) << again.diagnostics.format("described") << text;
    EXPECT_EQ(again.config->pools[0].destination_limits, r.config->pools[0].destination_limits);
    EXPECT_EQ(describe(*again.config), text);
}

TEST(ShapingLoader, EveryBadValueIsAnErrorWithItsPathAndLine) {
    EXPECT_TRUE(fails("[[pool.destination_limit]]\nmessages = \"1/1m\"\n", kPath + ".domain",
                      "is required"));
    EXPECT_TRUE(fails("[[pool.destination_limit]]\ndomain = \"gmail..com\"\nmessages = \"1/1m\"\n",
                      kPath + ".domain", "must be a recipient domain"));
    EXPECT_TRUE(fails("[[pool.destination_limit]]\ndomain = \"*.gmail.com\"\nmessages = \"1/1m\"\n",
                      kPath + ".domain", "or \"*\""));
    EXPECT_TRUE(
        fails("[[pool.destination_limit]]\ndomain = \"gmail.com\"\n", kPath, "needs messages"));
    EXPECT_TRUE(fails("[[pool.destination_limit]]\ndomain = \"gmail.com\"\nmessages = \"lots\"\n",
                      kPath + ".messages", "must be a rate"));
    EXPECT_TRUE(fails("[[pool.destination_limit]]\ndomain = \"gmail.com\"\nmessages = 100\n",
                      kPath + ".messages", "must be a rate"));
    EXPECT_TRUE(fails("[[pool.destination_limit]]\ndomain = \"gmail.com\"\nmessages = \"0/1m\"\n",
                      kPath + ".messages", "between 1 and"));
    EXPECT_TRUE(fails("[[pool.destination_limit]]\ndomain = \"gmail.com\"\nmessages = \"5/10ms\"\n",
                      kPath + ".messages", "the period must be between"));
    EXPECT_TRUE(fails(
        "[[pool.destination_limit]]\ndomain = \"gmail.com\"\nmessages = \"5/1m\"\nburst = 0\n",
        kPath + ".burst", "between 1 and"));
    EXPECT_TRUE(
        fails("[[pool.destination_limit]]\ndomain = \"gmail.com\"\nconcurrent_transactions = 2\n"
              "burst = 3\n",
              kPath + ".burst", "only a message rate has a burst"));
    EXPECT_TRUE(
        fails("[[pool.destination_limit]]\ndomain = \"gmail.com\"\nconcurrent_transactions = 0\n",
              kPath + ".concurrent_transactions", "between 1 and 1000000"));
    EXPECT_TRUE(fails(
        "[[pool.destination_limit]]\ndomain = \"*\"\nconcurrent_transactions = 1\nmax_keys = 0\n",
        kPath + ".max_keys", "between 1 and"));
    EXPECT_TRUE(
        fails("[[pool.destination_limit]]\ndomain = \"gmail.com\"\nconcurrent_transactions = 1\n"
              "colour = \"red\"\n",
              kPath + ".colour", "unknown key"));
    EXPECT_TRUE(
        fails("[[pool.destination_limit]]\ndomain = \"gmail.com\"\nconcurrent_transactions = 1\n"
              "[[pool.destination_limit]]\ndomain = \"GMAIL.com\"\nmessages = \"1/1s\"\n",
              "pool[0].destination_limit[1].domain", "another destination limit"));
}

TEST(ShapingLoader, TooManyDestinationLimitsInOnePoolIsAnError) {
    std::string many;
    for (int i = 0; i <= 100; ++i)
        many += "[[pool.destination_limit]]\ndomain = \"d" + std::to_string(i) +
                ".example\"\nconcurrent_transactions = 1\n";
    EXPECT_TRUE(fails(many, "pool[0].destination_limit", "at most 100"));
}

TEST(ShapingLoader, AReloadSaysWhichDestinationLimitsChanged) {
    auto before = load(
        "[[pool.destination_limit]]\ndomain = \"gmail.com\"\nmessages = \"2/1m\"\n"
        "[[pool.destination_limit]]\ndomain = \"yahoo.com\"\nconcurrent_transactions = 1\n");
    auto after = load(
        "[[pool.destination_limit]]\ndomain = \"gmail.com\"\nmessages = \"3/1m\"\n"
        "[[pool.destination_limit]]\ndomain = \"*\"\nconcurrent_transactions = 4\n");
    ASSERT_TRUE(before.config && after.config);
    EXPECT_EQ(describe_changes(*before.config, *after.config),
              (std::vector<std::string>{
                  "removed destination limit yahoo.com from pool out",
                  "messages of destination limit gmail.com in pool out: 2/1m -> 3/1m",
                  "burst of destination limit gmail.com in pool out: 2 -> 3",
                  "added destination limit * to pool out"}));
    EXPECT_TRUE(describe_changes(*before.config, *before.config).empty());
}
