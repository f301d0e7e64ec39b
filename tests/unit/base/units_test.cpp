#include <gtest/gtest.h>

#include "base/units.hpp"

using namespace smtplb::base;
using namespace std::chrono_literals;

TEST(Units, Sizes) {
    EXPECT_EQ(*parse_size("50MiB"), 50ull << 20);
    EXPECT_EQ(*parse_size("10MB"), 10000000ull);
    EXPECT_EQ(*parse_size("4096"), 4096ull);
    EXPECT_EQ(*parse_size("1 GiB"), 1ull << 30);
    EXPECT_FALSE(parse_size("12 parsecs"));
    EXPECT_FALSE(parse_size("-1"));
    EXPECT_FALSE(parse_size("99999999999999999999GiB"));
    EXPECT_FALSE(parse_size("MiB"));
}

TEST(Units, Durations) {
    EXPECT_EQ(*parse_duration("250ms"), 250ms);
    EXPECT_EQ(*parse_duration("5s"), 5000ms);
    EXPECT_EQ(*parse_duration("10m"), 600000ms);
    EXPECT_EQ(*parse_duration("1h"), 3600000ms);
    EXPECT_FALSE(parse_duration("5"));
    EXPECT_FALSE(parse_duration("5 fortnights"));
}
