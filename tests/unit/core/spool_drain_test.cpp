// The spool drains when its pool returns (issue 25): a message deferred
// because its pool had nothing to offer is due as soon as a backend comes
// back; one deferred for its own sake keeps its backoff.
#include <gtest/gtest.h>

#include "core/health.hpp"
#include "core/spool_queue.hpp"
#include "mocks/fake_clock.hpp"
#include "mocks/scripted_random.hpp"

namespace smtplb::core {
namespace {

using Wait = SpoolQueue::Wait;
using Cause = SpoolQueue::DrainCause;
using std::chrono::minutes;
using std::chrono::seconds;

class SpoolDrain : public ::testing::Test {
  protected:
    testing::FakeClock clock;
    testing::ScriptedRandom random{{0}};
    // Backoff from 10 minutes (8 with this random's jitter): anything
    // taken sooner was drained.
    SpoolQueue q{clock, random, {minutes(10), minutes(30), std::chrono::hours(120)}};

    // Adds a message of `pool` and takes it, as the deliverer does.
    void attempt(const std::string& id, const std::string& pool) {
        q.add(id, 1, 10, false, pool, "client-" + id);
        ASSERT_EQ(q.take_due(1), std::vector<std::string>{id});
    }
};

TEST_F(SpoolDrain, AReturningBackendMakesThePoolsUnavailableMessagesDueAtOnce) {
    attempt("0000000000000001", "hubs");
    q.deferred("0000000000000001", "451 4.4.1 no mail server", Wait::PoolUnavailable);
    attempt("0000000000000002", "hubs");
    q.deferred("0000000000000002", "450 4.2.0 Greylisted", Wait::Backoff);
    attempt("0000000000000003", "other");
    q.deferred("0000000000000003", "451 4.4.1 no mail server", Wait::PoolUnavailable);
    clock.advance(seconds(5));
    EXPECT_TRUE(q.take_due(10).empty());  // all wait

    EXPECT_EQ(q.drain("hubs", Cause::BackendReturned), 1u);
    // Only hubs' unavailable one: the greylisted one keeps its backoff, and
    // another pool's messages wait for that pool.
    EXPECT_EQ(q.take_due(10), std::vector<std::string>{"0000000000000001"});
    clock.advance(minutes(7));
    EXPECT_TRUE(q.take_due(10).empty());
    clock.advance(minutes(1));  // the backoff is over
    EXPECT_EQ(q.take_due(10), (std::vector<std::string>{"0000000000000002", "0000000000000003"}));
}

TEST_F(SpoolDrain, DrainedMessagesGoOutAtMostConcurrencyAtATime) {
    for (int i = 1; i <= 50; ++i) {
        char id[17];
        std::snprintf(id, sizeof id, "%016d", i);
        attempt(id, "hubs");
        q.deferred(id, "451 4.4.1 no mail server", Wait::PoolUnavailable);
    }
    EXPECT_EQ(q.drain("hubs", Cause::BackendReturned), 50u);
    // The deliverer asks for what its concurrency leaves room for: oldest first.
    auto first = q.take_due(20);
    ASSERT_EQ(first.size(), 20u);
    EXPECT_EQ(first.front(), "0000000000000001");
    EXPECT_EQ(q.busy(), 20u);
    for (const auto& id : first)
        q.remove(id);  // delivered
    EXPECT_EQ(q.take_due(20).size(), 20u);
    EXPECT_EQ(q.busy(), 20u);
    EXPECT_TRUE(q.take_due(0).empty());  // 20 in flight: the deliverer asks for none
    EXPECT_EQ(q.size(), 30u);
}

TEST_F(SpoolDrain, AFreedSlotEndsOnlyTheWaitForSlots) {
    attempt("0000000000000001", "hubs");
    q.deferred("0000000000000001", "451 4.4.1 at max_connections", Wait::BackendLimits);
    attempt("0000000000000002", "hubs");
    q.deferred("0000000000000002", "451 4.4.1 no mail server", Wait::PoolUnavailable);
    EXPECT_TRUE(q.waits_for_slots("hubs"));
    EXPECT_FALSE(q.waits_for_slots("other"));
    EXPECT_EQ(q.drain("other", Cause::SlotFreed), 0u);
    EXPECT_EQ(q.drain("hubs", Cause::SlotFreed), 1u);
    EXPECT_FALSE(q.waits_for_slots("hubs"));
    EXPECT_EQ(q.take_due(10), std::vector<std::string>{"0000000000000001"});
    // A backend that returns ends both kinds of wait.
    q.deferred("0000000000000001", "451 4.4.1 at max_connections", Wait::BackendLimits);
    EXPECT_EQ(q.drain("hubs", Cause::BackendReturned), 2u);
    EXPECT_EQ(q.take_due(10).size(), 2u);
}

TEST_F(SpoolDrain, AnAttemptThatOverlappedADrainIsDueAgainNotBackedOff) {
    // Taken before the backend came back, failed on what it knew then.
    attempt("0000000000000001", "hubs");
    EXPECT_EQ(q.drain("hubs", Cause::BackendReturned), 0u);
    q.deferred("0000000000000001", "451 4.4.1 no mail server", Wait::PoolUnavailable);
    EXPECT_EQ(q.take_due(10), std::vector<std::string>{"0000000000000001"});
    // Without a drain in between, the backoff applies (the pool still has
    // nothing to offer).
    q.deferred("0000000000000001", "451 4.4.1 no mail server", Wait::PoolUnavailable);
    EXPECT_TRUE(q.take_due(10).empty());
    // A message deferred for its own sake keeps its backoff either way.
    attempt("0000000000000002", "other");
    q.drain("other", Cause::BackendReturned);
    q.deferred("0000000000000002", "450 4.2.0 Greylisted", Wait::Backoff);
    EXPECT_TRUE(q.take_due(10).empty());
}

TEST_F(SpoolDrain, HeldAndRecoveredMessagesAreLeftAsTheyAre) {
    attempt("0000000000000001", "hubs");
    q.deferred("0000000000000001", "451 4.4.1 no mail server", Wait::PoolUnavailable);
    ASSERT_TRUE(q.hold("0000000000000001"));
    // Recovered from disk with a backoff kept in the file: pool not known yet.
    q.add("0000000000000002", 2, 10);
    q.postpone("0000000000000002", minutes(20));
    EXPECT_EQ(q.drain("hubs", Cause::BackendReturned), 0u);
    EXPECT_TRUE(q.take_due(10).empty());
    EXPECT_EQ(q.held(), 1u);
}

TEST(SpoolDrainTrigger, BackendsComingBackIntoServiceEndTheWait) {
    auto event = [](const char* from, const char* to, const char* source) {
        return HealthEvent{from, to, source, "", "", 1};
    };
    EXPECT_TRUE(returns_to_service(event("down", "up", "probe")));
    EXPECT_TRUE(returns_to_service(event("busy", "up", "live")));
    EXPECT_TRUE(returns_to_service(event("maintenance", "enabled", "admin")));
    EXPECT_TRUE(returns_to_service(event("drain", "enabled", "admin")));
    EXPECT_FALSE(returns_to_service(event("up", "down", "probe")));
    EXPECT_FALSE(returns_to_service(event("up", "busy", "live")));
    EXPECT_FALSE(returns_to_service(event("enabled", "drain", "admin")));
}

}  // namespace
}  // namespace smtplb::core
