// Pools from DNS (issue 28): what answers make of a pool, when to ask
// again, and what is kept when DNS fails; on a fake clock.
#include "core/discovery.hpp"

#include <gtest/gtest.h>

#include "core/pool.hpp"
#include "mocks/fake_clock.hpp"

using namespace smtplb;
using namespace std::chrono_literals;
using core::DiscoveredHost;
using core::DiscoveryAnswer;
using core::DnsStatus;
using smtplb::testing::FakeClock;

namespace {

config::Discover mx_of(const std::string& name) {
    config::Discover d;
    d.kind = config::DiscoverKind::Mx;
    d.name = name;
    d.min_refresh = 30s;
    d.max_refresh = 1h;
    return d;
}

DiscoveredHost host(const std::string& name, std::uint32_t priority,
                    std::vector<std::string> addresses, std::uint32_t ttl = 300,
                    std::uint32_t weight = 1, std::uint16_t port = 25) {
    DiscoveredHost h;
    h.host = name;
    h.priority = priority;
    h.weight = weight;
    h.port = port;
    h.addresses.status = addresses.empty() ? DnsStatus::NoName : DnsStatus::Ok;
    for (const auto& a : addresses)
        h.addresses.addresses.push_back(*base::IpAddress::parse(a));
    if (!addresses.empty()) h.addresses.ttl = ttl;
    return h;
}

DiscoveryAnswer answer(std::vector<DiscoveredHost> hosts, std::uint32_t ttl = 300) {
    DiscoveryAnswer a;
    a.status = DnsStatus::Ok;
    a.ttl = ttl;
    a.hosts = std::move(hosts);
    return a;
}

DiscoveryAnswer failed() {
    return {};
}  // TempFail

std::vector<std::string> names(const std::vector<config::Backend>& backends) {
    std::vector<std::string> out;
    for (const auto& b : backends)
        out.push_back(b.name);
    return out;
}

}  // namespace

TEST(Discovery, MxPreferencesBecomePriorityTiersAndEachAddressABackend) {
    auto found = core::backends_from(
        mx_of("example.org"), answer({host("mx2.example.org", 20, {"192.0.2.2"}),
                                      host("mx1.example.org", 10, {"192.0.2.1", "2001:db8::1"})}));
    ASSERT_EQ(found.kind, core::DiscoveredBackends::Kind::Found);
    ASSERT_EQ(found.backends.size(), 3u);
    // Lower preference first; each address of a host is a backend of its tier.
    EXPECT_EQ(found.backends[0].name, "mx1.example.org@192.0.2.1");
    EXPECT_EQ(found.backends[0].address.to_string(), "192.0.2.1:25");
    EXPECT_EQ(found.backends[0].priority, 10u);
    EXPECT_EQ(found.backends[1].name, "mx1.example.org@2001:db8::1");
    EXPECT_EQ(found.backends[1].priority, 10u);
    EXPECT_EQ(found.backends[2].name, "mx2.example.org@192.0.2.2");
    EXPECT_EQ(found.backends[2].priority, 20u);
    EXPECT_EQ(found.backends[2].discovered_from, "mx example.org");
}

TEST(Discovery, SrvGivesPriorityWeightAndPort) {
    auto d = mx_of("_smtp._tcp.example.org");
    d.kind = config::DiscoverKind::Srv;
    auto found =
        core::backends_from(d, answer({host("a.example.org", 0, {"192.0.2.1"}, 300, 60, 2525),
                                       host("b.example.org", 0, {"192.0.2.2"}, 300, 0, 2526)}));
    ASSERT_EQ(found.backends.size(), 2u);
    EXPECT_EQ(found.backends[0].name, "a.example.org:2525@192.0.2.1");
    EXPECT_EQ(found.backends[0].address.to_string(), "192.0.2.1:2525");
    EXPECT_EQ(found.backends[0].weight, 60u);
    EXPECT_EQ(found.backends[0].priority, 0u);
    EXPECT_EQ(found.backends[1].weight, 1u);  // SRV weight 0: the smallest a backend has
}

TEST(Discovery, AnAddressNamedTwiceIsOneBackendAtItsBestPriority) {
    auto found = core::backends_from(mx_of("example.org"),
                                     answer({host("backup.example.org", 50, {"192.0.2.1"}),
                                             host("mx.example.org", 10, {"192.0.2.1"})}));
    ASSERT_EQ(found.backends.size(), 1u);
    EXPECT_EQ(found.backends[0].priority, 10u);
}

TEST(Discovery, AHostThatDoesNotAnswerFailsTheWholeResolution) {
    auto partial = answer(
        {host("mx1.example.org", 10, {"192.0.2.1"}), host("mx2.example.org", 10, {"192.0.2.2"})});
    partial.hosts[1].addresses = {};  // TempFail
    auto found = core::backends_from(mx_of("example.org"), partial);
    EXPECT_EQ(found.kind, core::DiscoveredBackends::Kind::Failed);
    EXPECT_TRUE(found.backends.empty());
    EXPECT_NE(found.reason.find("mx2.example.org"), std::string::npos) << found.reason;
}

TEST(Discovery, NothingToUseIsEmptyNotFailed) {
    DiscoveryAnswer nxdomain;
    nxdomain.status = DnsStatus::NoName;
    nxdomain.negative_ttl = 120;
    auto none = core::backends_from(mx_of("example.org"), nxdomain);
    EXPECT_EQ(none.kind, core::DiscoveredBackends::Kind::Empty);
    EXPECT_EQ(none.ttl, 120u);
    auto no_addresses =
        core::backends_from(mx_of("example.org"), answer({host("mx.example.org", 10, {})}));
    EXPECT_EQ(no_addresses.kind, core::DiscoveredBackends::Kind::Empty);
    auto null_mx = core::backends_from(mx_of("example.org"), answer({}));
    EXPECT_EQ(null_mx.kind, core::DiscoveredBackends::Kind::Empty);
}

TEST(Discovery, RefreshFollowsTheSmallestTtlWithinTheBounds) {
    FakeClock clock;
    core::PoolDiscovery d("hubs", mx_of("example.org"), clock);
    // The MX's TTL is 300 s, an address's 120 s: 120 s.
    auto step = d.on_answer(answer({host("mx.example.org", 10, {"192.0.2.1"}, 120)}, 300));
    EXPECT_EQ(step.next - clock.now(), 120s);
    // Below min_refresh: min_refresh (30 s).
    step = d.on_answer(answer({host("mx.example.org", 10, {"192.0.2.1"}, 5)}, 5));
    EXPECT_EQ(step.next - clock.now(), 30s);
    // Above max_refresh: max_refresh (1 h).
    step = d.on_answer(answer({host("mx.example.org", 10, {"192.0.2.1"}, 86400)}, 86400));
    EXPECT_EQ(step.next - clock.now(), 1h);
    EXPECT_EQ(d.next_refresh(), step.next);
}

TEST(Discovery, ChangesSayWhatWasAddedAndRemovedAndSameAnswersChangeNothing) {
    FakeClock clock;
    core::PoolDiscovery d("hubs", mx_of("example.org"), clock);
    auto step = d.on_answer(answer(
        {host("mx1.example.org", 10, {"192.0.2.1"}), host("mx2.example.org", 10, {"192.0.2.2"})}));
    EXPECT_TRUE(step.changed);
    EXPECT_EQ(step.added.size(), 2u);
    ASSERT_EQ(step.events.size(), 1u);
    EXPECT_EQ(step.events[0].event, "discovery_changed");

    clock.advance(300s);
    step = d.on_answer(answer(
        {host("mx2.example.org", 10, {"192.0.2.2"}), host("mx1.example.org", 10, {"192.0.2.1"})}));
    EXPECT_FALSE(step.changed);  // the same set, in another order
    EXPECT_TRUE(step.events.empty());

    step = d.on_answer(answer(
        {host("mx2.example.org", 10, {"192.0.2.2"}), host("mx3.example.org", 10, {"192.0.2.3"})}));
    EXPECT_TRUE(step.changed);
    EXPECT_EQ(step.added, std::vector<std::string>{"mx3.example.org@192.0.2.3"});
    EXPECT_EQ(step.removed, std::vector<std::string>{"mx1.example.org@192.0.2.1"});
    EXPECT_EQ(names(d.backends()),
              (std::vector<std::string>{"mx2.example.org@192.0.2.2", "mx3.example.org@192.0.2.3"}));

    // A new preference re-tiers a backend: a change, though no name changed.
    step = d.on_answer(answer(
        {host("mx2.example.org", 10, {"192.0.2.2"}), host("mx3.example.org", 20, {"192.0.2.3"})}));
    EXPECT_TRUE(step.changed);
    EXPECT_TRUE(step.added.empty());
    EXPECT_TRUE(step.removed.empty());
    EXPECT_EQ(d.backends()[1].priority, 20u);
}

TEST(Discovery, FailuresKeepTheLastGoodListAndAreLoggedOncePerStreak) {
    FakeClock clock;
    core::PoolDiscovery d("hubs", mx_of("example.org"), clock);
    d.on_answer(answer({host("mx1.example.org", 10, {"192.0.2.1"})}, 600));
    auto step = d.on_answer(failed());
    EXPECT_FALSE(step.changed);
    ASSERT_EQ(step.events.size(), 1u);
    EXPECT_EQ(step.events[0].event, "discovery_failed");
    EXPECT_EQ(step.next - clock.now(), 30s);  // asked again after min_refresh
    EXPECT_EQ(names(d.backends()), std::vector<std::string>{"mx1.example.org@192.0.2.1"});
    for (int i = 0; i < 5; ++i) {
        clock.advance(30s);
        step = d.on_answer(failed());
        EXPECT_TRUE(step.events.empty());  // the streak was said once
    }
    EXPECT_EQ(d.failures(), 6u);
    EXPECT_EQ(d.failing(), 6u);
    EXPECT_FALSE(d.last_error().empty());
    // DNS says there is nothing: kept too (a zone typo must not empty a pool).
    DiscoveryAnswer nxdomain;
    nxdomain.status = DnsStatus::NoName;
    step = d.on_answer(nxdomain);
    EXPECT_FALSE(step.changed);
    EXPECT_EQ(d.backends().size(), 1u);
    EXPECT_EQ(d.failures(), 7u);
    // Back: said once, the streak ends, the counter stays.
    step = d.on_answer(answer({host("mx1.example.org", 10, {"192.0.2.1"})}, 600));
    EXPECT_FALSE(step.changed);
    ASSERT_EQ(step.events.size(), 1u);
    EXPECT_EQ(step.events[0].event, "discovery_recovered");
    EXPECT_EQ(d.failing(), 0u);
    EXPECT_EQ(d.failures(), 7u);
    EXPECT_TRUE(d.last_error().empty());
    step = d.on_answer(failed());
    EXPECT_EQ(step.events.size(), 1u);  // a new streak is said again
}

TEST(Discovery, NothingAtStartLeavesThePoolEmptyUntilDnsAnswers) {
    FakeClock clock;
    core::PoolDiscovery d("hubs", mx_of("example.org"), clock);
    auto step = d.on_answer(failed());
    EXPECT_FALSE(step.changed);
    EXPECT_FALSE(d.answered());
    EXPECT_TRUE(d.backends().empty());
    ASSERT_EQ(step.events.size(), 1u);
    bool noted = false;
    for (const auto& [key, value] : step.events[0].fields)
        noted |= key == "note";
    EXPECT_TRUE(noted);
    step = d.on_answer(answer({host("mx1.example.org", 10, {"192.0.2.1"})}));
    EXPECT_TRUE(step.changed);
    EXPECT_TRUE(d.answered());
    EXPECT_EQ(step.events[0].event, "discovery_changed");  // not "recovered": the first
}

TEST(Discovery, TheRunningPoolHasTheFileBackendsThenTheDiscoveredOnes) {
    config::Pool pool;
    config::Backend fixed;
    fixed.name = "backup";
    pool.backends.push_back(fixed);
    config::Backend found;
    found.name = "mx1.example.org@192.0.2.1";
    found.discovered_from = "mx example.org";
    core::add_discovered(pool, {found});
    core::add_discovered(pool, {found});  // again: replaced, not added twice
    EXPECT_EQ(names(pool.backends),
              (std::vector<std::string>{"backup", "mx1.example.org@192.0.2.1"}));
    core::add_discovered(pool, {});
    EXPECT_EQ(names(pool.backends), std::vector<std::string>{"backup"});
}

TEST(Discovery, AnEmptyPoolPicksNothingAndRefusesNothingForGood) {
    // A pool with only `discover`, before DNS answers.
    config::Pool config;
    config.name = "hubs";
    FakeClock clock;
    base::DefaultRandom random;
    core::Pool pool(config, clock, random);
    EXPECT_FALSE(pool.pick(std::nullopt, {}));
    EXPECT_FALSE(pool.any_usable());
    // Not "no backend here supports SMTPUTF8" (a 5xx): nothing is known yet.
    proto::MailParameters params;
    params.smtputf8 = true;
    params.body_8bitmime = true;
    EXPECT_FALSE(pool.refusal(params));
    EXPECT_TRUE(pool.capabilities().smtputf8_possible());
}
