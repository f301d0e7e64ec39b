#include <gtest/gtest.h>

#include "core/cluster/shared_admin.hpp"
#include "mocks/fake_clock.hpp"

using namespace smtplb;
using namespace smtplb::core;
using namespace smtplb::core::cluster;
using namespace std::chrono_literals;

TEST(ClusterReconcile, RedisWinsAndMissingFieldsMeanEnabled) {
    std::vector<AdminEntry> local{{"hubs", "hub1", AdminState::Enabled},
                                  {"hubs", "hub2", AdminState::Drain},
                                  {"hubs", "hub3", AdminState::Maintenance},
                                  {"org", "hub1", AdminState::Enabled}};
    std::map<std::string, std::string> remote{
        {"hubs/hub1", "drain"}, {"hubs/hub3", "maintenance"}, {"gone/hubX", "drain"}};
    auto r = reconcile(local, remote);
    ASSERT_EQ(r.changes.size(), 2u);
    EXPECT_EQ(r.changes[0].backend, "hub1");
    EXPECT_EQ(r.changes[0].state, AdminState::Drain);
    // hub2 was drained here only (no field in Redis): Redis wins, enabled.
    EXPECT_EQ(r.changes[1].backend, "hub2");
    EXPECT_EQ(r.changes[1].state, AdminState::Enabled);
    EXPECT_TRUE(r.unreadable.empty());
}

TEST(ClusterReconcile, NothingToDoWhenTheyAgree) {
    std::vector<AdminEntry> local{{"hubs", "hub1", AdminState::Drain}};
    EXPECT_TRUE(reconcile(local, {{"hubs/hub1", "drain"}}).changes.empty());
    EXPECT_TRUE(reconcile({{"hubs", "hub1", AdminState::Enabled}}, {}).changes.empty());
    // "enable" (the API's verb) and "enabled" (the state) both read as enabled.
    EXPECT_TRUE(reconcile({{"hubs", "hub1", AdminState::Enabled}}, {{"hubs/hub1", "enable"}})
                    .changes.empty());
}

TEST(ClusterReconcile, AValueThatIsNoStateIsLeftAlone) {
    std::vector<AdminEntry> local{{"hubs", "hub1", AdminState::Drain}};
    auto r = reconcile(local, {{"hubs/hub1", "sideways"}});
    EXPECT_TRUE(r.changes.empty());
    ASSERT_EQ(r.unreadable.size(), 1u);
    EXPECT_EQ(r.unreadable[0], "hubs/hub1");
}

TEST(ClusterReadGuard, AReadOvertakenByALocalWriteIsStale) {
    ReadGuard g;
    auto first = g.begin_read();
    EXPECT_TRUE(g.fresh(first));
    g.wrote();
    EXPECT_FALSE(g.fresh(first));
    auto second = g.begin_read();
    EXPECT_TRUE(g.fresh(second));
}

TEST(ClusterBackoff, DoublesUpToTheMaximumAndResets) {
    ReconnectBackoff b(100ms, 1000ms);
    EXPECT_EQ(b.next(), 100ms);
    EXPECT_EQ(b.next(), 200ms);
    EXPECT_EQ(b.next(), 400ms);
    EXPECT_EQ(b.next(), 800ms);
    EXPECT_EQ(b.next(), 1000ms);
    EXPECT_EQ(b.next(), 1000ms);
    b.reset();
    EXPECT_EQ(b.next(), 100ms);
}

TEST(ClusterLinkState, LogsEachSwitchOnceAndTheReturnWithItsLength) {
    smtplb::testing::FakeClock clock;
    LinkState link;
    auto first = link.connected(clock.now(), "127.0.0.1:6379");
    ASSERT_TRUE(first);
    EXPECT_NE(first->find("event=cluster_redis_up"), std::string::npos);
    EXPECT_EQ(first->find("down_ms"), std::string::npos);  // a first connection, not a return
    EXPECT_FALSE(link.connected(clock.now(), "127.0.0.1:6379"));
    auto down = link.lost(clock.now(), "127.0.0.1:6379", "Connection refused");
    ASSERT_TRUE(down);
    EXPECT_NE(down->find("event=cluster_redis_down"), std::string::npos);
    EXPECT_NE(down->find("reason=\"Connection refused\""), std::string::npos);
    // Reconnects that fail while it is down say nothing more.
    for (int i = 0; i < 5; ++i)
        EXPECT_FALSE(link.lost(clock.now(), "127.0.0.1:6379", "Connection refused"));
    EXPECT_FALSE(link.up());
    clock.advance(2500ms);
    auto back = link.connected(clock.now(), "127.0.0.1:6379");
    ASSERT_TRUE(back);
    EXPECT_NE(back->find("down_ms=2500"), std::string::npos);
    EXPECT_TRUE(link.up());
}

TEST(ClusterLinkState, NeverReachedIsOneDownLine) {
    smtplb::testing::FakeClock clock;
    LinkState link;
    EXPECT_TRUE(link.lost(clock.now(), "r", "refused"));
    EXPECT_FALSE(link.lost(clock.now(), "r", "refused"));
    EXPECT_EQ(link.state(), LinkState::State::Down);
}
