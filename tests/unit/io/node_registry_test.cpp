// The node registry and the shared source_ip persistence over a scripted
// Redis (tests/mocks): what a node writes, how it reads the others, and
// how a stick travels.
#include <gtest/gtest.h>

#include "config/loader.hpp"
#include "io/balancer.hpp"
#include "io/cluster/node_registry.hpp"
#include "io/cluster/shared_persistence.hpp"
#include "mocks/fake_clock.hpp"
#include "mocks/mock_redis_client.hpp"

using namespace smtplb;
using namespace std::chrono_literals;
using smtplb::testing::MockRedisClient;

namespace {

const char* kConfig = R"(
[server]
state_dir = "/tmp"
tracking_log = ""
admin = ""
[[listener]]
name = "in"
bind = "127.0.0.1:0"
accepted_domains = ["example.net"]
pool = "hubs"
[[pool]]
name = "hubs"
persistence = "source_ip"
health = { depth = "connect", enabled = false }
[[pool.backend]]
name = "hub1"
address = "127.0.0.1:1"
[[pool.backend]]
name = "hub2"
address = "127.0.0.1:2"
[cluster]
redis = "127.0.0.1:6379"
node_name = "node-a"
)";

io::RedisReply strings(const std::vector<std::optional<std::string>>& items) {
    io::RedisReply r;
    r.kind = io::RedisReply::Kind::Array;
    for (const auto& item : items) {
        io::RedisReply e;
        e.kind = item ? io::RedisReply::Kind::String : io::RedisReply::Kind::Nil;
        if (item) e.text = *item;
        r.elements.push_back(e);
    }
    return r;
}

io::RedisReply ok() {
    io::RedisReply r;
    r.kind = io::RedisReply::Kind::String;
    r.text = "OK";
    return r;
}

struct NodeRegistryTest : ::testing::Test {
    NodeRegistryTest() {
        auto loaded = config::load_string(kConfig, "test");
        EXPECT_TRUE(loaded.config) << loaded.diagnostics.format("test");
        config = *loaded.config;
        balancer = std::make_unique<io::Balancer>(io, config);
        registry = std::make_unique<io::NodeRegistry>(config.cluster, redis, io.get_executor(),
                                                      clock, "9.9.9", nullptr);
        registry->attach(*balancer);
    }
    io::asio::io_context io;
    smtplb::testing::FakeClock clock;
    config::Config config;
    MockRedisClient redis;
    std::unique_ptr<io::Balancer> balancer;
    std::unique_ptr<io::NodeRegistry> registry;
};

}  // namespace

TEST(Heartbeat, SurvivesRedisAndRefusesWhatIsNotOne) {
    core::cluster::Heartbeat h;
    h.node = "mx1";
    h.version = "0.1.0";
    h.digest = "0123456789abcdef";
    h.started_ms = 1700000000000;
    h.sequence = 42;
    h.sessions = 7;
    h.messages_per_second = 12.5;
    h.backends.push_back({"hubs", "hub1", "down", "drain", false, "connection refused"});
    auto back = io::decode_heartbeat(io::encode_heartbeat(h));
    ASSERT_TRUE(back);
    EXPECT_EQ(back->node, "mx1");
    EXPECT_EQ(back->sequence, 42u);
    EXPECT_EQ(back->started_ms, 1700000000000);
    EXPECT_DOUBLE_EQ(back->messages_per_second, 12.5);
    ASSERT_EQ(back->backends.size(), 1u);
    EXPECT_EQ(back->backends[0].reason, "connection refused");
    EXPECT_EQ(back->backends[0].admin, "drain");
    EXPECT_FALSE(io::decode_heartbeat("not json"));
    EXPECT_FALSE(io::decode_heartbeat("{\"version\":\"1\"}"));  // no node
}

TEST(SharedPersistenceMessage, RoundTrips) {
    auto text = io::SharedPersistence::message("mx1", "hubs", "192.0.2.1", "hub2");
    auto stick = io::SharedPersistence::parse(text);
    ASSERT_TRUE(stick);
    EXPECT_EQ(stick->node, "mx1");
    EXPECT_EQ(stick->client, "192.0.2.1");
    EXPECT_EQ(stick->backend, "hub2");
    EXPECT_FALSE(io::SharedPersistence::parse("mx1\thubs\t192.0.2.1"));
    EXPECT_FALSE(io::SharedPersistence::parse("mx1\thubs\t\thub2"));
}

TEST_F(NodeRegistryTest, WritesItsHeartbeatAndReadsEveryNodes) {
    redis.up = true;
    registry->tick();
    ASSERT_EQ(redis.sent.size(), 3u);
    const auto set = redis.sent[0].args;  // a copy: answered below
    EXPECT_EQ(set[0], "SET");
    EXPECT_EQ(set[1], "smtplb:node:node-a");
    EXPECT_EQ(set[3], "PX");
    EXPECT_EQ(set[4], "3000");
    auto mine = io::decode_heartbeat(set[2]);
    ASSERT_TRUE(mine);
    EXPECT_EQ(mine->version, "9.9.9");
    EXPECT_EQ(mine->digest, registry->digest());
    ASSERT_EQ(mine->backends.size(), 2u);
    EXPECT_EQ(mine->backends[0].backend, "hub1");
    EXPECT_EQ(redis.sent[1].args, (std::vector<std::string>{"SADD", "smtplb:nodes", "node-a"}));
    redis.answer(ok());
    redis.answer(MockRedisClient::integer(1));
    EXPECT_EQ(redis.answer(strings({"node-a", "node-b"}))[0], "SMEMBERS");
    ASSERT_EQ(redis.sent.size(), 1u);
    EXPECT_EQ(redis.sent[0].args,
              (std::vector<std::string>{"MGET", "smtplb:node:node-a", "smtplb:node:node-b"}));
    auto other = *mine;
    other.node = "node-b";
    other.digest = "ffffffffffffffff";
    redis.answer(strings({set[2], io::encode_heartbeat(other)}));
    EXPECT_EQ(registry->live_nodes(), 2u);
    auto nodes = registry->nodes();
    ASSERT_EQ(nodes.size(), 2u);
    EXPECT_TRUE(nodes[0].self);
    EXPECT_TRUE(nodes[1].differs_from_self);
    EXPECT_EQ(registry->stats()->heartbeats.load(), 1u);
    EXPECT_EQ(balancer->node_registry(), registry.get());
}

TEST_F(NodeRegistryTest, WithoutRedisAHeartbeatFailsAndTheLastCountStays) {
    redis.up = false;
    registry->tick();
    EXPECT_TRUE(redis.history.empty());  // nothing is even tried
    EXPECT_EQ(registry->stats()->heartbeat_failures.load(), 1u);
    EXPECT_EQ(registry->live_nodes(), 1u);
}

TEST_F(NodeRegistryTest, AStickMadeHereIsSharedAndOneMadeElsewhereIsApplied) {
    redis.up = true;
    io::SharedPersistence sticks(config.cluster, redis, io.get_executor(), registry->stats());
    sticks.attach(*balancer);
    EXPECT_EQ(redis.channel, "smtplb:sticks");
    auto* pool = balancer->pool("hubs");
    auto client = base::IpAddress::parse("192.0.2.10");
    auto chosen = *pool->pick(client, {});
    io.run();  // the hook posted it to this loop
    ASSERT_EQ(redis.sent.size(), 2u);
    const auto& backend = pool->backend(chosen).config.name;
    EXPECT_EQ(redis.sent[0].args[0], "SET");
    EXPECT_EQ(redis.sent[0].args[1], "smtplb:stick:hubs:192.0.2.10");
    EXPECT_EQ(redis.sent[0].args[2], backend);
    EXPECT_EQ(redis.sent[1].args[0], "PUBLISH");
    redis.answer(ok());
    EXPECT_EQ(registry->stats()->sticks_shared.load(), 1u);
    // Its own announcement changes nothing; another node's is applied.
    redis.publish(std::string(redis.sent[0].args[2]));  // the PUBLISH above: its own
    redis.publish(io::SharedPersistence::message("node-a", "hubs", "192.0.2.11", "hub2"));
    EXPECT_EQ(registry->stats()->sticks_applied.load(), 0u);
    redis.publish(io::SharedPersistence::message("node-b", "hubs", "192.0.2.11", "hub2"));
    EXPECT_EQ(registry->stats()->sticks_applied.load(), 1u);
    for (int i = 0; i < 4; ++i)
        EXPECT_EQ(*pool->pick(base::IpAddress::parse("192.0.2.11"), {}), 1u);
    sticks.detach();
}
