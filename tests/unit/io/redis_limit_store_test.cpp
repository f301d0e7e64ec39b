#include <gtest/gtest.h>

#include <memory>
#include <thread>
#include <vector>

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
    // A member, not a test's local: a failed ASSERT leaves the test body
    // while batches are queued, and stop() in TearDown still answers them.
    std::vector<std::optional<LimitBatchResult>> results;

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
        rate.extra = 7;
        b.ops.push_back(rate);
        LimitOp place;
        place.kind = LimitOp::Kind::Acquire;
        place.limit = 1;
        place.key = "client_ip=192.0.2.1";
        place.max = 3;
        b.ops.push_back(place);
        return b;
    }
    // Runs every posted call, however slow the machine (a time-bounded run
    // can end between them and split what should go as one script), then
    // lets the least interval between calls pass and runs what fell due:
    // far short of the delay a lone release waits.
    void settle() {
        io.restart();
        io.poll();
        std::this_thread::sleep_for(RedisLimitStore::kMinCallInterval * 2);
        io.restart();
        io.poll();
        io.restart();
    }
    void execute() {
        store->execute({"per-sender", "tx"}, batch(),
                       [this](std::optional<LimitBatchResult> r, RedisReply::Kind k) {
                           result = std::move(r);
                           kind = k;
                           ++answers;
                       });
        settle();
    }
};

}  // namespace

TEST_F(RedisLimitStoreTest, OneScriptForTheWholeEventWithEveryKey) {
    execute();
    ASSERT_EQ(redis->sent.size(), 1u);
    const auto& args = redis->sent.front().args;
    ASSERT_EQ(args.size(), 21u);
    EXPECT_EQ(args[0], "EVALSHA");
    EXPECT_EQ(args[1], "sha1");
    EXPECT_EQ(args[2], "2");  // two keys
    EXPECT_EQ(args[3], "lb:limit:per-sender:sender=a@example.net");
    EXPECT_EQ(args[4], "lb:limit:tx:client_ip=192.0.2.1");
    EXPECT_EQ(args[5], "15000");
    EXPECT_EQ(args[6], "1");  // one batch
    EXPECT_EQ(args[7], "0");  // no lease given back
    EXPECT_EQ(args[8], "2");  // its operations
    EXPECT_EQ(args[9], "c");
    EXPECT_EQ(args[14], "7");  // the units asked for ahead
    EXPECT_EQ(args[15], "a");
    EXPECT_EQ(args[16], "3");
    EXPECT_EQ(args[17], "mx1:1");  // NODE:LEASE-ID
    redis->answer(integers({0, 250000, 5, 0, 0}));
    ASSERT_TRUE(result);
    EXPECT_EQ(result->refused, 2u);
    EXPECT_EQ(result->ops[0].wait, 250ms);
    EXPECT_EQ(result->ops[0].granted, 5u);
    EXPECT_EQ(result->ops[1].lease, "mx1:1");
    EXPECT_EQ(store->leases_held(), 1u);
    // Giving the place back rides with the next script...
    store->release(1, "mx1:1");
    settle();
    EXPECT_EQ(store->leases_held(), 0u);
    EXPECT_TRUE(redis->sent.empty());
    execute();
    ASSERT_EQ(redis->sent.size(), 1u);
    const auto& next = redis->sent.front().args;
    EXPECT_EQ(next[2], "3");  // the released lease's key first
    EXPECT_EQ(next[3], "lb:limit:tx:client_ip=192.0.2.1");
    EXPECT_EQ(next[6], "15000");
    EXPECT_EQ(next[7], "1");
    EXPECT_EQ(next[8], "1");  // one lease given back
    EXPECT_EQ(next[9], "mx1:1");
    EXPECT_EQ(next[10], "2");
    EXPECT_EQ(store->round_trips(), 3u);  // SCRIPT LOAD and two scripts, no ZREM
    redis->answer(integers({0, 0, 0, 0, 0}));
    EXPECT_EQ(answers, 2);
}

TEST_F(RedisLimitStoreTest, ALeaseGivenBackWhileNothingElseGoesIsSentAfterAShortDelay) {
    execute();
    redis->answer(integers({0, 0, 0, 0, 0}));
    store->release(1, "mx1:1");
    settle();
    EXPECT_TRUE(redis->sent.empty());
    io.run_for(RedisLimitStore::kReleaseDelay * 3);
    ASSERT_EQ(redis->sent.size(), 1u);
    EXPECT_EQ(redis->sent.front().args,
              (std::vector<std::string>{"EVALSHA", "sha1", "1", "lb:limit:tx:client_ip=192.0.2.1",
                                        "15000", "0", "1", "mx1:1"}));
}

TEST_F(RedisLimitStoreTest, EventsArrivingWhileAScriptIsInFlightGoTogetherInTheNext) {
    auto run = [&] {
        store->execute({"per-sender", "tx"}, batch(),
                       [&](std::optional<LimitBatchResult> r, RedisReply::Kind) {
                           results.push_back(std::move(r));
                       });
    };
    run();
    settle();
    ASSERT_EQ(redis->sent.size(), 1u);
    run();
    run();
    run();
    settle();
    ASSERT_EQ(redis->sent.size(), 1u);  // one in flight at a time
    redis->answer(integers({0, 0, 0, 0, 0}));
    ASSERT_EQ(results.size(), 1u);
    settle();
    ASSERT_EQ(redis->sent.size(), 1u);
    const auto& args = redis->sent.front().args;
    EXPECT_EQ(args[2], "6");  // three batches of two keys
    EXPECT_EQ(args[10], "3");
    EXPECT_EQ(args[11], "0");
    // The first passes, the second is refused at its rate (nothing
    // recorded), the third passes: each batch gets its own answer.
    redis->answer(integers({0, 0, 0, 0, 0, 1, 2000000, 0, 0, 0, 0, 0}));
    ASSERT_EQ(results.size(), 4u);
    ASSERT_TRUE(results[1] && results[2] && results[3]);
    EXPECT_EQ(results[1]->refused, 2u);
    EXPECT_EQ(results[2]->refused, 0u);
    EXPECT_EQ(results[2]->retry_after, 2s);
    EXPECT_EQ(results[3]->refused, 2u);
    EXPECT_EQ(results[3]->ops[1].lease, "mx1:4");
    EXPECT_EQ(store->leases_held(), 3u);  // mx1:1, mx1:2, mx1:4
    EXPECT_EQ(store->round_trips(), 3u);
}

TEST_F(RedisLimitStoreTest, AnAnswerThatDoesNotFitTheBatchesIsNoResultForAny) {
    for (int i = 0; i < 2; ++i)
        store->execute({"per-sender", "tx"}, batch(),
                       [&](std::optional<LimitBatchResult> r, RedisReply::Kind) {
                           results.push_back(std::move(r));
                       });
    settle();
    redis->answer(integers({0, 0, 0, 0, 0}));
    settle();
    redis->answer(integers({0, 0, 0, 0, 0, 7}));  // more than the batch's answer
    ASSERT_EQ(results.size(), 2u);
    EXPECT_TRUE(results[0]);
    EXPECT_FALSE(results[1]);
    EXPECT_EQ(store->leases_held(), 1u);
    // Nor one cut short.
    store->execute({"per-sender", "tx"}, batch(),
                   [&](std::optional<LimitBatchResult> r, RedisReply::Kind) {
                       results.push_back(std::move(r));
                   });
    settle();
    redis->answer(integers({0, 0}));
    ASSERT_EQ(results.size(), 3u);
    EXPECT_FALSE(results[2]);
}

TEST_F(RedisLimitStoreTest, StoppingAnswersWhatWaitsSoNoSessionHangs) {
    execute();
    execute();
    EXPECT_EQ(answers, 0);
    store->stop();
    EXPECT_EQ(answers, 2);
    EXPECT_FALSE(result);
    EXPECT_EQ(kind, RedisReply::Kind::Disconnected);
}

TEST_F(RedisLimitStoreTest, PlacesGrantedAheadAreHandedOutHereAndGivenBackWhenDone) {
    auto acquire = [&] {
        LimitBatch b;
        LimitOp place;
        place.kind = LimitOp::Kind::Acquire;
        place.limit = 1;
        place.key = "client_ip=192.0.2.1";
        place.max = 100;
        place.extra = 5;  // the share SharedLimits allows
        b.ops.push_back(place);
        store->execute({"per-sender", "tx"}, b,
                       [&](std::optional<LimitBatchResult> r, RedisReply::Kind) {
                           results.push_back(std::move(r));
                       });
        settle();
    };
    acquire();
    ASSERT_EQ(redis->sent.size(), 1u);
    EXPECT_EQ(redis->sent.front().args[11], "0");  // nothing held here yet: nothing ahead
    redis->answer(integers({0, 0, 0}));
    acquire();
    ASSERT_EQ(redis->sent.size(), 1u);
    EXPECT_EQ(redis->sent.front().args[11], "1");  // as many as held here, within the share
    redis->answer(integers({0, 0, 1}));            // one more granted: a pool of two
    ASSERT_EQ(results.size(), 2u);
    EXPECT_EQ(results[0]->ops[0].lease, "mx1:1");
    EXPECT_EQ(results[1]->ops[0].lease, "~mx1:2*2");
    acquire();  // from the pool: no round trip
    EXPECT_TRUE(redis->sent.empty());
    ASSERT_EQ(results.size(), 3u);
    ASSERT_TRUE(results[2]);
    EXPECT_EQ(results[2]->refused, 1u);
    EXPECT_EQ(results[2]->ops[0].lease, "~mx1:2*2");
    acquire();  // the pool is full: Redis again
    ASSERT_EQ(redis->sent.size(), 1u);
    redis->answer(text(RedisReply::Kind::Timeout, "deadline"));
    EXPECT_FALSE(results[3]);
    // The pool takes no one new after PlacePools::kTaking; its last holder
    // gone, it is given back (one ZREM in the grant set, inside a script).
    io.restart();
    io.run_for(smtplb::io::PlacePools::kTaking + 50ms);
    store->release(1, "~mx1:2*2");
    settle();
    EXPECT_TRUE(redis->sent.empty());
    store->release(1, "~mx1:2*2");
    io.restart();
    io.run_for(RedisLimitStore::kReleaseDelay * 3);
    ASSERT_EQ(redis->sent.size(), 1u);
    EXPECT_EQ(redis->sent.front().args,
              (std::vector<std::string>{"EVALSHA", "sha1", "1", "lb:limit:tx:client_ip=192.0.2.1:g",
                                        "15000", "0", "1", "mx1:2*2"}));
    EXPECT_EQ(store->leases_held(), 1u);  // mx1:1
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
    redis->answer(integers({0, 0, 0, 0, 0}));
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
