// The backend health state machine with an injected clock: no sleeps.
#include <gtest/gtest.h>

#include <future>
#include <memory>
#include <thread>

#include "core/health.hpp"
#include "core/pool.hpp"
#include "mocks/fake_clock.hpp"
#include "mocks/scripted_random.hpp"

using namespace smtplb;
using namespace std::chrono_literals;
using core::HealthState;
using core::LiveOutcome;

namespace {

config::Pool pool_config(std::uint32_t rise = 2, std::uint32_t fall = 2) {
    config::Pool p;
    p.name = "p";
    p.health.rise = rise;
    p.health.fall = fall;
    p.slow_start = 0ms;
    return p;
}

proto::ProbeResult probe(proto::ProbeVerdict verdict, int code = 250,
                         const char* enhanced = "2.0.0") {
    proto::ProbeResult r;
    r.verdict = verdict;
    r.step = "mail";
    r.reply = proto::Reply::make(code, enhanced, "text");
    r.reason = "test";
    return r;
}
const auto kHealthy = probe(proto::ProbeVerdict::Healthy);
const auto kBusy = probe(proto::ProbeVerdict::Busy, 452, "4.3.1");
const auto kDown = probe(proto::ProbeVerdict::Down, 554, "5.3.0");

}  // namespace

TEST(BackendHealth, FallConsecutiveFailedProbesTakeItOutAndRiseBringItBack) {
    smtplb::testing::FakeClock clock;
    core::BackendHealth h(pool_config(2, 3));
    EXPECT_EQ(h.state(), HealthState::Up);
    EXPECT_FALSE(h.probe(kBusy, clock.now()));
    EXPECT_FALSE(h.probe(kBusy, clock.now()));
    EXPECT_TRUE(h.accepts_new(clock.now()));
    auto out = h.probe(kBusy, clock.now());
    ASSERT_TRUE(out);
    EXPECT_EQ(out->from, "up");
    EXPECT_EQ(out->to, "busy");
    EXPECT_EQ(out->source, "probe");
    EXPECT_EQ(out->observations, 3u);
    EXPECT_EQ(out->reply, "452 4.3.1 text");
    EXPECT_FALSE(h.accepts_new(clock.now()));
    EXPECT_FALSE(h.probe(kHealthy, clock.now()));
    auto back = h.probe(kHealthy, clock.now());
    ASSERT_TRUE(back);
    EXPECT_EQ(back->to, "up");
    EXPECT_TRUE(h.accepts_new(clock.now()));
}

TEST(BackendHealth, AGoodProbeResetsTheFallCount) {
    smtplb::testing::FakeClock clock;
    core::BackendHealth h(pool_config(2, 2));
    h.probe(kBusy, clock.now());
    h.probe(kHealthy, clock.now());
    EXPECT_FALSE(h.probe(kBusy, clock.now()));
    EXPECT_EQ(h.state(), HealthState::Up);
}

TEST(BackendHealth, BusyAndDownFollowTheLatestProbeWithoutHysteresis) {
    smtplb::testing::FakeClock clock;
    core::BackendHealth h(pool_config(2, 1));
    h.probe(kBusy, clock.now());
    EXPECT_EQ(h.state(), HealthState::Busy);
    auto out = h.probe(kDown, clock.now());
    ASSERT_TRUE(out);
    EXPECT_EQ(out->to, "down");
}

TEST(BackendHealth, LiveBackendDeferralTakesItOutAtOnce) {
    smtplb::testing::FakeClock clock;
    core::BackendHealth h(pool_config());
    auto out = h.live(LiveOutcome::BackendDeferred, "live MAIL", "452 4.3.1 x", clock.now());
    ASSERT_TRUE(out);
    EXPECT_EQ(out->to, "busy");
    EXPECT_EQ(out->source, "live");
    // With probes on, only probes bring it back: no trial after down_retry.
    clock.advance(1h);
    EXPECT_FALSE(h.accepts_new(clock.now()));
    h.probe(kHealthy, clock.now());
    EXPECT_TRUE(h.probe(kHealthy, clock.now()));
    EXPECT_TRUE(h.accepts_new(clock.now()));
}

TEST(BackendHealth, XclientRefusalIsMisconfiguredUntilTheHoldPassesWhateverProbesSay) {
    smtplb::testing::FakeClock clock;
    core::BackendHealth h(pool_config(1, 1));
    auto event =
        h.live(LiveOutcome::Misconfigured, "XCLIENT refused", "550 5.7.0 denied", clock.now());
    ASSERT_TRUE(event);
    EXPECT_EQ(event->to, "misconfigured");
    EXPECT_EQ(event->reply, "550 5.7.0 denied");
    EXPECT_FALSE(h.accepts_new(clock.now()));
    // Probes do not send XCLIENT: their success says nothing about it.
    clock.advance(30s);
    EXPECT_FALSE(h.probe(kHealthy, clock.now()));
    EXPECT_EQ(h.state(), HealthState::Misconfigured);
    clock.advance(31s);
    auto back = h.probe(kHealthy, clock.now());
    ASSERT_TRUE(back);
    EXPECT_EQ(back->to, "up");
    EXPECT_TRUE(h.accepts_new(clock.now()));
}

TEST(BackendHealth, AProbeWhoseAuthIsRefusedIsMisconfiguredAtOnceUntilProbesPassAgain) {
    smtplb::testing::FakeClock clock;
    core::BackendHealth h(pool_config(2, 3));  // fall 3: not waited for
    auto refused = probe(proto::ProbeVerdict::Misconfigured, 535, "5.7.8");
    refused.step = "auth";
    refused.reason = "AUTH refused: 535 5.7.8 text";
    auto event = h.probe(refused, clock.now());
    ASSERT_TRUE(event);
    EXPECT_EQ(event->to, "misconfigured");
    EXPECT_EQ(event->source, "probe");
    EXPECT_EQ(event->reason, "probe auth: AUTH refused: 535 5.7.8 text");
    EXPECT_EQ(event->reply, "535 5.7.8 text");
    EXPECT_FALSE(h.accepts_new(clock.now()));
    // A fixed password (a reload): probes see it, no hold applies.
    EXPECT_FALSE(h.probe(kHealthy, clock.now()));
    auto back = h.probe(kHealthy, clock.now());
    ASSERT_TRUE(back);
    EXPECT_EQ(back->to, "up");
}

TEST(BackendHealth, MessageSpecificRepliesDoNotCount) {
    smtplb::testing::FakeClock clock;
    auto cfg = pool_config();
    cfg.passive_fall = 2;
    core::BackendHealth h(cfg);
    EXPECT_FALSE(h.live(LiveOutcome::Failed, "x", "", clock.now()));
    EXPECT_FALSE(h.live(LiveOutcome::MessageDeferred, "x", "450 4.2.0 greylisted", clock.now()));
    EXPECT_FALSE(h.live(LiveOutcome::Failed, "x", "", clock.now()));
    EXPECT_FALSE(h.live(LiveOutcome::Rejected, "x", "550 5.1.1", clock.now()));
    EXPECT_EQ(h.state(), HealthState::Up);
    h.live(LiveOutcome::Failed, "x", "", clock.now());
    auto out = h.live(LiveOutcome::Failed, "x", "", clock.now());
    ASSERT_TRUE(out);
    EXPECT_EQ(out->to, "down");
    EXPECT_EQ(out->observations, 2u);
}

TEST(BackendHealth, WithoutProbesATrialTransactionAfterDownRetry) {
    smtplb::testing::FakeClock clock;
    auto cfg = pool_config();
    cfg.health.enabled = false;
    cfg.down_retry = 10s;
    core::BackendHealth h(cfg);
    h.live(LiveOutcome::Failed, "x", "", clock.now());
    EXPECT_FALSE(h.accepts_new(clock.now()));
    clock.advance(11s);
    EXPECT_TRUE(h.accepts_new(clock.now()));
    h.live(LiveOutcome::Failed, "x", "", clock.now());  // the trial failed: wait again
    EXPECT_FALSE(h.accepts_new(clock.now()));
    clock.advance(11s);
    EXPECT_TRUE(h.live(LiveOutcome::Success, "x", "", clock.now()));
    EXPECT_EQ(h.state(), HealthState::Up);
}

TEST(BackendHealth, SlowStartRampsTheWeightAfterRecovery) {
    smtplb::testing::FakeClock clock;
    auto cfg = pool_config(1, 1);
    cfg.slow_start = 100s;
    core::BackendHealth h(cfg);
    EXPECT_EQ(h.weight_permille(clock.now()), 1000u);  // not after a start
    h.probe(kDown, clock.now());
    h.probe(kHealthy, clock.now());
    EXPECT_EQ(h.weight_permille(clock.now()), 50u);
    clock.advance(50s);
    EXPECT_EQ(h.weight_permille(clock.now()), 500u);
    clock.advance(50s);
    EXPECT_EQ(h.weight_permille(clock.now()), 1000u);
}

TEST(BackendHealth, DrainKeepsProbingMaintenanceDoesNot) {
    smtplb::testing::FakeClock clock;
    core::BackendHealth h(pool_config(2, 1));
    auto drain = h.set_admin(core::AdminState::Drain, clock.now());
    ASSERT_TRUE(drain);
    EXPECT_EQ(drain->to, "drain");
    EXPECT_FALSE(h.accepts_new(clock.now()));
    EXPECT_TRUE(h.probing());
    EXPECT_TRUE(h.probe(kDown, clock.now()));  // still judged
    h.set_admin(core::AdminState::Maintenance, clock.now());
    EXPECT_FALSE(h.probing());
    EXPECT_FALSE(h.probe(kHealthy, clock.now()));
    // Back from maintenance: nothing is known, probes must pass `rise` times.
    h.set_admin(core::AdminState::Enabled, clock.now());
    EXPECT_EQ(h.state(), HealthState::Down);
    EXPECT_FALSE(h.accepts_new(clock.now()));
    h.probe(kHealthy, clock.now());
    h.probe(kHealthy, clock.now());
    EXPECT_TRUE(h.accepts_new(clock.now()));
    EXPECT_FALSE(h.set_admin(core::AdminState::Enabled, clock.now()));  // no change, no event
}

TEST(ClassifyLive, EnhancedSubjectDecidesWhetherTheBackendIsAtFault) {
    auto c = [](int code, const char* enhanced) {
        return core::classify_live(proto::Reply::make(code, enhanced, "x"));
    };
    EXPECT_EQ(c(250, "2.0.0"), LiveOutcome::Success);
    EXPECT_EQ(c(550, "5.1.1"), LiveOutcome::Rejected);
    EXPECT_EQ(c(452, "4.3.1"), LiveOutcome::BackendDeferred);
    EXPECT_EQ(c(451, "4.4.2"), LiveOutcome::BackendDeferred);
    EXPECT_EQ(c(421, "4.3.2"), LiveOutcome::BackendDeferred);
    EXPECT_EQ(c(450, "4.2.0"), LiveOutcome::MessageDeferred);  // greylisted
    EXPECT_EQ(c(451, "4.7.1"), LiveOutcome::MessageDeferred);  // policy
    EXPECT_EQ(c(450, "4.1.8"), LiveOutcome::MessageDeferred);  // bad sender domain
    EXPECT_EQ(c(452, "4.5.3"), LiveOutcome::MessageDeferred);  // too many recipients
    EXPECT_EQ(c(421, "4.7.0"), LiveOutcome::MessageDeferred);  // this client's rate
    EXPECT_EQ(c(452, ""), LiveOutcome::BackendDeferred);
    EXPECT_EQ(c(421, ""), LiveOutcome::BackendDeferred);
    EXPECT_EQ(c(450, ""), LiveOutcome::MessageDeferred);
}

TEST(ReplyRates, CountsTheLastMinuteOnly) {
    smtplb::testing::FakeClock clock;
    core::ReplyRates rates;
    rates.record(core::ReplyRates::Positive, clock.now());
    clock.advance(30s);
    rates.record(core::ReplyRates::Transient, clock.now());
    rates.record(core::ReplyRates::Positive, clock.now());
    auto now = rates.last_minute(clock.now());
    EXPECT_EQ(now[core::ReplyRates::Positive], 2u);
    EXPECT_EQ(now[core::ReplyRates::Transient], 1u);
    clock.advance(31s);
    now = rates.last_minute(clock.now());
    EXPECT_EQ(now[core::ReplyRates::Positive], 1u);
    clock.advance(60s);
    EXPECT_EQ(rates.last_minute(clock.now())[core::ReplyRates::Transient], 0u);
}

namespace {
config::Pool tiered(std::uint32_t fall = 1) {
    auto p = pool_config(1, fall);
    for (auto [name, priority] : {std::pair{"a", 10u}, {"b", 10u}, {"backup", 20u}}) {
        config::Backend b;
        b.name = name;
        b.priority = priority;
        p.backends.push_back(b);
    }
    return p;
}
}  // namespace

TEST(PoolHealth, BusyPreferredTierFailsOverAndComesBack) {
    smtplb::testing::FakeClock clock;
    smtplb::testing::ScriptedRandom random({0});
    core::Pool pool(tiered(), clock, random);
    std::vector<std::string> log;
    pool.set_health_log([&](const core::Pool&, const config::Backend& b,
                            const core::HealthEvent& e) { log.push_back(b.name + ":" + e.to); });
    pool.probe_result(0, kBusy);
    EXPECT_NE(*pool.pick(std::nullopt, {}), 0u);
    EXPECT_EQ(*pool.pick(std::nullopt, {}), 1u);  // b alone still serves tier 10
    pool.report(1, LiveOutcome::BackendDeferred, "live MAIL", "452 4.3.1 x");
    for (int i = 0; i < 5; ++i)
        EXPECT_EQ(*pool.pick(std::nullopt, {}), 2u);
    pool.probe_result(1, kHealthy);  // rise = 1
    for (int i = 0; i < 5; ++i)
        EXPECT_EQ(*pool.pick(std::nullopt, {}), 1u);
    EXPECT_EQ(log, (std::vector<std::string>{"a:busy", "b:busy", "b:up"}));
}

// Every event loop's pick() takes the pool's lock: a transition is decided
// under it and logged after it is released, so a slow log write (a full
// pipe to the journal) stalls no loop. Here another thread picks while each
// of the three kinds of transition (live, probe, admin) is being logged.
TEST(PoolHealth, TransitionsAreLoggedOutsideThePoolLock) {
    smtplb::testing::FakeClock clock;
    smtplb::testing::ScriptedRandom random({0});
    core::Pool pool(tiered(), clock, random);
    std::vector<std::string> log;
    int picked_meanwhile = 0;
    std::vector<std::thread> others;
    pool.set_health_log(
        [&](const core::Pool& p, const config::Backend& b, const core::HealthEvent& e) {
            log.push_back(b.name + ":" + e.to);
            // On another thread, as another event loop would; given up
            // after 2 s (the lock is still held: the test fails, not hangs).
            auto done = std::make_shared<std::promise<void>>();
            auto finished = done->get_future();
            others.emplace_back([&p, done] {
                (void)p.any_usable();
                done->set_value();
            });
            if (finished.wait_for(2s) == std::future_status::ready) ++picked_meanwhile;
        });
    pool.report(0, LiveOutcome::Failed, "live MAIL: connection reset");  // fall = 1
    pool.probe_result(0, kHealthy);
    pool.set_admin(1, core::AdminState::Drain);
    for (auto& t : others)
        t.join();  // each ends once the lock is free
    EXPECT_EQ(log, (std::vector<std::string>{"a:down", "a:up", "b:drain"}));
    EXPECT_EQ(picked_meanwhile, 3);
}

TEST(PoolHealth, SlowStartGivesARecoveredBackendASmallShareFirst) {
    smtplb::testing::FakeClock clock;
    smtplb::testing::ScriptedRandom random({0});
    auto cfg = tiered();
    cfg.slow_start = 60s;
    cfg.backends.pop_back();
    core::Pool pool(cfg, clock, random);
    pool.probe_result(0, kDown);
    pool.probe_result(0, kHealthy);
    auto share_of_a = [&] {
        int a = 0;
        for (int i = 0; i < 400; ++i)
            a += *pool.pick(std::nullopt, {}) == 0;
        return a;
    };
    EXPECT_LE(share_of_a(), 25);  // about 5% of 400 (weight 50 against 1000)
    clock.advance(30s);
    int half = share_of_a();  // weight 500 against 1000: a third
    EXPECT_GE(half, 120);
    EXPECT_LE(half, 150);
    clock.advance(30s);
    EXPECT_EQ(share_of_a(), 200);
}

TEST(PoolHealth, DrainedBackendGetsNoNewTransactions) {
    smtplb::testing::FakeClock clock;
    smtplb::testing::ScriptedRandom random({0});
    core::Pool pool(tiered(), clock, random);
    pool.set_admin(*pool.find("a"), core::AdminState::Drain);
    for (int i = 0; i < 10; ++i)
        EXPECT_EQ(*pool.pick(std::nullopt, {}), 1u);
    EXPECT_FALSE(pool.find("nosuch"));
}

TEST(BackendHealth, AReloadThatTurnsProbesOffForgetsTheLastProbe) {
    smtplb::testing::FakeClock clock;
    core::BackendHealth probed(pool_config());
    probed.probe(kDown, clock.now());
    ASSERT_TRUE(probed.last_probe());
    core::BackendHealth still_probed(pool_config());
    still_probed.adopt(probed);
    EXPECT_TRUE(still_probed.last_probe());
    auto off = pool_config();
    off.health.enabled = false;
    core::BackendHealth unprobed(off);
    unprobed.adopt(probed);
    EXPECT_FALSE(unprobed.last_probe());
}
