#include <gtest/gtest.h>

#include <map>

#include "core/pool.hpp"
#include "mocks/fake_clock.hpp"
#include "mocks/scripted_random.hpp"

using namespace smtplb;
using namespace std::chrono_literals;

namespace {
config::Pool pool_config(std::vector<std::pair<std::uint32_t, std::uint32_t>> weight_priority) {
    config::Pool p;
    p.name = "p";
    p.down_retry = 10s;
    p.health.enabled = false;  // recovery by trial transactions; probes are tested elsewhere
    for (std::size_t i = 0; i < weight_priority.size(); ++i) {
        config::Backend b;
        b.name = "b" + std::to_string(i);
        b.weight = weight_priority[i].first;
        b.priority = weight_priority[i].second;
        p.backends.push_back(b);
    }
    return p;
}
const auto kClient = base::IpAddress::parse("192.0.2.10");
}  // namespace

TEST(Pool, HigherPriorityTierOnlyWhenLowerTierIsUnusable) {
    smtplb::testing::FakeClock clock;
    smtplb::testing::ScriptedRandom random({0});
    core::Pool pool(pool_config({{1, 10}, {1, 10}, {1, 20}}), clock, random);
    for (int i = 0; i < 20; ++i)
        EXPECT_NE(*pool.pick(kClient, {}), 2u);
    pool.report(0, core::LiveOutcome::Failed, "test");
    pool.report(1, core::LiveOutcome::Failed, "test");
    EXPECT_EQ(*pool.pick(kClient, {}), 2u);
    // After down_retry, the preferred tier gets a trial again.
    clock.advance(11s);
    EXPECT_NE(*pool.pick(kClient, {}), 2u);
    pool.report(0, core::LiveOutcome::Success, "test");
    pool.report(1, core::LiveOutcome::Success, "test");
    for (int i = 0; i < 20; ++i)
        EXPECT_NE(*pool.pick(kClient, {}), 2u);
}

TEST(Pool, NeverPicksATriedBackendAndRunsOut) {
    smtplb::testing::FakeClock clock;
    smtplb::testing::ScriptedRandom random({0});
    core::Pool pool(pool_config({{1, 10}, {1, 10}, {1, 20}}), clock, random);
    std::vector<std::size_t> tried;
    for (int i = 0; i < 3; ++i) {
        auto b = pool.pick(kClient, tried);
        ASSERT_TRUE(b);
        EXPECT_EQ(std::count(tried.begin(), tried.end(), *b), 0);
        tried.push_back(*b);
    }
    EXPECT_EQ(tried.back(), 2u);  // the backup tier last
    EXPECT_FALSE(pool.pick(kClient, tried));
}

TEST(Pool, WeightsAcrossPicks) {
    smtplb::testing::FakeClock clock;
    smtplb::testing::ScriptedRandom random({0});
    core::Pool pool(pool_config({{3, 10}, {1, 10}}), clock, random);
    std::map<std::size_t, int> count;
    for (int i = 0; i < 400; ++i)
        ++count[*pool.pick(kClient, {})];
    EXPECT_EQ(count[0], 300);
    EXPECT_EQ(count[1], 100);
}

TEST(Pool, SourceIpPersistenceHoldsUntilTtl) {
    smtplb::testing::FakeClock clock;
    smtplb::testing::ScriptedRandom random({0});
    auto cfg = pool_config({{1, 10}, {1, 10}, {1, 10}});
    cfg.persistence = config::Persistence::SourceIp;
    cfg.persistence_ttl = 60s;
    core::Pool pool(cfg, clock, random);
    auto first = *pool.pick(kClient, {});
    for (int i = 0; i < 10; ++i) {
        clock.advance(30s);  // each use refreshes the TTL
        EXPECT_EQ(*pool.pick(kClient, {}), first);
    }
    auto other = base::IpAddress::parse("192.0.2.11");
    pool.pick(other, {});  // moves round robin on
    clock.advance(61s);
    // Expired: chosen afresh, and a failing backend is left even when remembered.
    pool.report(first, core::LiveOutcome::Failed, "test");
    EXPECT_NE(*pool.pick(kClient, {}), first);
}

TEST(Pool, ConnectionSlotsStopAtMaxConnectionsAndComeBackOnClose) {
    smtplb::testing::FakeClock clock;
    smtplb::testing::ScriptedRandom random({0});
    auto cfg = pool_config({{1, 10}, {1, 10}});
    cfg.backends[0].max_connections = 2;
    core::Pool pool(cfg, clock, random);
    std::vector<std::size_t> freed;
    pool.set_slot_freed([&](std::size_t b) { freed.push_back(b); });

    EXPECT_TRUE(pool.try_open_connection(0));
    EXPECT_TRUE(pool.try_open_connection(0));
    EXPECT_FALSE(pool.try_open_connection(0));
    EXPECT_EQ(pool.backend(0).active_connections, 2u);  // a refusal counts nothing
    // A connection counted without a slot (a probe's) may pass the cap...
    pool.connection_opened(0);
    EXPECT_EQ(pool.backend(0).active_connections, 3u);
    pool.connection_closed(0);
    EXPECT_FALSE(pool.try_open_connection(0));  // ...and no slot comes free below it
    pool.connection_closed(0);
    EXPECT_EQ(freed, (std::vector<std::size_t>{0, 0}));
    EXPECT_TRUE(pool.try_open_connection(0));
    EXPECT_FALSE(pool.try_open_connection(0));

    // No max_connections: always a slot, still counted; nobody to tell.
    for (int i = 0; i < 100; ++i)
        EXPECT_TRUE(pool.try_open_connection(1));
    EXPECT_EQ(pool.backend(1).active_connections, 100u);
    pool.connection_closed(1);
    EXPECT_EQ(freed.size(), 2u);
    // The capped backend's load is what least_connections weighs too.
    EXPECT_EQ(pool.backend(0).active_connections, 2u);
}

TEST(Pool, AWaitForASlotIsCountedLoggedOnceAMinuteAndLeavesHealthAlone) {
    smtplb::testing::FakeClock clock;
    smtplb::testing::ScriptedRandom random({0});
    auto cfg = pool_config({{1, 10}});
    cfg.backends[0].max_connections = 1;
    core::Pool pool(cfg, clock, random);
    EXPECT_TRUE(pool.connection_wait_started(0));
    EXPECT_FALSE(pool.connection_wait_started(0));
    EXPECT_TRUE(pool.connection_wait_timed_out(0));  // its own line, its own minute
    clock.advance(59s);
    EXPECT_FALSE(pool.connection_wait_started(0));
    EXPECT_FALSE(pool.connection_wait_timed_out(0));
    clock.advance(1s);
    EXPECT_TRUE(pool.connection_wait_started(0));
    EXPECT_TRUE(pool.connection_wait_timed_out(0));
    EXPECT_EQ(pool.backend(0).counters.connection_waits, 4u);
    EXPECT_EQ(pool.backend(0).counters.connection_wait_timeouts, 3u);
    // However many run out, the backend stays in service: the transaction
    // reports nothing for a slot wait (golden transcript connection_cap).
    EXPECT_TRUE(pool.usable(0));
    EXPECT_EQ(pool.backend(0).health.state(), core::HealthState::Up);
}

// A reload that moves a backend to another address keeps its counters
// (by pool and name: a Prometheus counter that goes back reads as a
// restart), but not its health, which was about the old server.
TEST(Pool, ReloadKeepsCountersByNameAndHealthOnlyAtTheSameAddress) {
    smtplb::testing::FakeClock clock;
    smtplb::testing::ScriptedRandom random({0});
    auto before_config = pool_config({{1, 10}, {1, 10}});
    before_config.backends[0].address = *base::HostPort::parse("127.0.0.1:2601");
    before_config.backends[1].address = *base::HostPort::parse("127.0.0.1:2602");
    core::Pool before(before_config, clock, random);
    before.backend(0).counters.delivered += 5;
    before.backend(1).counters.delivered += 7;
    before.report(0, core::LiveOutcome::Failed, "test");
    before.report(1, core::LiveOutcome::Failed, "test");
    auto after_config = before_config;
    after_config.backends[1].address = *base::HostPort::parse("127.0.0.1:2603");
    core::Pool after(after_config, clock, random);
    after.adopt_state(before);
    EXPECT_EQ(after.backend(0).counters.delivered, 5u);
    EXPECT_EQ(after.backend(1).counters.delivered, 7u);
    EXPECT_EQ(after.backend(0).health.state(), before.backend(0).health.state());
    EXPECT_NE(before.backend(1).health.state(), core::HealthState::Up);
    EXPECT_EQ(after.backend(1).health.state(), core::HealthState::Up);
}
