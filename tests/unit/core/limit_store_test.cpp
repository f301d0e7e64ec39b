#include <gtest/gtest.h>

#include <atomic>
#include <memory>
#include <string>
#include <thread>

#include "core/limits/in_process_limit_store.hpp"
#include "core/limits/rate_table.hpp"
#include "mocks/fake_clock.hpp"

using smtplb::core::AcquireResult;
using smtplb::core::Gcra;
using smtplb::core::InProcessLimitStore;
using smtplb::core::LimitLease;
using smtplb::testing::FakeClock;
using namespace std::chrono_literals;

TEST(InProcessLimitStore, KeepsEachKeysRateApart) {
    FakeClock clock;
    InProcessLimitStore store({100});
    Gcra gcra(10, 1min, 2);
    EXPECT_TRUE(store.rate(0, "a", gcra, clock.now(), 1).allowed);
    EXPECT_TRUE(store.rate(0, "a", gcra, clock.now(), 1).allowed);
    EXPECT_FALSE(store.rate(0, "a", gcra, clock.now(), 1).allowed);
    EXPECT_TRUE(store.rate(0, "b", gcra, clock.now(), 1).allowed);
    EXPECT_FALSE(store.peek_rate(0, "a", gcra, clock.now(), 1).allowed);
    EXPECT_TRUE(store.peek_rate(0, "c", gcra, clock.now(), 1).allowed);
    store.refund_rate(0, "a", gcra, clock.now(), 1);
    EXPECT_TRUE(store.rate(0, "a", gcra, clock.now(), 1).allowed);
    EXPECT_EQ(store.stats(0).tracked_keys, 2u);
}

TEST(InProcessLimitStore, ForgetsKeysOnceTheyHaveRecovered) {
    FakeClock clock;
    InProcessLimitStore store({100});
    Gcra gcra(10, 1min, 5);  // a full burst recovers in 30 s
    for (int i = 0; i < 50; ++i)
        store.rate(0, "k" + std::to_string(i), gcra, clock.now(), 1);
    EXPECT_EQ(store.stats(0).tracked_keys, 50u);
    clock.advance(30s - 1ns);
    store.expire(clock.now());
    EXPECT_EQ(store.stats(0).tracked_keys, 50u);
    clock.advance(1ns);
    store.expire(clock.now());
    EXPECT_EQ(store.stats(0).tracked_keys, 0u);
    EXPECT_EQ(store.stats(0).evictions, 0u);
    // Traffic forgets old keys as it goes, without expire().
    for (int i = 0; i < 50; ++i)
        store.rate(0, "k" + std::to_string(i), gcra, clock.now(), 1);
    clock.advance(1min);
    for (int i = 0; i < 50; ++i)
        store.rate(0, "new" + std::to_string(i), gcra, clock.now(), 1);
    EXPECT_EQ(store.stats(0).tracked_keys, 50u);
}

TEST(InProcessLimitStore, EvictsTheLeastRecentlyUsedKeyAtMaxKeysAndCountsIt) {
    FakeClock clock;
    InProcessLimitStore store({3});
    Gcra gcra(1, 1h, 1);
    store.rate(0, "a", gcra, clock.now(), 1);
    store.rate(0, "b", gcra, clock.now(), 1);
    store.rate(0, "c", gcra, clock.now(), 1);
    EXPECT_FALSE(store.rate(0, "a", gcra, clock.now(), 1).allowed);  // a is now the newest
    store.rate(0, "d", gcra, clock.now(), 1);                        // evicts b
    EXPECT_EQ(store.stats(0).tracked_keys, 3u);
    EXPECT_EQ(store.stats(0).evictions, 1u);
    EXPECT_FALSE(store.peek_rate(0, "a", gcra, clock.now(), 1).allowed);
    EXPECT_TRUE(store.peek_rate(0, "b", gcra, clock.now(), 1).allowed);  // forgotten
    EXPECT_FALSE(store.peek_rate(0, "c", gcra, clock.now(), 1).allowed);
}

TEST(InProcessLimitStore, PartitionsAreIndependent) {
    FakeClock clock;
    InProcessLimitStore store({1, 1});
    Gcra gcra(1, 1h, 1);
    store.rate(0, "x", gcra, clock.now(), 1);
    EXPECT_TRUE(store.rate(1, "x", gcra, clock.now(), 1).allowed);
    EXPECT_EQ(store.stats(0).tracked_keys, 1u);
    EXPECT_EQ(store.stats(1).tracked_keys, 1u);
    // A limit the store does not know (cannot happen) remembers nothing.
    EXPECT_TRUE(store.rate(7, "x", gcra, clock.now(), 1).allowed);
    EXPECT_EQ(store.stats(7).tracked_keys, 0u);
}

TEST(InProcessLimitStore, ConcurrencyCountsUpToItsMaximumAndLeavesNothingBehind) {
    InProcessLimitStore store({100});
    EXPECT_EQ(store.acquire(0, "ip", 2), AcquireResult::Acquired);
    EXPECT_EQ(store.acquire(0, "ip", 2), AcquireResult::Acquired);
    EXPECT_EQ(store.acquire(0, "ip", 2), AcquireResult::AtLimit);
    EXPECT_EQ(store.in_use(0, "ip"), 2u);
    store.release(0, "ip");
    EXPECT_EQ(store.acquire(0, "ip", 2), AcquireResult::Acquired);
    store.release(0, "ip");
    store.release(0, "ip");
    EXPECT_EQ(store.stats(0).tracked_keys, 0u);
    // A release too many (cannot happen with leases) does not go below zero.
    store.release(0, "ip");
    EXPECT_EQ(store.in_use(0, "ip"), 0u);
    EXPECT_EQ(store.acquire(0, "ip", 0), AcquireResult::AtLimit);
}

TEST(InProcessLimitStore, ConcurrencyRefusesANewKeyWhenMaxKeysAreHeld) {
    InProcessLimitStore store({2});
    EXPECT_EQ(store.acquire(0, "a", 5), AcquireResult::Acquired);
    EXPECT_EQ(store.acquire(0, "b", 5), AcquireResult::Acquired);
    EXPECT_EQ(store.acquire(0, "c", 5), AcquireResult::TableFull);
    EXPECT_EQ(store.acquire(0, "a", 5), AcquireResult::Acquired);
    EXPECT_EQ(store.stats(0).table_full, 1u);
    store.release(0, "b");
    EXPECT_EQ(store.acquire(0, "c", 5), AcquireResult::Acquired);
}

TEST(LimitLease, ReleasesExactlyOnceWhateverHappensToIt) {
    auto store = std::make_shared<InProcessLimitStore>(std::vector<std::size_t>{10});
    {
        ASSERT_EQ(store->acquire(0, "k", 3), AcquireResult::Acquired);
        LimitLease first(store, 0, "k");
        ASSERT_EQ(store->acquire(0, "k", 3), AcquireResult::Acquired);
        LimitLease second(store, 0, "k");
        EXPECT_EQ(store->in_use(0, "k"), 2u);
        LimitLease moved = std::move(first);
        EXPECT_FALSE(first.held());
        EXPECT_EQ(store->in_use(0, "k"), 2u);
        second.reset();
        second.reset();
        EXPECT_EQ(store->in_use(0, "k"), 1u);
        moved = LimitLease();
        EXPECT_EQ(store->in_use(0, "k"), 0u);
        ASSERT_EQ(store->acquire(0, "k", 3), AcquireResult::Acquired);
        LimitLease last(store, 0, "k");
    }
    EXPECT_EQ(store->in_use(0, "k"), 0u);
    EXPECT_EQ(store->stats(0).tracked_keys, 0u);
}

TEST(LimitLease, KeepsItsStoreAliveAfterTheOwnerLetsGo) {
    auto store = std::make_shared<InProcessLimitStore>(std::vector<std::size_t>{10});
    ASSERT_EQ(store->acquire(0, "k", 1), AcquireResult::Acquired);
    LimitLease lease(store, 0, "k");
    std::weak_ptr<InProcessLimitStore> watch = store;
    store.reset();
    EXPECT_FALSE(watch.expired());
    lease.reset();
    EXPECT_TRUE(watch.expired());
}

TEST(InProcessLimitStore, AMillionDistinctKeysStayWithinMaxKeys) {
    FakeClock clock;
    InProcessLimitStore store({1000});
    Gcra gcra(10, 1min, 10);
    for (int i = 0; i < 1000000; ++i)
        store.rate(0, "sender=user" + std::to_string(i) + "@example.net", gcra, clock.now(), 1);
    EXPECT_EQ(store.stats(0).tracked_keys, 1000u);
    EXPECT_EQ(store.stats(0).evictions, 999000u);
}

TEST(RateTable, FindsErasesAndKeepsUseOrderAcrossGrowth) {
    using smtplb::core::GcraState;
    using smtplb::core::RateTable;
    FakeClock clock;
    RateTable table;
    for (int i = 0; i < 1000; ++i)
        table.insert("key" + std::to_string(i), GcraState{i}, clock.now());
    EXPECT_EQ(table.size(), 1000u);
    for (int i = 0; i < 1000; ++i) {
        auto* n = table.find("key" + std::to_string(i));
        ASSERT_NE(n, nullptr);
        EXPECT_EQ(n->state.tat, i);
        EXPECT_EQ(n->key(), "key" + std::to_string(i));
    }
    EXPECT_EQ(table.find("key1000"), nullptr);
    EXPECT_EQ(table.find(""), nullptr);
    EXPECT_EQ(table.oldest()->key(), "key0");
    table.touch(table.find("key0"), clock.now());
    EXPECT_EQ(table.oldest()->key(), "key1");
    for (int i = 1; i < 1000; i += 2)
        table.erase(table.find("key" + std::to_string(i)));
    EXPECT_EQ(table.size(), 500u);
    EXPECT_EQ(table.oldest()->key(), "key2");
    EXPECT_EQ(table.find("key3"), nullptr);
    ASSERT_NE(table.find("key4"), nullptr);
    // The newest is key0 (touched): erasing from the old end reaches it last.
    std::string last;
    while (table.oldest()) {
        last = std::string(table.oldest()->key());
        table.erase(table.oldest());
    }
    EXPECT_EQ(last, "key0");
    EXPECT_EQ(table.size(), 0u);
}

TEST(InProcessLimitStore, ListsTheKeysNearestTheirLimit) {
    FakeClock clock;
    InProcessLimitStore store({100, 100});
    Gcra gcra(10, 1min, 10);
    for (int i = 0; i < 5; ++i)
        store.rate(0, "k" + std::to_string(i), gcra, clock.now(), 1 + i);  // k4 used most
    auto top = store.nearest(0, &gcra, clock.now(), 3);
    ASSERT_EQ(top.size(), 3u);
    EXPECT_EQ(top[0].key, "k4");
    EXPECT_EQ(top[0].remaining, 5u);
    EXPECT_EQ(top[0].reset_after, 30s);
    EXPECT_EQ(top[1].key, "k3");
    EXPECT_EQ(top[2].key, "k2");
    EXPECT_EQ(store.nearest(0, &gcra, clock.now(), 10).size(), 5u);
    clock.advance(1min);
    EXPECT_TRUE(store.nearest(0, &gcra, clock.now(), 3).empty());  // all recovered

    store.acquire(1, "a", 5);
    store.acquire(1, "b", 5);
    store.acquire(1, "b", 5);
    auto held = store.nearest(1, nullptr, clock.now(), 5);
    ASSERT_EQ(held.size(), 2u);
    EXPECT_EQ(held[0].key, "b");
    EXPECT_EQ(held[0].in_use, 2u);
    EXPECT_EQ(held[1].key, "a");
}

TEST(InProcessLimitStore, ThreadsSharingKeysNeitherLeakNorOvercount) {
    FakeClock clock;
    auto store = std::make_shared<InProcessLimitStore>(std::vector<std::size_t>{100, 100});
    Gcra gcra(1000, 1h, 1000);
    std::atomic<int> allowed{0}, over{0};
    auto work = [&] {
        for (int i = 0; i < 20000; ++i) {
            std::string key = "k" + std::to_string(i % 7);
            if (store->acquire(0, key, 3) == AcquireResult::Acquired) {
                LimitLease lease(store, 0, key);
                if (store->in_use(0, key) > 3) ++over;
            }
            allowed += store->rate(1, "shared", gcra, clock.now(), 1).allowed;
        }
    };
    std::thread a(work), b(work);
    a.join();
    b.join();
    EXPECT_EQ(over.load(), 0);
    EXPECT_EQ(store->stats(0).tracked_keys, 0u);  // every place given back
    EXPECT_EQ(allowed.load(), 1000);              // the burst, exactly, across both threads
}
