#include <gtest/gtest.h>

#include <limits>

#include "core/body_streaming.hpp"

using smtplb::core::BodyProgress;
using smtplb::core::kStreamFrom;
using smtplb::core::worth_streaming;
using namespace std::chrono_literals;

namespace {

BodyProgress progress(std::uint64_t received, std::chrono::milliseconds elapsed,
                      std::optional<std::uint64_t> declared, std::chrono::milliseconds left) {
    return {received, elapsed, declared, left};
}

}  // namespace

TEST(BodyStreaming, ASmallBodySoFarIsNotStreamed) {
    EXPECT_FALSE(worth_streaming(progress(kStreamFrom - 1, 0ms, std::nullopt, 1000ms)));
    EXPECT_TRUE(worth_streaming(progress(kStreamFrom, 0ms, std::nullopt, 1000ms)));
}

TEST(BodyStreaming, WithSizeTheRestMustArriveWithinHalfTheHoldLeft) {
    // 10 MiB declared, 64 KiB in 5 ms: the rest in about 795 ms.
    const std::uint64_t ten_mib = 10u << 20;
    EXPECT_FALSE(worth_streaming(progress(kStreamFrom, 5ms, ten_mib, 1000ms)));
    EXPECT_TRUE(worth_streaming(progress(kStreamFrom, 5ms, ten_mib, 1600ms)));
    // On loopback: 64 KiB in 100 µs, 10 MiB in about 16 ms.
    EXPECT_TRUE(worth_streaming({kStreamFrom, 100us, ten_mib, 1000ms}));
}

TEST(BodyStreaming, WithoutSizeWhatCameMustHaveTakenAQuarterOfTheHoldLeft) {
    EXPECT_TRUE(worth_streaming(progress(kStreamFrom, 250ms, std::nullopt, 1000ms)));
    EXPECT_FALSE(worth_streaming(progress(kStreamFrom, 251ms, std::nullopt, 1000ms)));
    // A slow upload (test_postfix_slow_clients.py): 78 KiB after 0.5 s.
    EXPECT_FALSE(worth_streaming(progress(78 * 1024, 500ms, std::nullopt, 500ms)));
}

TEST(BodyStreaming, ASizeAlreadyPassedCountsAsNone) {
    EXPECT_TRUE(worth_streaming(progress(kStreamFrom * 4, 100ms, kStreamFrom, 1000ms)));
    EXPECT_FALSE(worth_streaming(progress(kStreamFrom * 4, 300ms, kStreamFrom, 1000ms)));
}

TEST(BodyStreaming, NoHoldLeftOrHostileNumbersDoNotStream) {
    EXPECT_FALSE(worth_streaming(progress(kStreamFrom, 0ms, std::nullopt, 0ms)));
    EXPECT_FALSE(worth_streaming(progress(kStreamFrom, 0ms, std::nullopt, -5ms)));
    // SIZE=2^64-1: the rest can never arrive in time, and nothing overflows.
    EXPECT_FALSE(worth_streaming(
        progress(kStreamFrom, 1ms, std::numeric_limits<std::uint64_t>::max(), 1000ms)));
    // A clock that went backwards counts as no time at all.
    EXPECT_TRUE(worth_streaming(progress(kStreamFrom, -10ms, std::nullopt, 1000ms)));
}
