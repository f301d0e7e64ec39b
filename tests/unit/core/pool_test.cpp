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
