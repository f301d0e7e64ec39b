#include <gtest/gtest.h>

#include <memory>

#include "io/cluster/redis_limit_store.hpp"
#include "mocks/mock_redis_client.hpp"

using smtplb::core::Gcra;
using smtplb::core::LimitBatch;
using smtplb::core::LimitBatchResult;
using smtplb::core::LimitOp;
using smtplb::io::RedisLimitSettings;
using smtplb::io::RedisLimitStore;
using smtplb::io::RedisReply;
using smtplb::testing::MockRedisClient;
using namespace std::chrono_literals;

namespace {

RedisReply integers(std::vector<long long> values) {
    RedisReply r;
    r.kind = RedisReply::Kind::Array;
    for (auto v : values) {
        RedisReply e;
        e.kind = RedisReply::Kind::Integer;
        e.integer = v;
        r.elements.push_back(e);
    }
    return r;
}

RedisReply text(RedisReply::Kind kind, std::string t) {
    RedisReply r;
    r.kind = kind;
    r.text = std::move(t);
    return r;
}

struct RedisLimitStoreTest : ::testing::Test {
    smtplb::io::asio::io_context io;
    MockRedisClient* redis = nullptr;
    std::shared_ptr<RedisLimitStore> store;
    Gcra gcra{60, std::chrono::minutes(1), 10};
    std::optional<LimitBatchResult> result;
    RedisReply::Kind kind = RedisReply::Kind::Nil;
    int answers = 0;

    void SetUp() override {
        auto client = std::make_unique<MockRedisClient>();
        redis = client.get();
        store = std::make_shared<RedisLimitStore>(io.get_executor(), std::move(client),
                                                  RedisLimitSettings{"lb", "mx1", 15000ms});
        store->start();
        redis->go_up();
        ASSERT_EQ(redis->sent.size(), 1u);
        EXPECT_EQ(redis->answer(text(RedisReply::Kind::String, "sha1"))[1], "LOAD");
    }
    void TearDown() override { store->stop(); }

    LimitBatch batch() {
        LimitBatch b;
        LimitOp rate;
        rate.limit = 0;
        rate.key = "sender=a@example.net";
        rate.gcra = &gcra;
        b.ops.push_back(rate);
        LimitOp place;
        place.kind = LimitOp::Kind::Acquire;
        place.limit = 1;
        place.key = "client_ip=192.0.2.1";
        place.max = 3;
        b.ops.push_back(place);
        return b;
    }
    void execute() {
        store->execute({"per-sender", "tx"}, batch(),
                       [this](std::optional<LimitBatchResult> r, RedisReply::Kind k) {
                           result = std::move(r);
                           kind = k;
                           ++answers;
                       });
        io.poll();
        io.restart();
    }
};

}  // namespace

TEST_F(RedisLimitStoreTest, OneScriptForTheWholeEventWithEveryKey) {
    execute();
    ASSERT_EQ(redis->sent.size(), 1u);
    const auto& args = redis->sent.front().args;
    ASSERT_GE(args.size(), 16u);
    EXPECT_EQ(args[0], "EVALSHA");
    EXPECT_EQ(args[1], "sha1");
    EXPECT_EQ(args[2], "2");  // two keys
    EXPECT_EQ(args[3], "lb:limit:per-sender:sender=a@example.net");
    EXPECT_EQ(args[4], "lb:limit:tx:client_ip=192.0.2.1");
    EXPECT_EQ(args[5], "15000");
    EXPECT_EQ(args[6], "c");
    EXPECT_EQ(args[11], "a");
    EXPECT_EQ(args[12], "3");
    EXPECT_EQ(args[13], "mx1:1");  // NODE:LEASE-ID
    redis->answer(integers({0, 250000, 0}));
    ASSERT_TRUE(result);
    EXPECT_EQ(result->refused, 2u);
    EXPECT_EQ(result->ops[0].wait, 250ms);
    EXPECT_EQ(result->ops[1].lease, "mx1:1");
    EXPECT_EQ(store->leases_held(), 1u);
    // Giving the place back: a ZREM, not waited for.
    store->release(1, "mx1:1");
    io.poll();
    ASSERT_EQ(redis->sent.size(), 1u);
    EXPECT_EQ(redis->sent.front().args,
              (std::vector<std::string>{"ZREM", "lb:limit:tx:client_ip=192.0.2.1", "mx1:1"}));
    EXPECT_EQ(store->leases_held(), 0u);
}

TEST_F(RedisLimitStoreTest, ARefusalNamesTheOperationAndItsWait) {
    execute();
    redis->answer(integers({1, 3000000}));
    ASSERT_TRUE(result);
    EXPECT_EQ(result->refused, 0u);
    EXPECT_EQ(result->retry_after, 3s);
    EXPECT_EQ(store->leases_held(), 0u);
    execute();
    redis->answer(integers({2, -1}));
    EXPECT_EQ(result->refused, 1u);
    EXPECT_EQ(result->retry_after, Gcra::kNever);
}

TEST_F(RedisLimitStoreTest, NoscriptLoadsTheScriptAgainAndTheEventStillGetsItsAnswer) {
    execute();
    redis->answer(text(RedisReply::Kind::Error, "NOSCRIPT No matching script."));
    EXPECT_EQ(answers, 0);
    ASSERT_EQ(redis->sent.size(), 2u);
    EXPECT_EQ(redis->answer(text(RedisReply::Kind::String, "sha2"))[1], "LOAD");
    EXPECT_EQ(redis->sent.front().args[0], "EVAL");  // loads it too
    redis->answer(integers({0, 0, 0}));
    EXPECT_EQ(answers, 1);
    ASSERT_TRUE(result);
    EXPECT_EQ(result->refused, 2u);
}

TEST_F(RedisLimitStoreTest, NoAnswerInTimeOrNoRedisIsNoResult) {
    execute();
    redis->answer(text(RedisReply::Kind::Timeout, "deadline"));
    EXPECT_FALSE(result);
    EXPECT_EQ(kind, RedisReply::Kind::Timeout);
    redis->go_down("gone");
    execute();
    EXPECT_FALSE(result);
    EXPECT_EQ(kind, RedisReply::Kind::Disconnected);
    EXPECT_EQ(answers, 2);
}
