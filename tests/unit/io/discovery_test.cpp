// Pools from DNS, the io half: the UDP resolver against a DNS server in the
// test (MX, SRV, A and AAAA read from real packets; silence is a failure),
// and the Discoverer that follows each pool's discover with a fake resolver.
#include <gtest/gtest.h>

#include "io/discovery/discoverer.hpp"
#include "mocks/fake_discovery_resolver.hpp"
#include "mocks/fake_dns_server.hpp"

using namespace smtplb;
using namespace std::chrono_literals;
using smtplb::testing::FakeDiscoveryResolver;
using smtplb::testing::FakeDns;
namespace asio = io::asio;

namespace {

core::DiscoveryAnswer run_resolve(asio::io_context& io, io::DiscoveryResolver& resolver,
                                  const config::Discover& discover) {
    std::optional<core::DiscoveryAnswer> out;
    asio::co_spawn(io, resolver.resolve(discover),
                   [&](std::exception_ptr e, core::DiscoveryAnswer answer) {
                       if (!e) out = std::move(answer);
                   });
    auto until = std::chrono::steady_clock::now() + 20s;
    while (!out && std::chrono::steady_clock::now() < until)
        io.run_one_for(50ms);
    EXPECT_TRUE(out) << "no answer in 20 s";
    return out.value_or(core::DiscoveryAnswer{});
}

config::Discover discover(config::DiscoverKind kind, const std::string& name) {
    config::Discover d;
    d.kind = kind;
    d.name = name;
    return d;
}

}  // namespace

TEST(DiscoveryResolver, ReadsMxHostsAndTheirAddresses) {
    asio::io_context io;
    FakeDns dns(io);
    dns.records["example.test 15"] = {"example.test. 600 IN MX 20 mx2.example.test.",
                                      "example.test. 300 IN MX 10 mx1.example.test."};
    dns.records["mx1.example.test 1"] = {"mx1.example.test. 120 IN A 127.0.0.11"};
    dns.records["mx1.example.test 28"] = {"mx1.example.test. 120 IN AAAA ::1"};
    dns.records["mx2.example.test 1"] = {"mx2.example.test. 300 IN A 127.0.0.12"};
    auto resolver = io::make_discovery_resolver(io.get_executor(), {dns.endpoint()}, 2s);
    auto answer = run_resolve(io, *resolver, discover(config::DiscoverKind::Mx, "example.test"));
    EXPECT_EQ(answer.status, core::DnsStatus::Ok);
    EXPECT_EQ(answer.ttl, 300u);
    ASSERT_EQ(answer.hosts.size(), 2u);
    auto found = core::backends_from(discover(config::DiscoverKind::Mx, "example.test"), answer);
    ASSERT_EQ(found.backends.size(), 3u);
    EXPECT_EQ(found.backends[0].name, "mx1.example.test@127.0.0.11");
    EXPECT_EQ(found.backends[1].name, "mx1.example.test@::1");
    EXPECT_EQ(found.backends[2].name, "mx2.example.test@127.0.0.12");
    EXPECT_EQ(found.backends[2].priority, 20u);
    EXPECT_EQ(found.ttl, 120u);  // the smallest of the records used
}

TEST(DiscoveryResolver, ReadsSrvPriorityWeightAndPort) {
    asio::io_context io;
    FakeDns dns(io);
    dns.records["_smtp._tcp.example.test 33"] = {
        "_smtp._tcp.example.test. 300 IN SRV 5 60 2525 a.example.test."};
    dns.records["a.example.test 1"] = {"a.example.test. 300 IN A 127.0.0.21"};
    auto resolver = io::make_discovery_resolver(io.get_executor(), {dns.endpoint()}, 2s);
    auto d = discover(config::DiscoverKind::Srv, "_smtp._tcp.example.test");
    auto found = core::backends_from(d, run_resolve(io, *resolver, d));
    ASSERT_EQ(found.backends.size(), 1u);
    EXPECT_EQ(found.backends[0].address.to_string(), "127.0.0.21:2525");
    EXPECT_EQ(found.backends[0].priority, 5u);
    EXPECT_EQ(found.backends[0].weight, 60u);
}

TEST(DiscoveryResolver, AnANameGetsTheConfiguredPortAndNxdomainIsEmpty) {
    asio::io_context io;
    FakeDns dns(io);
    dns.records["hubs.example.test 1"] = {"hubs.example.test. 300 IN A 127.0.0.31",
                                          "hubs.example.test. 300 IN A 127.0.0.32"};
    auto resolver = io::make_discovery_resolver(io.get_executor(), {dns.endpoint()}, 2s);
    auto d = discover(config::DiscoverKind::A, "hubs.example.test");
    d.port = 2526;
    auto found = core::backends_from(d, run_resolve(io, *resolver, d));
    ASSERT_EQ(found.backends.size(), 2u);
    EXPECT_EQ(found.backends[1].address.to_string(), "127.0.0.32:2526");
    auto none = discover(config::DiscoverKind::Mx, "nosuch.test");
    EXPECT_EQ(core::backends_from(none, run_resolve(io, *resolver, none)).kind,
              core::DiscoveredBackends::Kind::Empty);
}

TEST(DiscoveryResolver, ASilentServerIsAFailureWithinTheTimeout) {
    asio::io_context io;
    FakeDns dns(io);
    dns.silent = true;
    auto resolver = io::make_discovery_resolver(io.get_executor(), {dns.endpoint()}, 500ms);
    auto start = std::chrono::steady_clock::now();
    auto d = discover(config::DiscoverKind::Mx, "example.test");
    auto answer = run_resolve(io, *resolver, d);
    EXPECT_EQ(answer.status, core::DnsStatus::TempFail);
    EXPECT_LT(std::chrono::steady_clock::now() - start, 5s);
    EXPECT_EQ(core::backends_from(d, answer).kind, core::DiscoveredBackends::Kind::Failed);
}

TEST(Discoverer, FollowsEachPoolAndSaysWhenItsBackendsChanged) {
    asio::io_context io;
    auto resolver = std::make_shared<FakeDiscoveryResolver>();
    core::DiscoveryAnswer answer;
    answer.status = core::DnsStatus::Ok;
    answer.ttl = 1;  // below min_refresh: asked again after 1 s
    core::DiscoveredHost host;
    host.host = "mx1.example.test";
    host.priority = 10;
    host.addresses.status = core::DnsStatus::Ok;
    host.addresses.addresses = {*base::IpAddress::parse("127.0.0.11")};
    answer.hosts = {host};
    resolver->table["example.test"] = answer;

    int changes = 0;
    std::vector<std::string> events;
    io::Discoverer discoverer(
        io.get_executor(), [&](const core::DiscoveryEvent& e) { events.push_back(e.event); },
        [&] { ++changes; });
    discoverer.use_resolver(resolver);
    config::Config config;
    config::Pool pool;
    pool.name = "hubs";
    pool.discover = discover(config::DiscoverKind::Mx, "example.test");
    pool.discover->min_refresh = 1s;
    config.pools.push_back(pool);
    discoverer.configure(config);

    auto run_until = [&](auto done) {
        auto until = std::chrono::steady_clock::now() + 10s;
        while (!done() && std::chrono::steady_clock::now() < until)
            io.run_one_for(20ms);
    };
    run_until([&] { return changes == 1; });
    EXPECT_EQ(changes, 1);
    EXPECT_EQ(events, std::vector<std::string>{"discovery_changed"});
    auto applied = config;
    discoverer.apply(applied);
    ASSERT_EQ(applied.pools[0].backends.size(), 1u);
    EXPECT_EQ(applied.pools[0].backends[0].name, "mx1.example.test@127.0.0.11");

    // The same discover after a reload: its list and schedule go on (no
    // new first lookup, no change).
    discoverer.configure(applied);
    EXPECT_EQ(discoverer.find("hubs")->backends().size(), 1u);
    // DNS fails from now on: kept, and said once.
    resolver->table.clear();
    run_until([&] { return resolver->asked["example.test"] >= 3; });
    EXPECT_GE(resolver->asked["example.test"], 3);
    EXPECT_EQ(changes, 1);
    EXPECT_EQ(events, (std::vector<std::string>{"discovery_changed", "discovery_failed"}));
    EXPECT_EQ(discoverer.find("hubs")->backends().size(), 1u);

    // Another name for the pool: it starts afresh; the pool's old list is
    // not applied to the new discover.
    config.pools[0].discover->name = "other.test";
    discoverer.configure(config);
    applied = config;
    discoverer.apply(applied);
    EXPECT_TRUE(applied.pools[0].backends.empty());
    discoverer.stop();
    EXPECT_TRUE(discoverer.pools().empty());
    io.run_for(50ms);  // what was in flight ends without a word
}
