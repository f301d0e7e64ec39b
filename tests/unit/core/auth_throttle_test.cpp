#include <gtest/gtest.h>

#include "core/auth_throttle.hpp"
#include "mocks/fake_clock.hpp"

using smtplb::core::AuthThrottle;
using smtplb::testing::FakeClock;
using namespace std::chrono_literals;

TEST(AuthThrottle, BlocksAnAddressAfterTooManyFailuresUntilTheWindowPasses) {
    FakeClock clock;
    AuthThrottle t(clock, 3, 10min);
    for (int i = 0; i < 3; ++i) {
        EXPECT_FALSE(t.blocked("192.0.2.7", "user" + std::to_string(i)));
        t.failed("192.0.2.7", "user" + std::to_string(i));
    }
    EXPECT_TRUE(t.blocked("192.0.2.7", "someone-else"));
    EXPECT_FALSE(t.blocked("192.0.2.8", "someone-else"));
    clock.advance(10min + 1s);
    EXPECT_FALSE(t.blocked("192.0.2.7", "someone-else"));
    EXPECT_EQ(t.refusals(), 1u);
}

TEST(AuthThrottle, BlocksAUserGuessedFromManyAddresses) {
    FakeClock clock;
    AuthThrottle t(clock, 3, 10min);
    for (int i = 0; i < 3; ++i)
        t.failed("198.51.100." + std::to_string(i), "alice");
    EXPECT_TRUE(t.blocked("203.0.113.1", "alice"));
    EXPECT_FALSE(t.blocked("203.0.113.1", "bob"));
}

TEST(AuthThrottle, SuccessForgetsTheAddressAndMemoryIsBounded) {
    FakeClock clock;
    AuthThrottle t(clock, 2, 10min, 10);
    t.failed("192.0.2.7", "alice");
    t.succeeded("192.0.2.7");
    t.failed("192.0.2.7", "bob");
    EXPECT_FALSE(t.blocked("192.0.2.7", "carol"));
    for (int i = 0; i < 1000; ++i)
        t.failed("10.0.0." + std::to_string(i), "u" + std::to_string(i));
    // Eviction keeps the newest keys: the last address is still counted.
    t.failed("10.0.0.999", "x");
    EXPECT_TRUE(t.blocked("10.0.0.999", "y"));
}
