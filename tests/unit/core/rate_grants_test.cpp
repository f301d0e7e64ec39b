#include <gtest/gtest.h>

#include "core/limits/rate_grants.hpp"

using smtplb::base::Clock;
using smtplb::core::Gcra;
using smtplb::core::LimitOp;
using smtplb::core::RateGrants;
using namespace std::chrono_literals;

namespace {

struct RateGrantsTest : ::testing::Test {
    Gcra busy{1000000, 1s, 1000000};  // a limit far from being reached
    Gcra small{12, 1h, 12};           // one the cluster reaches
    RateGrants grants;
    Clock::TimePoint now = Clock::TimePoint(100s);

    LimitOp consume(const Gcra& gcra, std::string key = "sender=a@example.org") {
        LimitOp op;
        op.kind = LimitOp::Kind::Consume;
        op.key = std::move(key);
        op.gcra = &gcra;
        return op;
    }
};

TEST_F(RateGrantsTest, AKeyUsedOnceTakesNothingAhead) {
    auto op = consume(busy);
    EXPECT_FALSE(grants.take(op, now));
    EXPECT_EQ(grants.extra(op, 3, now), 0u);
}

TEST_F(RateGrantsTest, ABusyKeyAsksAheadForWhatItRecentlyUsedAndSpendsItHere) {
    auto op = consume(busy);
    for (int i = 0; i < 50; ++i) {
        EXPECT_FALSE(grants.take(op, now));
        grants.extra(op, 3, now);  // each counted in the store, exactly
    }
    const auto ask = grants.extra(op, 3, now);
    EXPECT_EQ(ask, 50u);  // the 50 before this one
    grants.granted(op, ask, now);
    for (int i = 0; i < 50; ++i)
        EXPECT_TRUE(grants.take(op, now + 1ms)) << i;
    EXPECT_FALSE(grants.take(op, now + 1ms));  // used up: the store again
}

TEST_F(RateGrantsTest, WhatIsAskedAheadNeverExceedsAShareOfTheBurst) {
    auto op = consume(busy);
    op.cost = 100000;  // bytes, say
    for (int i = 0; i < 10; ++i)
        grants.extra(op, 2, now);
    // burst / (20 x 2 nodes)
    EXPECT_EQ(grants.extra(op, 2, now), 1000000u / 40);
}

TEST_F(RateGrantsTest, ALimitTheClusterReachesIsAlwaysAskedExactly) {
    auto op = consume(small);
    for (int i = 0; i < 20; ++i)
        EXPECT_EQ(grants.extra(op, 1, now), 0u);  // 12 < 20 x 1 node
}

TEST_F(RateGrantsTest, UnspentUnitsLapseAfterTheirLifetime) {
    auto op = consume(busy);
    grants.granted(op, 10, now);
    EXPECT_EQ(RateGrants::lifetime(busy), 50ms);
    EXPECT_TRUE(grants.take(op, now + 49ms));
    EXPECT_FALSE(grants.take(op, now + 50ms));
    EXPECT_EQ(RateGrants::lifetime(small), 1s);
}

TEST_F(RateGrantsTest, APeekLooksWithoutSpendingAndOtherKeysAndLimitsAreApart) {
    auto op = consume(busy);
    grants.granted(op, 1, now);
    auto peek = op;
    peek.kind = LimitOp::Kind::Peek;
    EXPECT_TRUE(grants.take(peek, now));
    EXPECT_TRUE(grants.take(peek, now));
    EXPECT_FALSE(grants.take(consume(busy, "sender=b@example.org"), now));
    auto other_limit = op;
    other_limit.limit = 1;
    EXPECT_FALSE(grants.take(other_limit, now));
    EXPECT_TRUE(grants.take(op, now));
    EXPECT_FALSE(grants.take(peek, now));
}

TEST_F(RateGrantsTest, AnEventRefusedAfterAllGetsItsUnitsBack) {
    auto op = consume(busy);
    grants.granted(op, 1, now);
    EXPECT_TRUE(grants.take(op, now));
    grants.give_back(op, now);
    EXPECT_TRUE(grants.take(op, now));
}

TEST_F(RateGrantsTest, ConcurrencyIsNeverMetHere) {
    LimitOp acquire;
    acquire.kind = LimitOp::Kind::Acquire;
    acquire.key = "client_ip=192.0.2.1";
    acquire.max = 10;
    EXPECT_FALSE(grants.take(acquire, now));
    EXPECT_EQ(grants.extra(acquire, 1, now), 0u);
}

TEST_F(RateGrantsTest, AnEventIsSplitBetweenWhatIsHeldHereAndTheStoreAndMergedBack) {
    smtplb::core::LimitBatch batch;
    batch.ops.push_back(consume(busy, "sender=a@example.org"));  // held here
    LimitOp place;
    place.kind = LimitOp::Kind::Acquire;
    place.limit = 1;
    place.key = "client_ip=192.0.2.1";
    place.max = 200;
    batch.ops.push_back(place);
    batch.ops.push_back(consume(busy, "sender=b@example.org"));  // not held
    grants.granted(batch.ops[0], 1, now);
    auto split = grants.split(batch, 2, now);
    EXPECT_EQ(split.met, (std::vector<std::size_t>{0}));
    EXPECT_EQ(split.remote_index, (std::vector<std::size_t>{1, 2}));
    EXPECT_EQ(split.remote.ops[0].extra, 200u / 40);  // a place: the share of the limit
    EXPECT_EQ(split.remote.ops[1].extra, 0u);         // a key not busy here
    // The store refuses the second remote op: the event is refused at the
    // event's third op, and the unit spent here comes back.
    smtplb::core::LimitBatchResult refused;
    refused.refused = 1;
    refused.retry_after = 2s;
    auto merged = grants.merge(batch, split, refused, now);
    ASSERT_TRUE(merged);
    EXPECT_EQ(merged->refused, 2u);
    EXPECT_EQ(merged->retry_after, 2s);
    EXPECT_TRUE(grants.take(batch.ops[0], now));
    // Passed: the results land at their places, and what the store granted
    // ahead is held.
    grants.granted(batch.ops[0], 1, now);
    split = grants.split(batch, 2, now);
    smtplb::core::LimitBatchResult passed;
    passed.refused = 2;
    passed.ops.resize(2);
    passed.ops[0].lease = "mx1:7";
    passed.ops[1].granted = 3;
    merged = grants.merge(batch, split, passed, now);
    ASSERT_TRUE(merged);
    EXPECT_EQ(merged->refused, 3u);
    EXPECT_EQ(merged->ops[1].lease, "mx1:7");
    for (int i = 0; i < 3; ++i)
        EXPECT_TRUE(grants.take(batch.ops[2], now)) << i;
    EXPECT_FALSE(grants.take(batch.ops[2], now));
    // No answer: nothing, and what was met here comes back.
    grants.granted(batch.ops[0], 1, now);
    split = grants.split(batch, 2, now);
    EXPECT_FALSE(grants.merge(batch, split, std::nullopt, now));
    EXPECT_TRUE(grants.take(batch.ops[0], now));
}

TEST_F(RateGrantsTest, TheTableIsBounded) {
    RateGrants few(2);
    for (int i = 0; i < 5; ++i) {
        auto op = consume(busy, "k" + std::to_string(i));
        few.extra(op, 1, now);
        few.granted(op, 5, now);
    }
    EXPECT_EQ(few.keys(), 2u);
    // Once theirs have lapsed and their use is old, room again.
    auto later = consume(busy, "late");
    few.extra(later, 1, now + 10s);
    few.granted(later, 5, now + 10s);
    EXPECT_TRUE(few.take(later, now + 10s));
}

}  // namespace
