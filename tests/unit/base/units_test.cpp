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

TEST(Units, DurationsPrintInTheirNaturalUnit) {
    EXPECT_EQ(format_duration(300000ms), "5m");
    EXPECT_EQ(format_duration(5000ms), "5s");
    EXPECT_EQ(format_duration(1500ms), "1500ms");
    EXPECT_EQ(format_duration(3600000ms), "1h");
    EXPECT_EQ(format_duration(90000ms), "90s");
    EXPECT_EQ(format_duration(86400000ms * 30), "30d");
    EXPECT_EQ(format_duration(0ms), "0s");
    for (auto text : {"5m", "250ms", "90s", "2h", "7d"})
        EXPECT_EQ(format_duration(*parse_duration(text)), text);
}

TEST(Units, SizesPrintInTheirNaturalUnit) {
    EXPECT_EQ(format_size(10ull << 20), "10MiB");
    EXPECT_EQ(format_size(50ull << 20), "50MiB");
    EXPECT_EQ(format_size(10000000), "10MB");
    EXPECT_EQ(format_size(4096), "4KiB");
    EXPECT_EQ(format_size(4097), "4097B");
    EXPECT_EQ(format_size(1ull << 30), "1GiB");
    EXPECT_EQ(format_size(0), "0B");
    for (auto text : {"10MiB", "10MB", "4KiB", "1GiB", "4097B"})
        EXPECT_EQ(format_size(*parse_size(text)), text);
}
