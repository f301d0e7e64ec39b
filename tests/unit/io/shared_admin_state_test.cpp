// The shared admin state over a scripted Redis (tests/mocks): what a node
// writes and announces, what it applies from Redis, and what it does when
// Redis is not there.
#include <gtest/gtest.h>

#include "config/loader.hpp"
#include "io/balancer.hpp"
#include "io/cluster/shared_admin_state.hpp"
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

struct SharedAdminStateTest : ::testing::Test {
    SharedAdminStateTest() {
        auto loaded = config::load_string(kConfig, "test");
        EXPECT_TRUE(loaded.config) << loaded.diagnostics.format("test");
        config = *loaded.config;
        balancer = std::make_unique<io::Balancer>(io, config);
        auto client = std::make_unique<MockRedisClient>();
        redis = client.get();
        shared = std::make_unique<io::SharedAdminState>(
            config.cluster, std::move(client), clock,
            [this](const std::string& line) { log.push_back(line); });
        shared->attach(*balancer);
        shared->start();
    }
    ~SharedAdminStateTest() override {
        shared.reset();
        balancer.reset();
    }
    core::AdminState state(const char* backend) {
        auto* p = balancer->pool("hubs");
        return p->backend(*p->find(backend)).health.admin();
    }
    std::size_t lines(const std::string& event) const {
        std::size_t n = 0;
        for (const auto& l : log)
            n += l.find("event=" + event + " ") != std::string::npos;
        return n;
    }

    io::asio::io_context io;
    config::Config config;
    smtplb::testing::FakeClock clock;
    std::unique_ptr<io::Balancer> balancer;
    MockRedisClient* redis = nullptr;
    std::unique_ptr<io::SharedAdminState> shared;
    std::vector<std::string> log;
};

}  // namespace

TEST_F(SharedAdminStateTest, ADrainHereIsAppliedAtOnceThenWrittenAndAnnounced) {
    redis->go_up();
    ASSERT_EQ(redis->sent.size(), 1u);  // the re-read on connecting
    EXPECT_EQ(redis->answer(MockRedisClient::hash({}))[0], "HGETALL");
    std::string error;
    ASSERT_TRUE(balancer->set_backend_state("hubs", "hub1", core::AdminState::Drain, error));
    EXPECT_EQ(state("hub1"), core::AdminState::Drain);  // before Redis answered anything
    ASSERT_EQ(redis->sent.size(), 2u);
    EXPECT_EQ(redis->sent[0].args,
              (std::vector<std::string>{"HSET", "smtplb:admin", "hubs/hub1", "drain"}));
    EXPECT_EQ(redis->sent[1].args,
              (std::vector<std::string>{"PUBLISH", "smtplb:admin:changes", "node-a hubs/hub1"}));
    EXPECT_EQ(redis->channel, "smtplb:admin:changes");
}

TEST_F(SharedAdminStateTest, AnAnnouncementMakesItReadTheHashAndRedisWins) {
    redis->go_up();
    redis->answer(MockRedisClient::hash({}));
    redis->publish("node-b hubs/hub2");
    ASSERT_EQ(redis->sent.size(), 1u);
    EXPECT_EQ(redis->sent[0].args, (std::vector<std::string>{"HGETALL", "smtplb:admin"}));
    redis->answer(MockRedisClient::hash({{"hubs/hub2", "maintenance"}, {"hubs/hub1", "enabled"}}));
    EXPECT_EQ(state("hub2"), core::AdminState::Maintenance);
    EXPECT_EQ(state("hub1"), core::AdminState::Enabled);
    EXPECT_EQ(lines("cluster_admin_applied"), 1u);
    EXPECT_EQ(shared->stats()->admin_applied.load(), 1u);
    // Applied from Redis: not written back.
    EXPECT_TRUE(redis->sent.empty());
    // Enabled through another node: back in rotation here.
    redis->publish("node-b hubs/hub2");
    redis->answer(MockRedisClient::hash({{"hubs/hub2", "enabled"}}));
    EXPECT_EQ(state("hub2"), core::AdminState::Enabled);
}

TEST_F(SharedAdminStateTest, AReadOvertakenByALocalChangeIsNotApplied) {
    redis->go_up();
    // The read issued on connecting is still in flight when hub1 is drained here.
    std::string error;
    ASSERT_TRUE(balancer->set_backend_state("hubs", "hub1", core::AdminState::Drain, error));
    redis->answer(MockRedisClient::hash({}));  // the hash from before the HSET
    EXPECT_EQ(state("hub1"), core::AdminState::Drain);
}

TEST_F(SharedAdminStateTest, WithoutRedisTheStateStaysLocalAndTheSwitchIsLoggedOnce) {
    redis->go_down("Connection refused");
    redis->go_down("Connection refused");
    redis->go_down("Connection refused");
    EXPECT_EQ(lines("cluster_redis_down"), 1u);
    EXPECT_EQ(shared->stats()->switched_down.load(), 1u);
    EXPECT_FALSE(shared->stats()->redis_up);
    std::string error;
    ASSERT_TRUE(balancer->set_backend_state("hubs", "hub1", core::AdminState::Drain, error));
    EXPECT_EQ(state("hub1"), core::AdminState::Drain);
    EXPECT_EQ(lines("cluster_admin_local_only"), 1u);
    EXPECT_EQ(shared->stats()->admin_local_only.load(), 1u);
    EXPECT_TRUE(redis->sent.empty());
    // Back: one line, and Redis's state (hub1 not drained there) wins.
    redis->go_up();
    EXPECT_EQ(lines("cluster_redis_up"), 1u);
    EXPECT_TRUE(shared->stats()->redis_up);
    ASSERT_EQ(redis->sent.size(), 1u);
    redis->answer(MockRedisClient::hash({{"hubs/hub2", "drain"}}));
    EXPECT_EQ(state("hub1"), core::AdminState::Enabled);
    EXPECT_EQ(state("hub2"), core::AdminState::Drain);
}

TEST_F(SharedAdminStateTest, ATimedOutReadIsCountedAndChangesNothing) {
    redis->go_up();
    redis->answer(MockRedisClient::timeout());
    EXPECT_EQ(shared->stats()->request_timeouts.load(), 1u);
    EXPECT_EQ(state("hub1"), core::AdminState::Enabled);
}

TEST_F(SharedAdminStateTest, AReloadedGenerationIsBroughtUpToDateAndTheOldOneNoLongerShares) {
    redis->go_up();
    redis->answer(MockRedisClient::hash({}));
    auto next = std::make_unique<io::Balancer>(io, config, nullptr, balancer.get());
    shared->attach(*next);
    ASSERT_EQ(redis->sent.size(), 1u);
    EXPECT_EQ(redis->sent[0].args[0], "HGETALL");
    redis->answer(MockRedisClient::hash({{"hubs/hub1", "drain"}}));
    auto* p = next->pool("hubs");
    EXPECT_EQ(p->backend(*p->find("hub1")).health.admin(), core::AdminState::Drain);
    EXPECT_EQ(next->cluster_stats(), shared->stats());
    std::string error;
    ASSERT_TRUE(balancer->set_backend_state("hubs", "hub2", core::AdminState::Drain, error));
    EXPECT_TRUE(redis->sent.empty());  // the retired generation says nothing
    shared->detach();
}
