#include <gtest/gtest.h>

#include "core/limits/gcra.hpp"
#include "mocks/fake_clock.hpp"

using smtplb::core::Gcra;
using smtplb::core::GcraState;
using smtplb::testing::FakeClock;
using namespace std::chrono_literals;

namespace {

// How many single units pass back to back at the clock's current time.
int drain(const Gcra& gcra, GcraState& state, const FakeClock& clock) {
    int allowed = 0;
    while (gcra.decide(state, clock.now()).allowed && allowed < 1000000)
        ++allowed;
    return allowed;
}

}  // namespace

TEST(Gcra, LetsTheBurstThroughThenOneUnitPerEmissionInterval) {
    FakeClock clock;
    Gcra gcra(10, 1min, 5);  // 10 per minute: one every 6 s, 5 at once
    GcraState state;
    EXPECT_EQ(drain(gcra, state, clock), 5);
    auto refused = gcra.decide(state, clock.now());
    EXPECT_FALSE(refused.allowed);
    EXPECT_EQ(refused.retry_after, 6s);
    EXPECT_EQ(refused.remaining, 0u);
    clock.advance(6s - 1ns);
    EXPECT_FALSE(gcra.decide(state, clock.now()).allowed);
    clock.advance(1ns);
    EXPECT_TRUE(gcra.decide(state, clock.now()).allowed);
    EXPECT_FALSE(gcra.decide(state, clock.now()).allowed);
}

TEST(Gcra, TheWholeRateAtOnceByDefaultAndAllOfItBackAfterThePeriod) {
    FakeClock clock;
    Gcra gcra(10, 1min, 10);
    GcraState state;
    EXPECT_EQ(drain(gcra, state, clock), 10);
    clock.advance(1min - 1ns);
    EXPECT_EQ(drain(gcra, state, clock), 9);  // the tenth comes back at the full minute
    clock.advance(1ns);
    EXPECT_EQ(drain(gcra, state, clock), 1);
    clock.advance(1min);
    EXPECT_EQ(drain(gcra, state, clock), 10);
    clock.advance(10min);
    EXPECT_EQ(drain(gcra, state, clock), 10);  // never more than the burst
}

TEST(Gcra, ExactOverManyUnitsWhenTheIntervalIsNotAWholeNanosecond) {
    FakeClock clock;
    Gcra gcra(3, 1s, 3000);  // 333333333.33... ns apart
    GcraState state;
    EXPECT_EQ(drain(gcra, state, clock), 3000);
    // 3000 intervals are exactly 1000 s: not a nanosecond more or less.
    clock.advance(1000s - 1ns);
    EXPECT_FALSE(gcra.idle(state, clock.now()));
    EXPECT_EQ(drain(gcra, state, clock), 2999);
    clock.advance(1ns);
    EXPECT_EQ(drain(gcra, state, clock), 1);
}

TEST(Gcra, SteadyPollingGetsExactlyTheRate) {
    FakeClock clock;
    Gcra gcra(3, 1s, 2);
    GcraState state;
    int allowed = 0;
    // Every 1 ms for 1000 s: the burst of 2, then one every 333.33 ms.
    for (int i = 0; i < 1000000; ++i) {
        allowed += gcra.decide(state, clock.now()).allowed;
        clock.advance(1ms);
    }
    EXPECT_EQ(allowed, 3001);
}

TEST(Gcra, CostCountsSeveralUnitsAndMoreThanTheBurstNeverPasses) {
    FakeClock clock;
    Gcra gcra(1000, 1s, 1000);  // e.g. bytes
    GcraState state;
    EXPECT_TRUE(gcra.decide(state, clock.now(), 600).allowed);
    auto d = gcra.decide(state, clock.now(), 600);
    EXPECT_FALSE(d.allowed);
    EXPECT_EQ(d.remaining, 400u);
    EXPECT_EQ(d.retry_after, 200ms);
    EXPECT_TRUE(gcra.decide(state, clock.now(), 400).allowed);
    auto never = gcra.decide(state, clock.now(), 1001);
    EXPECT_FALSE(never.allowed);
    EXPECT_EQ(never.retry_after, Gcra::kNever);
    clock.advance(1s);
    EXPECT_TRUE(gcra.decide(state, clock.now(), 1000).allowed);
}

TEST(Gcra, PeekDecidesWithoutRecording) {
    FakeClock clock;
    Gcra gcra(2, 1min, 2);
    GcraState state;
    EXPECT_TRUE(gcra.peek(state, clock.now()).allowed);
    EXPECT_TRUE(gcra.peek(state, clock.now()).allowed);
    EXPECT_TRUE(gcra.peek(state, clock.now(), 2).allowed);
    EXPECT_EQ(state, GcraState{});
}

TEST(Gcra, RefundGivesBackExactlyWhatWasTaken) {
    FakeClock clock;
    Gcra gcra(10, 1min, 5);
    GcraState state;
    EXPECT_EQ(drain(gcra, state, clock), 5);
    gcra.refund(state, clock.now(), 2);
    EXPECT_EQ(drain(gcra, state, clock), 2);
    // A refund on a key that has recovered gives nothing extra.
    clock.advance(1h);
    gcra.refund(state, clock.now(), 3);
    EXPECT_EQ(drain(gcra, state, clock), 5);
}

TEST(Gcra, AClockGoingBackwardsGrantsNothingAndWaitsAtMostOneRecovery) {
    FakeClock clock;
    Gcra gcra(10, 1min, 5);
    GcraState state;
    clock.advance(24h);
    EXPECT_EQ(drain(gcra, state, clock), 5);
    FakeClock earlier;  // a day behind
    EXPECT_EQ(drain(gcra, state, earlier), 0);
    auto d = gcra.decide(state, earlier.now());
    EXPECT_FALSE(d.allowed);
    EXPECT_LE(d.retry_after, gcra.max_idle());
    // Once the earlier clock has run one full recovery, the burst is back.
    earlier.advance(gcra.max_idle());
    EXPECT_EQ(drain(gcra, state, earlier), 5);
}

TEST(Gcra, IdleOnceTheBurstHasRecovered) {
    FakeClock clock;
    Gcra gcra(10, 1min, 5);
    GcraState state;
    EXPECT_TRUE(gcra.idle(state, clock.now()));
    drain(gcra, state, clock);
    EXPECT_FALSE(gcra.idle(state, clock.now()));
    EXPECT_EQ(gcra.max_idle(), 30s);
    clock.advance(30s - 1ns);
    EXPECT_FALSE(gcra.idle(state, clock.now()));
    clock.advance(1ns);
    EXPECT_TRUE(gcra.idle(state, clock.now()));
}

TEST(Gcra, HugeValuesDoNotOverflow) {
    FakeClock clock;
    Gcra huge(Gcra::kMaxCount, Gcra::kMaxPeriod, Gcra::kMaxBurst);
    GcraState state;
    auto d = huge.decide(state, clock.now(), Gcra::kMaxBurst);
    EXPECT_TRUE(d.allowed);
    auto again = huge.decide(state, clock.now(), Gcra::kMaxBurst);
    EXPECT_FALSE(again.allowed);
    EXPECT_EQ(again.retry_after, Gcra::kMaxPeriod);
    EXPECT_EQ(huge.decide(state, clock.now(), UINT64_MAX).retry_after, Gcra::kNever);
    // Out-of-range parameters are clamped, not wrapped.
    Gcra clamped(UINT64_MAX, std::chrono::nanoseconds::max(), 0);
    EXPECT_EQ(clamped.count(), Gcra::kMaxCount);
    EXPECT_EQ(clamped.period(), Gcra::kMaxPeriod);
    EXPECT_EQ(clamped.burst(), 1u);
    GcraState s2;
    EXPECT_TRUE(clamped.decide(s2, clock.now()).allowed);
    EXPECT_FALSE(clamped.decide(s2, clock.now()).allowed);
    // One unit per year, a burst of one: a year to wait, in nanoseconds.
    Gcra slow(1, Gcra::kMaxPeriod, 1);
    GcraState s3;
    slow.decide(s3, clock.now());
    EXPECT_EQ(slow.decide(s3, clock.now()).retry_after, Gcra::kMaxPeriod);
}

TEST(Gcra, AWaitWithinReserveAheadIsGrantedAndNotTakenForAClockGoneBackwards) {
    FakeClock clock;
    Gcra gcra(10, 1min, 1, 10s);  // a tarpit may hold a request up to 10 s
    GcraState state;
    EXPECT_TRUE(gcra.decide(state, clock.now(), 1, 10s).allowed);
    auto held = gcra.decide(state, clock.now(), 1, 10s);
    EXPECT_TRUE(held.allowed);
    EXPECT_EQ(held.wait, 6s);  // counted as of the end of its hold
    auto refused = gcra.decide(state, clock.now(), 1, 10s);
    EXPECT_FALSE(refused.allowed);
    EXPECT_EQ(refused.retry_after, 12s);
    EXPECT_EQ(gcra.max_idle(), 16s);
    // Without a max_wait nothing waits; a max_wait beyond reserve_ahead is cut to it.
    EXPECT_FALSE(gcra.peek(state, clock.now() + 2s, 1).allowed);
    EXPECT_FALSE(gcra.peek(state, clock.now() + 1s, 1, 1h).allowed);
    EXPECT_EQ(gcra.peek(state, clock.now() + 2s, 1, 1h).wait, 10s);
    // Without the allowance the same TAT reads as a clock gone backwards.
    Gcra plain(10, 1min, 1);
    GcraState other = state;
    EXPECT_EQ(plain.decide(other, clock.now()).retry_after, 6s);
}
