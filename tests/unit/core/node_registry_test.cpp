#include <gtest/gtest.h>

#include "core/cluster/node_registry.hpp"
#include "core/pool.hpp"
#include "mocks/fake_clock.hpp"
#include "mocks/scripted_random.hpp"

using namespace smtplb;
using namespace smtplb::core::cluster;
using namespace std::chrono_literals;

namespace {

Heartbeat beat(const std::string& node, std::uint64_t sequence, const std::string& digest = "d1") {
    Heartbeat h;
    h.node = node;
    h.version = "0.1.0";
    h.digest = digest;
    h.started_ms = 1000;
    h.sequence = sequence;
    return h;
}

const NodeView* find(const std::vector<NodeView>& view, const std::string& node) {
    for (const auto& v : view)
        if (v.last.node == node) return &v;
    return nullptr;
}

bool has_event(const std::vector<RegistryEvent>& events, const std::string& event,
               const std::string& node) {
    for (const auto& e : events)
        if (e.event == event)
            for (const auto& [key, value] : e.fields)
                if (key == "node" && value == node) return true;
    return false;
}

}  // namespace

TEST(ConfigDigest, LeavesOutPerNodeKeysOnly) {
    std::string a =
        "[server]\nhostname = \"mx1.example.net\"\nstate_dir = \"/var/lib/a\"\nthreads = 2\n"
        "shutdown_grace = 30s\n\n[cluster]\nnode_name = \"mx1\"\nkey_prefix = \"smtplb\"\n\n"
        "[[listener]]\nname = \"in\"\nbind = \"127.0.0.1:25\"\nsource_address = \"\"\n";
    std::string b =
        "[server]\nhostname = \"mx2.example.net\"\nstate_dir = \"/var/lib/b\"\nthreads = 8\n"
        "shutdown_grace = 30s\n\n[cluster]\nnode_name = \"mx2\"\nkey_prefix = \"smtplb\"\n\n"
        "[[listener]]\nname = \"in\"\nbind = \"127.0.0.2:25\"\nsource_address = \"10.0.0.2\"\n";
    EXPECT_EQ(config_digest(a), config_digest(b));
    EXPECT_EQ(config_digest(a).size(), 16u);
    // Any other key counts, wherever it is.
    auto c = a;
    c.replace(c.find("30s"), 3, "31s");
    EXPECT_NE(config_digest(a), config_digest(c));
    auto d = a;
    d.replace(d.find("name = \"in\""), 11, "name = \"up\"");
    EXPECT_NE(config_digest(a), config_digest(d));
    // "name" under [[listener]] is not "node_name" under [cluster].
    EXPECT_NE(config_digest("[listener]\nname = \"a\"\n"),
              config_digest("[listener]\nname = \"b\"\n"));
}

TEST(NodeTable, ANodeIsGoneAfterItsExpiryWhenItsKeyGoesOrItsHeartbeatStops) {
    smtplb::testing::FakeClock clock;
    NodeTable table("mx1", 3s, 1h);
    auto events = table.observe({beat("mx1", 1), beat("mx2", 1), beat("mx3", 1)}, clock.now());
    EXPECT_TRUE(has_event(events, "cluster_node_joined", "mx2"));
    EXPECT_TRUE(has_event(events, "cluster_node_joined", "mx3"));
    EXPECT_FALSE(has_event(events, "cluster_node_joined", "mx1"));  // itself: no line
    EXPECT_EQ(table.live_at_last_read(), 3u);
    // mx2 keeps beating; mx3's heartbeat stays the same (hung, key not yet expired).
    for (std::uint64_t s = 2; s <= 4; ++s) {
        clock.advance(1s);
        events = table.observe({beat("mx1", s), beat("mx2", s), beat("mx3", 1)}, clock.now());
        EXPECT_TRUE(events.empty());
    }
    clock.advance(1s);  // 4 s since mx3's changed: past the 3 s expiry
    events = table.observe({beat("mx1", 5), beat("mx2", 5), beat("mx3", 1)}, clock.now());
    EXPECT_TRUE(has_event(events, "cluster_node_gone", "mx3"));
    EXPECT_EQ(table.live_at_last_read(), 2u);
    auto view = table.view(clock.now());
    ASSERT_EQ(view.size(), 3u);
    EXPECT_FALSE(find(view, "mx3")->alive);
    EXPECT_TRUE(find(view, "mx1")->self);
    EXPECT_EQ(find(view, "mx3")->age, 4s);
    // mx2's key expires in Redis: gone at once.
    clock.advance(1s);
    events = table.observe({beat("mx1", 6)}, clock.now());
    EXPECT_TRUE(has_event(events, "cluster_node_gone", "mx2"));
    EXPECT_EQ(table.live_at_last_read(), 1u);
    // Back (restarted: a new start time, sequence from 1): joined again.
    clock.advance(1s);
    auto again = beat("mx2", 1);
    again.started_ms = 9000;
    events = table.observe({beat("mx1", 7), again}, clock.now());
    EXPECT_TRUE(has_event(events, "cluster_node_joined", "mx2"));
    // Gone nodes are listed until forgotten.
    EXPECT_TRUE(table.forget(clock.now()).empty());
    clock.advance(2h);
    table.observe({beat("mx1", 8)}, clock.now());
    auto forgotten = table.forget(clock.now());
    EXPECT_EQ(forgotten, (std::vector<std::string>{"mx2", "mx3"}));
    EXPECT_EQ(table.view(clock.now()).size(), 1u);
}

TEST(NodeTable, LiveNodesKeepsTheLastReadsCountWhileRedisIsAway) {
    smtplb::testing::FakeClock clock;
    NodeTable table("mx1", 3s, 1h);
    EXPECT_EQ(table.live_at_last_read(), 1u);  // nothing read yet: this node alone
    table.observe({beat("mx1", 1), beat("mx2", 1), beat("mx3", 1)}, clock.now());
    clock.advance(1min);  // no read succeeds meanwhile
    EXPECT_EQ(table.live_at_last_read(), 3u);
}

TEST(NodeTable, FlagsADigestThatDiffersFromTheMajorityAndFromThisNode) {
    smtplb::testing::FakeClock clock;
    NodeTable table("mx1", 3s, 1h);
    auto events = table.observe(
        {beat("mx1", 1, "aaaa"), beat("mx2", 1, "aaaa"), beat("mx3", 1, "bbbb")}, clock.now());
    EXPECT_TRUE(has_event(events, "cluster_node_config_differs", "mx3"));
    EXPECT_FALSE(has_event(events, "cluster_node_config_differs", "mx2"));
    EXPECT_EQ(table.majority_digest(clock.now()), "aaaa");
    auto view = table.view(clock.now());
    EXPECT_TRUE(find(view, "mx3")->differs_from_majority);
    EXPECT_TRUE(find(view, "mx3")->differs_from_self);
    EXPECT_FALSE(find(view, "mx2")->differs_from_majority);
    EXPECT_FALSE(find(view, "mx1")->differs_from_majority);
    // Said once, not every read.
    clock.advance(1s);
    events = table.observe({beat("mx1", 2, "aaaa"), beat("mx2", 2, "aaaa"), beat("mx3", 2, "bbbb")},
                           clock.now());
    EXPECT_FALSE(has_event(events, "cluster_node_config_differs", "mx3"));
    // This node is the odd one out: the majority is the others', and this
    // node differs from the majority; from its own view the others differ.
    NodeTable odd("mx3", 3s, 1h);
    odd.observe({beat("mx1", 1, "aaaa"), beat("mx2", 1, "aaaa"), beat("mx3", 1, "bbbb")},
                clock.now());
    auto oview = odd.view(clock.now());
    EXPECT_EQ(odd.majority_digest(clock.now()), "aaaa");
    EXPECT_TRUE(find(oview, "mx3")->differs_from_majority);
    EXPECT_TRUE(find(oview, "mx1")->differs_from_self);
    // A tie goes to this node's digest.
    NodeTable tie("mx2", 3s, 1h);
    tie.observe({beat("mx1", 1, "aaaa"), beat("mx2", 1, "bbbb")}, clock.now());
    EXPECT_EQ(tie.majority_digest(clock.now()), "bbbb");
}

TEST(PoolSticks, ANewStickIsToldAndAnAdoptedOneIsFollowed) {
    smtplb::testing::FakeClock clock;
    smtplb::testing::ScriptedRandom random({0});
    config::Pool cfg;
    cfg.name = "p";
    cfg.health.enabled = false;
    cfg.persistence = config::Persistence::SourceIp;
    cfg.persistence_ttl = 60s;
    for (int i = 0; i < 3; ++i) {
        config::Backend b;
        b.name = "b" + std::to_string(i);
        cfg.backends.push_back(b);
    }
    core::Pool pool(cfg, clock, random);
    std::vector<std::pair<std::string, std::string>> told;
    pool.set_stick_hook([&](const std::string& client, const std::string& backend) {
        told.emplace_back(client, backend);
    });
    auto client = base::IpAddress::parse("192.0.2.10");
    auto first = *pool.pick(client, {});
    ASSERT_EQ(told.size(), 1u);
    EXPECT_EQ(told[0].first, "192.0.2.10");
    EXPECT_EQ(told[0].second, "b" + std::to_string(first));
    pool.pick(client, {});  // kept, not new: not told again
    EXPECT_EQ(told.size(), 1u);
    // Another node stuck a second client to b2: this pool follows it.
    EXPECT_TRUE(pool.adopt_stick("192.0.2.11", "b2"));
    for (int i = 0; i < 5; ++i)
        EXPECT_EQ(*pool.pick(base::IpAddress::parse("192.0.2.11"), {}), 2u);
    EXPECT_EQ(told.size(), 1u);
    EXPECT_FALSE(pool.adopt_stick("192.0.2.12", "nosuch"));
}
