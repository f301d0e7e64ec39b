#include <gtest/gtest.h>

#include "core/pool.hpp"
#include "core/pool_capabilities.hpp"
#include "mocks/fake_clock.hpp"
#include "mocks/scripted_random.hpp"

using namespace smtplb;
using core::BackendCapabilities;
using core::TransactionNeeds;

namespace {
BackendCapabilities known(bool smtputf8, std::uint64_t size = 0, bool requiretls = false) {
    BackendCapabilities b;
    b.known = true;
    b.smtputf8 = smtputf8;
    b.size_limit = size;
    b.requiretls = requiretls;
    return b;
}
}  // namespace

TEST(PoolCapabilities, SizeIsTheSmallestBackendLimitNeverAboveTheListeners) {
    // No SIZE or SIZE 0 is no limit; an unknown backend does not count.
    auto pool = core::pool_capabilities(
        {known(true, 10240000), known(true, 0), known(true, 52428800), BackendCapabilities{}},
        false);
    EXPECT_EQ(pool.size_limit, 10240000u);
    EXPECT_EQ(pool.size_offer(50u << 20), 10240000u);
    EXPECT_EQ(pool.size_offer(1000000), 1000000u);
    auto unlimited = core::pool_capabilities({known(true, 0)}, false);
    EXPECT_EQ(unlimited.size_offer(50u << 20), 50u << 20);
}

TEST(PoolCapabilities, SmtpUtf8IsPossibleUnlessEveryBackendIsKnownWithoutIt) {
    EXPECT_FALSE(core::pool_capabilities({known(false), known(false)}, false).smtputf8_possible());
    EXPECT_TRUE(core::pool_capabilities({known(false), known(true)}, false).smtputf8_possible());
    // Never reached yet: it may have it, so it is tried (as before).
    EXPECT_TRUE(
        core::pool_capabilities({known(false), BackendCapabilities{}}, false).smtputf8_possible());
    // An empty pool (from DNS, before its first answer) knows nothing, so
    // refuses nothing for good (docs/cluster.md).
    EXPECT_FALSE(core::pool_capabilities({}, false).all_known());
    EXPECT_TRUE(core::pool_capabilities({}, false).smtputf8_possible());
}

TEST(PoolCapabilities, RefusalsAreTheOnesABackendWouldGive) {
    auto no_utf8 = core::pool_capabilities({known(false, 10240000)}, false);
    auto r = core::pool_refusal(no_utf8, {.smtputf8 = true});
    ASSERT_TRUE(r);
    EXPECT_EQ(r->code, 553);
    EXPECT_EQ(r->enhanced, "5.6.7");
    r = core::pool_refusal(no_utf8, {.size = 10240001});
    ASSERT_TRUE(r);
    EXPECT_EQ(r->code, 552);
    EXPECT_EQ(r->enhanced, "5.3.4");
    EXPECT_FALSE(core::pool_refusal(no_utf8, {.size = 10240000}));
    // REQUIRETLS: never over plaintext, whatever the backends announce.
    auto plain = core::pool_capabilities({known(true, 0, true)}, false);
    r = core::pool_refusal(plain, {.requiretls = true});
    ASSERT_TRUE(r);
    EXPECT_EQ(r->enhanced, "5.7.30");
    auto verified = core::pool_capabilities({known(true, 0, true)}, true);
    EXPECT_FALSE(core::pool_refusal(verified, {.requiretls = true}));
    auto verified_without = core::pool_capabilities({known(true, 0, false)}, true);
    EXPECT_TRUE(core::pool_refusal(verified_without, {.requiretls = true}));
}

TEST(PoolCapabilities, EligibilityOfOneBackend) {
    EXPECT_TRUE(core::may_take(BackendCapabilities{}, {.smtputf8 = true}, false));
    EXPECT_FALSE(core::may_take(known(false), {.smtputf8 = true}, false));
    EXPECT_TRUE(core::may_take(known(true), {.smtputf8 = true}, false));
    EXPECT_FALSE(core::may_take(known(true, 100), {.size = 101}, false));
    EXPECT_TRUE(core::may_take(known(true, 0), {.size = 101}, false));
    EXPECT_FALSE(core::may_take(BackendCapabilities{}, {.requiretls = true}, false));
    EXPECT_TRUE(core::may_take(BackendCapabilities{}, {.requiretls = true}, true));
    EXPECT_FALSE(core::may_take(known(true), {.requiretls = true}, true));
}

TEST(PoolCapabilities, PoolPicksOnlyEligibleBackendsAndKeepsTheLastKnown) {
    config::Pool p;
    p.name = "p";
    p.health.enabled = false;
    for (int i = 0; i < 2; ++i) {
        config::Backend b;
        b.name = "b" + std::to_string(i);
        p.backends.push_back(b);
    }
    smtplb::testing::FakeClock clock;
    smtplb::testing::ScriptedRandom random({0});
    core::Pool pool(p, clock, random);
    auto epoch = pool.capabilities_epoch();
    proto::Capabilities without, with;
    with.smtputf8 = true;
    pool.learn_capabilities(0, without);
    pool.learn_capabilities(1, with);
    EXPECT_NE(pool.capabilities_epoch(), epoch);
    epoch = pool.capabilities_epoch();
    pool.learn_capabilities(1, with);  // the same again: no change
    EXPECT_EQ(pool.capabilities_epoch(), epoch);
    for (int i = 0; i < 10; ++i)
        EXPECT_EQ(*pool.pick(std::nullopt, {}, {.smtputf8 = true}), 1u);
    // Down, it keeps its last known capabilities: still the pool's.
    pool.report(1, core::LiveOutcome::Failed, "test");
    EXPECT_FALSE(pool.pick(std::nullopt, {}, {.smtputf8 = true}));
    auto caps = pool.capabilities();
    EXPECT_EQ(caps.known, 2u);
    EXPECT_EQ(caps.smtputf8, 1u);
    EXPECT_TRUE(caps.smtputf8_possible());
    EXPECT_FALSE(core::pool_refusal(caps, {.smtputf8 = true}));  // 451/spool, not 553
    // A probe's EHLO replaces them: now no backend has SMTPUTF8.
    proto::ProbeResult probe;
    probe.verdict = proto::ProbeVerdict::Down;
    probe.capabilities = without;
    pool.probe_result(1, probe);
    auto refusal = pool.refusal(proto::MailParameters{.smtputf8 = true});
    ASSERT_TRUE(refusal);
    EXPECT_EQ(refusal->enhanced, "5.6.7");
}
