#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <memory>

#include "core/limits/limit_batch.hpp"
#include "core/limits/limit_set.hpp"
#include "mocks/fake_clock.hpp"
#include "mocks/mock_limit_store.hpp"

using smtplb::base::IpAddress;
using smtplb::config::Limit;
using smtplb::config::LimitAction;
using smtplb::config::LimitCounts;
using smtplb::config::LimitKeyPart;
using smtplb::core::AcquireResult;
using smtplb::core::execute_batch;
using smtplb::core::GcraDecision;
using smtplb::core::LimitBatch;
using smtplb::core::LimitBatchResult;
using smtplb::core::LimitEvent;
using smtplb::core::LimitOp;
using smtplb::core::LimitSet;
using smtplb::core::LimitStore;
using smtplb::core::LimitSubject;
using smtplb::core::LimitVerdict;
using smtplb::testing::FakeClock;
using smtplb::testing::MockLimitStore;
using ::testing::_;
using ::testing::Return;
using namespace std::chrono_literals;
using Kind = LimitVerdict::Kind;

namespace {

Limit rate(std::string name, LimitKeyPart part, LimitCounts counts, std::uint64_t quantity,
           std::uint64_t burst) {
    Limit l;
    l.name = std::move(name);
    l.key = {part};
    l.counts = counts;
    l.quantity = quantity;
    l.period = std::chrono::minutes(1);
    l.burst = burst;
    return l;
}

Limit concurrency(std::string name, std::uint32_t max) {
    Limit l;
    l.name = std::move(name);
    l.key = {LimitKeyPart::ClientIp};
    l.counts = LimitCounts::ConcurrentTransactions;
    l.concurrency = max;
    return l;
}

LimitSubject mail_from(const char* sender) {
    LimitSubject s;
    s.listener = "internet";
    s.client = IpAddress::parse("192.0.2.7");
    s.sender = sender;
    return s;
}

struct Shared {
    std::vector<Limit> limits;
    std::shared_ptr<LimitStore> store;  // stands for Redis
    LimitSet set;
    explicit Shared(std::vector<Limit> l)
        : limits(l),
          store(LimitSet::in_process_store(l)),
          set(l, LimitSet::in_process_store(l), /*clustered=*/true) {}
    LimitVerdict check(LimitEvent event, const LimitSubject& subject, FakeClock& clock) {
        auto local = set.check(event, subject, clock.now());
        if (local.kind == Kind::Tempfail) return local;
        auto batch = set.plan(event, subject);
        return set.conclude(event, batch, execute_batch(*store, batch, clock.now()), store);
    }
};

}  // namespace

TEST(LimitBatchPlan, ListsEverySharedLimitOfTheEventAndNoneOfTheOthers) {
    auto local = rate("local", LimitKeyPart::Sender, LimitCounts::Messages, 10, 10);
    local.shared = false;
    Shared s({rate("per-sender", LimitKeyPart::Sender, LimitCounts::Messages, 10, 10),
              concurrency("tx", 2), local,
              rate("rcpts", LimitKeyPart::Sender, LimitCounts::Recipients, 100, 100)});
    auto batch = s.set.plan(LimitEvent::Mail, mail_from("a@example.net"));
    ASSERT_EQ(batch.ops.size(), 3u);                    // the local one is check()'s
    EXPECT_EQ(batch.ops[0].kind, LimitOp::Kind::Peek);  // messages: counted at end of data
    EXPECT_EQ(batch.ops[0].key, "sender=a@example.net");
    EXPECT_EQ(batch.ops[1].kind, LimitOp::Kind::Acquire);
    EXPECT_EQ(batch.ops[1].max, 2u);
    EXPECT_EQ(batch.ops[2].kind, LimitOp::Kind::Peek);
    auto eod = s.set.plan(LimitEvent::EndOfData, mail_from("a@example.net"));
    ASSERT_EQ(eod.ops.size(), 1u);
    EXPECT_EQ(eod.ops[0].kind, LimitOp::Kind::Consume);
    EXPECT_EQ(eod.ops[0].limit, 0u);
    EXPECT_TRUE(s.set.plan(LimitEvent::Connect, mail_from("a@example.net")).empty());
}

TEST(LimitBatchPlan, WithoutClusterNothingIsSharedAndCheckDecidesAll) {
    std::vector<Limit> limits{
        rate("per-sender", LimitKeyPart::Sender, LimitCounts::Messages, 1, 1)};
    LimitSet set(limits, LimitSet::in_process_store(limits));
    EXPECT_FALSE(set.has_shared());
    EXPECT_TRUE(set.plan(LimitEvent::EndOfData, mail_from("a@example.net")).empty());
    FakeClock clock;
    EXPECT_EQ(set.check(LimitEvent::EndOfData, mail_from("a@example.net"), clock.now()).kind,
              Kind::Allow);
    EXPECT_EQ(set.check(LimitEvent::EndOfData, mail_from("a@example.net"), clock.now()).kind,
              Kind::Tempfail);
}

TEST(LimitBatchConclude, ASharedRateRefusesOnceSpentAndComesBackWithTime) {
    Shared s({rate("per-sender", LimitKeyPart::Sender, LimitCounts::Messages, 2, 2)});
    FakeClock clock;
    auto subject = mail_from("a@example.net");
    EXPECT_EQ(s.check(LimitEvent::EndOfData, subject, clock).kind, Kind::Allow);
    EXPECT_EQ(s.check(LimitEvent::EndOfData, subject, clock).kind, Kind::Allow);
    auto refused = s.check(LimitEvent::EndOfData, subject, clock);
    EXPECT_EQ(refused.kind, Kind::Tempfail);
    EXPECT_EQ(refused.limit, "per-sender");
    EXPECT_EQ(refused.key, "sender=a@example.net");
    EXPECT_EQ(refused.reply.code, 451);
    EXPECT_EQ(s.set.hits(0).tempfail, 1u);
    // Mail's early look refuses too, and counts nothing.
    EXPECT_EQ(s.check(LimitEvent::Mail, subject, clock).kind, Kind::Tempfail);
    clock.advance(30s);  // one unit back
    EXPECT_EQ(s.check(LimitEvent::Mail, subject, clock).kind, Kind::Allow);
    EXPECT_EQ(s.check(LimitEvent::EndOfData, subject, clock).kind, Kind::Allow);
    EXPECT_EQ(s.check(LimitEvent::EndOfData, subject, clock).kind, Kind::Tempfail);
}

TEST(LimitBatchConclude, ConcurrencyLeasesAreHeldUntilTheVerdictsLeasesGo) {
    Shared s({concurrency("tx", 1)});
    FakeClock clock;
    auto first = s.check(LimitEvent::Mail, mail_from("a@example.net"), clock);
    ASSERT_EQ(first.kind, Kind::Allow);
    ASSERT_EQ(first.leases.size(), 1u);
    EXPECT_EQ(s.check(LimitEvent::Mail, mail_from("b@example.net"), clock).kind, Kind::Tempfail);
    first.leases.clear();
    EXPECT_EQ(s.check(LimitEvent::Mail, mail_from("b@example.net"), clock).kind, Kind::Allow);
}

TEST(LimitBatchConclude, ADelayedSharedRateHoldsTheReply) {
    auto l = rate("tarpit", LimitKeyPart::Sender, LimitCounts::Messages, 60, 1);
    l.action = LimitAction::Delay;
    l.delay = 5s;
    Shared s({l});
    FakeClock clock;
    auto subject = mail_from("a@example.net");
    EXPECT_EQ(s.check(LimitEvent::EndOfData, subject, clock).kind, Kind::Allow);
    auto held = s.check(LimitEvent::EndOfData, subject, clock);
    EXPECT_EQ(held.kind, Kind::Delay);
    EXPECT_EQ(held.hold, 1s);
    EXPECT_EQ(held.limit, "tarpit");
    EXPECT_EQ(s.set.hits(0).delay, 1u);
}

TEST(LimitBatchExecute, ARefusalRecordsNothing) {
    // Two rates and a concurrency in one batch; the third operation refuses:
    // what the first two took is given back.
    auto store = std::make_shared<MockLimitStore>();
    std::vector<Limit> limits{rate("a", LimitKeyPart::Sender, LimitCounts::Messages, 10, 10),
                              concurrency("tx", 1),
                              rate("b", LimitKeyPart::Sender, LimitCounts::Messages, 10, 10)};
    LimitSet set(limits, store, true);
    auto batch = set.plan(LimitEvent::Mail, mail_from("a@example.net"));
    for (auto& op : batch.ops)  // as at end of data: counted
        if (op.kind == LimitOp::Kind::Peek) op.kind = LimitOp::Kind::Consume;
    FakeClock clock;
    GcraDecision pass;
    pass.allowed = true;
    GcraDecision refuse;
    refuse.retry_after = 7s;
    EXPECT_CALL(*store, rate(0, _, _, _, 1, _)).WillOnce(Return(pass));
    EXPECT_CALL(*store, acquire(1, _, 1)).WillOnce(Return(AcquireResult::Acquired));
    EXPECT_CALL(*store, rate(2, _, _, _, 1, _)).WillOnce(Return(refuse));
    EXPECT_CALL(*store, refund_rate(0, _, _, _, 1));
    EXPECT_CALL(*store, release(1, _));
    auto result = execute_batch(*store, batch, clock.now());
    EXPECT_EQ(result.refused, 2u);
    EXPECT_EQ(result.retry_after, 7s);
    auto verdict = set.conclude(LimitEvent::EndOfData, batch, result, store);
    EXPECT_EQ(verdict.kind, Kind::Tempfail);
    EXPECT_EQ(verdict.limit, "b");
    EXPECT_TRUE(verdict.leases.empty());
    EXPECT_NE(verdict.reply.summary().find("try again in 7 seconds"), std::string::npos);
}

TEST(LimitBatchLocalShare, RatesAndConcurrenciesAreDividedByTheNodesRoundedUp) {
    auto local = rate("local", LimitKeyPart::Sender, LimitCounts::Messages, 9, 9);
    local.shared = false;
    std::vector<Limit> limits{
        rate("per-sender", LimitKeyPart::Sender, LimitCounts::Messages, 10, 4),
        concurrency("tx", 5), local};
    LimitSet set(limits, LimitSet::in_process_store(limits), true);
    auto share = set.local_share(3);
    ASSERT_EQ(share.size(), 2u);
    EXPECT_EQ(share[0].quantity, 4u);
    EXPECT_EQ(share[0].burst, 2u);
    EXPECT_EQ(share[1].concurrency, 2u);
    EXPECT_EQ(set.local_share(100)[0].quantity, 1u);  // never down to nothing
    EXPECT_EQ(set.local_share(0)[0].quantity, 10u);
}
