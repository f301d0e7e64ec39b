// Redis Sentinel over scripted sentinels and masters (tests/mocks): how a
// node finds the master, checks it, and follows it when it moves.
#include <gtest/gtest.h>

#include "io/cluster/sentinel_client.hpp"
#include "mocks/mock_redis_client.hpp"

using namespace smtplb;
using smtplb::io::RedisReply;
using smtplb::io::RedisRole;
using smtplb::testing::MockRedisClient;

namespace {

RedisReply text(const std::string& t) {
    RedisReply r;
    r.kind = RedisReply::Kind::String;
    r.text = t;
    return r;
}

RedisReply array(const std::vector<std::string>& items) {
    RedisReply r;
    r.kind = RedisReply::Kind::Array;
    for (const auto& i : items)
        r.elements.push_back(text(i));
    return r;
}

RedisReply error(const std::string& t) {
    RedisReply r;
    r.kind = RedisReply::Kind::Error;
    r.text = t;
    return r;
}

const std::vector<std::string> kAsk = {"SENTINEL", "get-master-addr-by-name", "mymaster"};

// Two sentinels and whatever masters they name, all mocks.
struct SentinelFixture : ::testing::Test {
    io::asio::io_context io;
    std::vector<MockRedisClient*> sentinels;
    std::vector<std::pair<std::string, MockRedisClient*>> masters;  // by address, in order
    std::vector<std::pair<bool, std::string>> links;
    std::vector<std::string> moves;
    std::vector<std::string> messages;
    std::unique_ptr<io::SentinelClient> client;

    void SetUp() override {
        io::SentinelSettings s;
        s.sentinels = {{"127.0.0.1", 26379}, {"127.0.0.1", 26380}};
        s.master_name = "mymaster";
        client = std::make_unique<io::SentinelClient>(
            io.get_executor(), s, [this](const base::HostPort& at, bool to_sentinel) {
                auto mock = std::make_unique<MockRedisClient>();
                (to_sentinel ? sentinels.emplace_back(mock.get())
                             : masters.emplace_back(at.to_string(), mock.get()).second);
                return mock;
            });
        client->subscribe("smtplb:admin:changes",
                          [this](const std::string& m) { messages.push_back(m); });
        client->on_link_change(
            [this](bool up, const std::string& why) { links.emplace_back(up, why); });
        client->on_master_change([this](const std::string& from, const std::string& to,
                                        const std::string&) { moves.push_back(from + "->" + to); });
        client->start();
    }
    MockRedisClient& master() { return *masters.back().second; }
    // What was posted (poll() alone stops once the loop ran out of work).
    void run() {
        io.restart();
        io.poll();
    }
    // Sentinel 0 is up and names `address`; the master there says `role`.
    void found(const std::string& host, const std::string& port, const std::string& role) {
        sentinels[0]->go_up();
        ASSERT_EQ(sentinels[0]->sent.size(), 1u);
        EXPECT_EQ(sentinels[0]->answer(array({host, port})), kAsk);
        ASSERT_FALSE(masters.empty());
        EXPECT_EQ(masters.back().first, host + ":" + port);
        EXPECT_TRUE(master().started);
        master().go_up();
        ASSERT_EQ(master().sent.size(), 1u);
        EXPECT_EQ(master().answer(array({role, "0"})), std::vector<std::string>{"ROLE"});
        run();
    }
};

}  // namespace

TEST(SentinelReplies, MasterAddress) {
    auto a = io::master_address(array({"127.0.0.1", "6380"}));
    ASSERT_TRUE(a);
    EXPECT_EQ(a->to_string(), "127.0.0.1:6380");
    RedisReply nil;
    EXPECT_FALSE(io::master_address(nil));  // the sentinel does not know the name
    EXPECT_FALSE(io::master_address(array({"127.0.0.1"})));
    EXPECT_FALSE(io::master_address(array({"127.0.0.1", "0"})));
    EXPECT_FALSE(io::master_address(array({"127.0.0.1", "70000"})));
    EXPECT_FALSE(io::master_address(array({"127.0.0.1", "63x"})));
    EXPECT_FALSE(io::master_address(error("ERR unknown")));
}

TEST(SentinelReplies, SwitchMaster) {
    auto s = io::parse_switch_master("mymaster 127.0.0.1 6379 127.0.0.2 6380");
    ASSERT_TRUE(s);
    EXPECT_EQ(s->name, "mymaster");
    EXPECT_EQ(s->from.to_string(), "127.0.0.1:6379");
    EXPECT_EQ(s->to.to_string(), "127.0.0.2:6380");
    EXPECT_FALSE(io::parse_switch_master("mymaster 127.0.0.1 6379 127.0.0.2"));
    EXPECT_FALSE(io::parse_switch_master("mymaster 127.0.0.1 6379 127.0.0.2 6380 x"));
    EXPECT_FALSE(io::parse_switch_master("mymaster 127.0.0.1 6379 127.0.0.2 port"));
}

TEST(SentinelReplies, RoleAndReadonly) {
    EXPECT_EQ(io::role_of(array({"master", "12"})), RedisRole::Master);
    EXPECT_EQ(io::role_of(array({"slave", "127.0.0.1"})), RedisRole::Replica);
    EXPECT_EQ(io::role_of(array({"sentinel"})), RedisRole::Other);
    EXPECT_EQ(io::role_of(error("ERR")), RedisRole::Unknown);
    EXPECT_TRUE(
        io::is_demoted_error(error("READONLY You can't write against a read only replica.")));
    EXPECT_FALSE(io::is_demoted_error(error("ERR wrong number of arguments")));
    EXPECT_FALSE(io::is_demoted_error(text("READONLY")));
}

TEST_F(SentinelFixture, FindsTheMasterAndUsesItOnceRoleSaysMaster) {
    EXPECT_FALSE(client->connected());
    found("127.0.0.1", "6380", "master");
    EXPECT_TRUE(client->connected());
    EXPECT_EQ(client->master(), "127.0.0.1:6380");
    ASSERT_EQ(links.size(), 1u);
    EXPECT_TRUE(links[0].first);
    EXPECT_EQ(moves, std::vector<std::string>{"->127.0.0.1:6380"});
    // The user's subscription is the master's.
    EXPECT_EQ(master().channel, "smtplb:admin:changes");
    master().publish("x");
    EXPECT_EQ(messages, std::vector<std::string>{"x"});
}

TEST_F(SentinelFixture, AsksTheNextSentinelWhenOneDoesNotKnow) {
    sentinels[1]->go_up();
    sentinels[0]->go_up();
    // Each link-up starts a round; the second waits for the first.
    ASSERT_EQ(sentinels[0]->sent.size(), 0u);
    ASSERT_EQ(sentinels[1]->sent.size(), 1u);
    sentinels[1]->answer(RedisReply{});  // Nil
    ASSERT_EQ(sentinels[0]->sent.size(), 1u);
    sentinels[0]->answer(array({"127.0.0.1", "6381"}));
    ASSERT_EQ(masters.size(), 1u);
    EXPECT_EQ(masters[0].first, "127.0.0.1:6381");
}

TEST_F(SentinelFixture, AReplicaNamedByAStaleSentinelIsNotUsed) {
    found("127.0.0.1", "6380", "slave");
    EXPECT_FALSE(client->connected());
    EXPECT_TRUE(links.empty());
    // The sentinels are asked again.
    ASSERT_EQ(sentinels[0]->sent.size(), 1u);
    sentinels[0]->answer(array({"127.0.0.1", "6381"}));
    EXPECT_EQ(masters.back().first, "127.0.0.1:6381");
    master().go_up();
    master().answer(array({"master"}));
    EXPECT_TRUE(client->connected());
    EXPECT_EQ(moves,
              (std::vector<std::string>{"->127.0.0.1:6380", "127.0.0.1:6380->127.0.0.1:6381"}));
}

TEST_F(SentinelFixture, FollowsSwitchMasterAndAnswersWhatWasInFlight) {
    found("127.0.0.1", "6380", "master");
    std::vector<RedisReply::Kind> replies;
    client->command({"HGETALL", "smtplb:admin"},
                    [&](const RedisReply& r) { replies.push_back(r.kind); });
    ASSERT_EQ(master().sent.size(), 1u);
    sentinels[0]->publish("othermaster 127.0.0.1 7000 127.0.0.1 7001");  // not ours
    EXPECT_EQ(masters.size(), 1u);
    sentinels[0]->publish("mymaster 127.0.0.1 6380 127.0.0.1 6381");
    ASSERT_EQ(masters.size(), 2u);
    EXPECT_FALSE(client->connected());
    ASSERT_EQ(links.size(), 2u);
    EXPECT_FALSE(links[1].first);
    run();  // the old master's request: answered, Disconnected
    EXPECT_EQ(replies, std::vector<RedisReply::Kind>{RedisReply::Kind::Disconnected});
    // The other sentinel's announcement of the same switch changes nothing.
    sentinels[1]->publish("mymaster 127.0.0.1 6380 127.0.0.1 6381");
    EXPECT_EQ(masters.size(), 2u);
    master().go_up();
    master().answer(array({"master"}));
    EXPECT_TRUE(client->connected());
    EXPECT_TRUE(links.back().first);
    EXPECT_EQ(moves.back(), "127.0.0.1:6380->127.0.0.1:6381");
    // A sentinel not yet told of the switch does not take the node back.
    master().go_down("connection reset");
    ASSERT_EQ(sentinels[0]->sent.size(), 1u);
    sentinels[0]->answer(array({"127.0.0.1", "6380"}));
    EXPECT_EQ(masters.size(), 2u);
    EXPECT_EQ(client->master(), "127.0.0.1:6381");
}

TEST_F(SentinelFixture, ReadonlyOrALostLinkAsksTheSentinelsAgain) {
    found("127.0.0.1", "6380", "master");
    std::vector<std::string> replies;
    client->command({"HSET", "k", "f", "v"},
                    [&](const RedisReply& r) { replies.push_back(r.text); });
    master().answer(error("READONLY You can't write against a read only replica."));
    EXPECT_EQ(replies.size(), 1u);  // the caller gets the error as it is
    EXPECT_FALSE(client->connected());
    EXPECT_FALSE(links.back().first);
    ASSERT_EQ(sentinels[0]->sent.size(), 1u);
    sentinels[0]->answer(array({"127.0.0.1", "6380"}));  // still this one: it reconnects
    EXPECT_EQ(masters.size(), 1u);

    master().go_down("connection reset");
    EXPECT_FALSE(links.back().first);
    EXPECT_EQ(links.back().second, "connection reset");
    ASSERT_EQ(sentinels[0]->sent.size(), 1u);
    sentinels[0]->answer(array({"127.0.0.1", "6390"}));
    EXPECT_EQ(masters.back().first, "127.0.0.1:6390");
}

TEST_F(SentinelFixture, CommandsWithoutAMasterAreAnsweredLaterAsDisconnected) {
    int calls = 0;
    client->command({"PING"}, [&](const RedisReply& r) {
        ++calls;
        EXPECT_EQ(r.kind, RedisReply::Kind::Disconnected);
    });
    EXPECT_EQ(calls, 0);  // never from inside the call
    io.poll();
    EXPECT_EQ(calls, 1);
}
