#include <gtest/gtest.h>

#include "core/pool.hpp"
#include "core/shaping.hpp"
#include "mocks/fake_clock.hpp"
#include "mocks/scripted_random.hpp"

using namespace smtplb;
using namespace std::chrono_literals;

namespace {

config::DestinationLimit rule(std::string domain, std::uint64_t messages, std::uint64_t burst,
                              std::uint32_t concurrency = 0) {
    config::DestinationLimit r;
    r.domain = std::move(domain);
    r.messages = messages;
    r.period = 1min;
    r.burst = burst;
    r.concurrent_transactions = concurrency;
    return r;
}

config::Pool pool_config(std::size_t backends, std::vector<config::DestinationLimit> rules) {
    config::Pool p;
    p.name = "out";
    p.health.enabled = false;
    for (std::size_t i = 0; i < backends; ++i) {
        config::Backend b;
        b.name = "ip" + std::to_string(i + 1);
        p.backends.push_back(b);
    }
    p.destination_limits = std::move(rules);
    return p;
}

const auto kClient = base::IpAddress::parse("192.0.2.10");
const std::vector<std::string> kGmail{"gmail.com"};

struct PoolFixture : ::testing::Test {
    smtplb::testing::FakeClock clock;
    smtplb::testing::ScriptedRandom random{{0}};

    // A pick for `domains`, its hold filled; the block in `blocked`.
    std::optional<std::size_t> pick(core::Pool& pool, const std::vector<std::string>& domains,
                                    core::ShapingHold& hold,
                                    std::optional<core::ShapingBlock>* blocked = nullptr) {
        core::Pool::ShapingPick shaping{&domains, &hold, {}};
        auto chosen = pool.pick(kClient, {}, {}, &shaping);
        if (blocked) *blocked = shaping.blocked;
        return chosen;
    }
};

}  // namespace

TEST(Shaping, ADomainsOwnRuleWinsOverTheWildcard) {
    core::Shaping s({rule("*", 10, 10), rule("gmail.com", 2, 2)});
    EXPECT_EQ(s.rule_for("gmail.com"), 1u);
    EXPECT_EQ(s.rule_for("example.org"), 0u);
    core::Shaping only({rule("gmail.com", 2, 2)});
    EXPECT_EQ(only.rule_for("example.org"), std::nullopt);
}

TEST(Shaping, AMessageCountsOnlyWhenDelivered) {
    smtplb::testing::FakeClock clock;
    auto s = std::make_shared<core::Shaping>(std::vector{rule("gmail.com", 1, 1)});
    core::ShapingHold hold;
    ASSERT_FALSE(s->reserve("ip1", 0, kGmail, clock.now(), hold));
    EXPECT_TRUE(s->blocked("ip1", kGmail, clock.now()));  // reserved meanwhile
    hold.settle({}, clock.now());                         // not delivered: given back
    EXPECT_FALSE(s->blocked("ip1", kGmail, clock.now()));
    ASSERT_FALSE(s->reserve("ip1", 0, kGmail, clock.now(), hold));
    hold.settle(kGmail, clock.now());  // delivered: it stays counted
    auto block = s->blocked("ip1", kGmail, clock.now());
    ASSERT_TRUE(block);
    EXPECT_FALSE(block->concurrency);
    EXPECT_EQ(block->retry_after, 1min);
    EXPECT_FALSE(s->blocked("ip2", kGmail, clock.now()));  // another sending IP
    clock.advance(1min);
    EXPECT_FALSE(s->blocked("ip1", kGmail, clock.now()));
}

TEST(Shaping, AReservationTakesEveryDomainOrNone) {
    smtplb::testing::FakeClock clock;
    auto s = std::make_shared<core::Shaping>(
        std::vector{rule("gmail.com", 5, 5), rule("yahoo.com", 1, 1, 1)});
    core::ShapingHold first, second;
    ASSERT_FALSE(s->reserve("ip1", 0, {"yahoo.com"}, clock.now(), first));
    auto block = s->reserve("ip1", 0, {"gmail.com", "yahoo.com"}, clock.now(), second);
    ASSERT_TRUE(block);
    EXPECT_EQ(block->domain, "yahoo.com");
    EXPECT_TRUE(block->concurrency);
    EXPECT_TRUE(second.empty());
    // gmail.com's message was given back: all five are there.
    auto peek = s->store().peek_rate(0, "ip1|gmail.com", core::Gcra(5, 1min, 5), clock.now(), 5);
    EXPECT_TRUE(peek.allowed);
    first.settle({}, clock.now());
    EXPECT_EQ(s->store().in_use(1, "ip1|yahoo.com"), 0u);
}

TEST(Shaping, TheWildcardCountsEachDomainSeparatelyWithinMaxKeys) {
    smtplb::testing::FakeClock clock;
    auto wildcard = rule("*", 1, 1);
    wildcard.max_keys = 2;
    auto s = std::make_shared<core::Shaping>(std::vector{wildcard});
    for (const char* d : {"a.example", "b.example"}) {
        core::ShapingHold hold;
        ASSERT_FALSE(s->reserve("ip1", 0, {d}, clock.now(), hold));
        hold.settle({d}, clock.now());
    }
    EXPECT_TRUE(s->blocked("ip1", {"a.example"}, clock.now()));
    EXPECT_TRUE(s->blocked("ip1", {"b.example"}, clock.now()));
    EXPECT_FALSE(s->blocked("ip1", {"c.example"}, clock.now()));
    core::ShapingHold hold;
    ASSERT_FALSE(s->reserve("ip1", 0, {"c.example"}, clock.now(), hold));
    hold.settle({"c.example"}, clock.now());
    EXPECT_EQ(s->store().stats(0).tracked_keys, 2u);  // bounded: the oldest went
    EXPECT_EQ(s->store().stats(0).evictions, 1u);
}

TEST(Shaping, RepliesNameTheLimitAndTheDomain) {
    core::Shaping s({rule("gmail.com", 2, 2)});
    auto refusal = s.refusal({"gmail.com", 0, false, 25s}, "out");
    EXPECT_EQ(refusal.summary(),
              "451 4.7.1 Too many messages to gmail.com now (destination limit \"gmail.com\" of "
              "pool \"out\"), try again in 25 seconds");
    EXPECT_EQ(s.refusal({"gmail.com", 0, true, {}}, "out").summary(),
              "451 4.7.1 Too many concurrent transactions to gmail.com now (destination limit "
              "\"gmail.com\" of pool \"out\"), try again later");
    EXPECT_EQ(s.separate({"gmail.com", 0, true, {}}, "out").summary(),
              "452 4.5.3 Too many recipients: send those at gmail.com in another transaction "
              "(destination limit \"gmail.com\" of pool \"out\")");
}

TEST_F(PoolFixture, ABackendAtItsLimitIsPassedOverUntilEveryOneIs) {
    core::Pool pool(pool_config(2, {rule("gmail.com", 2, 2)}), clock, random);
    std::vector<std::size_t> chosen;
    for (int i = 0; i < 4; ++i) {
        core::ShapingHold hold;
        auto b = pick(pool, kGmail, hold);
        ASSERT_TRUE(b);
        chosen.push_back(*b);
        pool.settle_shaping(hold, kGmail);
    }
    std::sort(chosen.begin(), chosen.end());
    EXPECT_EQ(chosen, (std::vector<std::size_t>{0, 0, 1, 1}));
    core::ShapingHold hold;
    std::optional<core::ShapingBlock> blocked;
    EXPECT_FALSE(pick(pool, kGmail, hold, &blocked));
    ASSERT_TRUE(blocked);
    EXPECT_EQ(blocked->domain, "gmail.com");
    EXPECT_EQ(pool.backend(0).counters.shaping_skips + pool.backend(1).counters.shaping_skips,
              1u + 2u);  // one passed over at the fourth pick, both at the fifth
    // Another domain is not affected.
    EXPECT_TRUE(pick(pool, {"example.org"}, hold));
    // Nor a pick that does not shape (a tcp listener, an AUTH check).
    EXPECT_TRUE(pool.pick(kClient, {}));
}

TEST_F(PoolFixture, ConcurrencyMovesTheSecondTransactionToAnotherBackend) {
    core::Pool pool(pool_config(2, {rule("gmail.com", 0, 0, 1)}), clock, random);
    core::ShapingHold first, second, third;
    auto a = pick(pool, kGmail, first);
    auto b = pick(pool, kGmail, second);
    ASSERT_TRUE(a && b);
    EXPECT_NE(*a, *b);
    std::optional<core::ShapingBlock> blocked;
    EXPECT_FALSE(pick(pool, kGmail, third, &blocked));
    ASSERT_TRUE(blocked);
    EXPECT_TRUE(blocked->concurrency);
    pool.settle_shaping(first);
    auto c = pick(pool, kGmail, third);
    ASSERT_TRUE(c);
    EXPECT_EQ(*c, *a);
}

TEST_F(PoolFixture, ARecipientDomainAddedLaterTakesItsShareOrIsRefused) {
    core::Pool pool(pool_config(1, {rule("gmail.com", 1, 1)}), clock, random);
    core::ShapingHold hold;
    auto b = pick(pool, {"example.org"}, hold);
    ASSERT_TRUE(b);
    EXPECT_TRUE(hold.empty());  // example.org is not shaped
    EXPECT_FALSE(pool.shape_recipient(*b, "gmail.com", hold));
    EXPECT_TRUE(hold.holds("gmail.com"));
    core::ShapingHold other;
    auto block = pool.shape_recipient(*b, "gmail.com", other);
    ASSERT_TRUE(block);
    EXPECT_EQ(block->domain, "gmail.com");
}

TEST_F(PoolFixture, AReloadKeepsTheStateOfUnchangedRules) {
    auto config = pool_config(1, {rule("gmail.com", 1, 1)});
    core::Pool old_pool(config, clock, random);
    core::ShapingHold hold;
    ASSERT_TRUE(pick(old_pool, kGmail, hold));
    old_pool.settle_shaping(hold, kGmail);

    core::Pool same(config, clock, random);
    same.adopt_state(old_pool);
    EXPECT_FALSE(pick(same, kGmail, hold));
    EXPECT_EQ(same.shaping(), old_pool.shaping());

    auto changed_config = pool_config(1, {rule("gmail.com", 2, 2)});
    core::Pool changed(changed_config, clock, random);
    changed.adopt_state(old_pool);
    EXPECT_TRUE(pick(changed, kGmail, hold));  // another rate: counted afresh
}
