// The client name resolver against a DNS server in the test: a tiny UDP
// responder (ldns builds its answers) on loopback that answers from a table,
// or stays silent, and counts the questions it got.
#include <gtest/gtest.h>
#include <ldns/ldns.h>

#include <array>
#include <cstdio>
#include <fstream>
#include <map>

#include "io/front/client_names.hpp"
#include "io/front/dns_packets.hpp"
#include "mocks/fake_dns_server.hpp"

using namespace smtplb;
using namespace std::chrono_literals;
using core::ClientNames;
using io::asio::ip::udp;
using smtplb::testing::FakeDns;
namespace asio = io::asio;

namespace {

const std::string kUnavailable(core::kNameUnavailable);
const std::string kTemp(core::kNameTempUnavailable);

std::string ptr_key(const char* address) {
    return core::reverse_query_name(*base::IpAddress::parse(address)) + " 12";
}
std::string ptr_record(const char* address, const char* name) {
    return core::reverse_query_name(*base::IpAddress::parse(address)) + ". 300 IN PTR " + name +
           ".";
}

struct Outcome {
    ClientNames names{"<none>", "<none>"};
    std::chrono::milliseconds took{};
};

Outcome run_lookup(asio::io_context& io, io::ClientNameResolver& resolver, const char* address) {
    std::optional<ClientNames> out;
    auto start = std::chrono::steady_clock::now();
    asio::co_spawn(io, resolver.lookup(*base::IpAddress::parse(address)),
                   [&](std::exception_ptr e, ClientNames names) {
                       if (!e) out = names;
                   });
    auto until = start + 20s;
    while (!out && std::chrono::steady_clock::now() < until)
        io.run_one_for(50ms);
    Outcome o;
    if (out) o.names = *out;
    o.took = std::chrono::duration_cast<std::chrono::milliseconds>(
        std::chrono::steady_clock::now() - start);
    return o;
}

class ClientNameResolverTest : public ::testing::Test {
  protected:
    ClientNameResolverTest() : dns(io) {
        dns.records[ptr_key("127.0.0.20")] = {ptr_record("127.0.0.20", "good.test")};
        dns.records["good.test 1"] = {"good.test. 300 IN A 127.0.0.9",
                                      "good.test. 300 IN A 127.0.0.20"};
        dns.records[ptr_key("127.0.0.21")] = {ptr_record("127.0.0.21", "forged.test")};
        dns.records["forged.test 1"] = {"forged.test. 300 IN A 127.0.0.99"};
        dns.records[ptr_key("2001:db8::20")] = {ptr_record("2001:db8::20", "v6.test")};
        dns.records["v6.test 28"] = {"v6.test. 300 IN AAAA 2001:db8::20"};
        dns.records[ptr_key("127.0.0.23")] = {ptr_record("127.0.0.23", "alias.test")};
        dns.records["alias.test 1"] = {"alias.test. 300 IN CNAME real.test.",
                                       "real.test. 300 IN A 127.0.0.23"};
        dns.records[ptr_key("127.0.0.24")] = {ptr_record("127.0.0.24", "192.0.2.1")};
    }
    std::shared_ptr<io::ClientNameResolver> resolver(io::Millis timeout = 2s,
                                                     std::vector<udp::endpoint> servers = {}) {
        if (servers.empty()) servers.push_back(dns.endpoint());
        return io::make_client_name_resolver(io.get_executor(),
                                             io::ClientNameSettings{servers, timeout, 100});
    }

    asio::io_context io;
    FakeDns dns;
};

}  // namespace

TEST_F(ClientNameResolverTest, ForwardConfirmedName) {
    auto r = resolver();
    EXPECT_EQ(run_lookup(io, *r, "127.0.0.20").names, (ClientNames{"good.test", "good.test"}));
    EXPECT_EQ(dns.asked, (std::vector<std::string>{ptr_key("127.0.0.20"), "good.test 1"}));
    // Through a CNAME, too.
    EXPECT_EQ(run_lookup(io, *r, "127.0.0.23").names, (ClientNames{"alias.test", "alias.test"}));
}

TEST_F(ClientNameResolverTest, PtrWhoseAddressesDoNotListTheClientIsUnavailable) {
    auto r = resolver();
    EXPECT_EQ(run_lookup(io, *r, "127.0.0.21").names, (ClientNames{kUnavailable, "forged.test"}));
}

TEST_F(ClientNameResolverTest, NoPtrIsUnavailable) {
    auto r = resolver();
    EXPECT_EQ(run_lookup(io, *r, "127.0.0.22").names, (ClientNames{kUnavailable, kUnavailable}));
    EXPECT_EQ(dns.asked.size(), 1u);  // no forward lookup without a name
    // A numeric PTR is no name, and is not looked up either.
    EXPECT_EQ(run_lookup(io, *r, "127.0.0.24").names, (ClientNames{kUnavailable, kUnavailable}));
    EXPECT_EQ(dns.asked.size(), 2u);
}

TEST_F(ClientNameResolverTest, SilentServerIsTempUnavailableWithinTheTimeout) {
    dns.silent = true;
    auto r = resolver(600ms);
    auto o = run_lookup(io, *r, "127.0.0.20");
    EXPECT_EQ(o.names, (ClientNames{kTemp, kTemp}));
    EXPECT_LT(o.took, 1500ms);
    EXPECT_GE(o.took, 250ms);  // it waited for an answer (two attempts at the PTR)
    EXPECT_EQ(dns.asked.size(), 2u);
    // A temporary failure is not cached: the next lookup asks again.
    dns.silent = false;
    EXPECT_EQ(run_lookup(io, *r, "127.0.0.20").names, (ClientNames{"good.test", "good.test"}));
}

TEST_F(ClientNameResolverTest, ServfailIsTempUnavailableAndTheForwardOneKeepsTheReverseName) {
    dns.rcodes[ptr_key("127.0.0.30")] = LDNS_RCODE_SERVFAIL;
    dns.records[ptr_key("127.0.0.31")] = {ptr_record("127.0.0.31", "broken.test")};
    dns.rcodes["broken.test 1"] = LDNS_RCODE_SERVFAIL;
    auto r = resolver();
    EXPECT_EQ(run_lookup(io, *r, "127.0.0.30").names, (ClientNames{kTemp, kTemp}));
    EXPECT_EQ(dns.asked.size(), 2u);  // asked again before giving up
    EXPECT_EQ(run_lookup(io, *r, "127.0.0.31").names, (ClientNames{kTemp, "broken.test"}));
}

TEST_F(ClientNameResolverTest, TheNextServerIsAskedWhenTheFirstDoesNotAnswer) {
    udp::socket mute(io, udp::endpoint(asio::ip::make_address("127.0.0.1"), 0));  // never reads
    auto r = resolver(2s, {mute.local_endpoint(), dns.endpoint()});
    auto o = run_lookup(io, *r, "127.0.0.20");
    EXPECT_EQ(o.names, (ClientNames{"good.test", "good.test"}));
    EXPECT_LT(o.took, 2000ms);
}

TEST_F(ClientNameResolverTest, ResultsAreCachedAndConcurrentLookupsShareOneQuery) {
    auto r = resolver();
    EXPECT_EQ(run_lookup(io, *r, "127.0.0.20").names.name, "good.test");
    EXPECT_EQ(dns.asked.size(), 2u);
    dns.records.clear();  // the cache answers now
    EXPECT_EQ(run_lookup(io, *r, "127.0.0.20").names.name, "good.test");
    EXPECT_EQ(run_lookup(io, *r, "::ffff:127.0.0.20").names.name, "good.test");
    EXPECT_EQ(dns.asked.size(), 2u);

    // Three sessions ask for the same new address at once: one PTR query.
    dns.records[ptr_key("127.0.0.40")] = {ptr_record("127.0.0.40", "shared.test")};
    dns.records["shared.test 1"] = {"shared.test. 300 IN A 127.0.0.40"};
    std::vector<ClientNames> results;
    for (int i = 0; i < 3; ++i)
        asio::co_spawn(io, r->lookup(*base::IpAddress::parse("127.0.0.40")),
                       [&](std::exception_ptr, ClientNames n) { results.push_back(n); });
    auto until = std::chrono::steady_clock::now() + 10s;
    while (results.size() < 3 && std::chrono::steady_clock::now() < until)
        io.run_one_for(50ms);
    ASSERT_EQ(results.size(), 3u);
    for (const auto& n : results)
        EXPECT_EQ(n, (ClientNames{"shared.test", "shared.test"}));
    EXPECT_EQ(dns.asked.size(), 4u);  // + one PTR, one A
}

TEST_F(ClientNameResolverTest, Ipv6ClientsAreConfirmedWithAaaa) {
    auto r = resolver();
    EXPECT_EQ(run_lookup(io, *r, "2001:db8::20").names, (ClientNames{"v6.test", "v6.test"}));
    EXPECT_EQ(dns.asked.back(), "v6.test 28");
}

TEST(ClientNameServers, ConfiguredServersElseResolvConf) {
    char path[] = "/tmp/smtplb-resolv-XXXXXX";
    int fd = mkstemp(path);
    ASSERT_GE(fd, 0);
    close(fd);
    {
        std::ofstream out(path);
        out << "# test\nsearch example\nnameserver 192.0.2.53\nnameserver 2001:db8::53\n";
    }
    config::Server server;
    auto from_file = io::client_name_servers(server, path);
    ASSERT_EQ(from_file.size(), 2u);
    EXPECT_EQ(from_file[0], udp::endpoint(asio::ip::make_address("192.0.2.53"), 53));
    EXPECT_EQ(from_file[1], udp::endpoint(asio::ip::make_address("2001:db8::53"), 53));
    server.dns_servers = {*base::HostPort::parse("127.0.0.1:5353")};
    auto configured = io::client_name_servers(server, path);
    ASSERT_EQ(configured.size(), 1u);
    EXPECT_EQ(configured[0], udp::endpoint(asio::ip::make_address("127.0.0.1"), 5353));
    std::remove(path);
    server.dns_servers.clear();
    auto fallback = io::client_name_servers(server, "/nonexistent/resolv.conf");
    ASSERT_EQ(fallback.size(), 1u);
    EXPECT_EQ(fallback[0], udp::endpoint(asio::ip::make_address("127.0.0.1"), 53));
}

TEST(DnsPackets, RepliesToAnotherQueryAreIgnored) {
    io::DnsQuestion q{"good.test", io::kDnsTypeA};
    auto query = io::dns_query(q, 0x1234);
    ASSERT_FALSE(query.empty());
    // The query itself is not a response; garbage is not either.
    EXPECT_FALSE(io::dns_answer(query, q, 0x1234));
    std::vector<std::uint8_t> junk{1, 2, 3};
    EXPECT_FALSE(io::dns_answer(junk, q, 0x1234));
    // A response with the QR bit, but the wrong id or question.
    query[2] |= 0x80;
    EXPECT_TRUE(io::dns_answer(query, q, 0x1234));
    EXPECT_FALSE(io::dns_answer(query, q, 0x1235));
    EXPECT_FALSE(io::dns_answer(query, io::DnsQuestion{"other.test", io::kDnsTypeA}, 0x1234));
    EXPECT_FALSE(io::dns_answer(query, io::DnsQuestion{"good.test", io::kDnsTypeAaaa}, 0x1234));
    // NOERROR without records: NODATA.
    EXPECT_EQ(io::dns_answer(query, q, 0x1234)->status, core::DnsStatus::NoName);
}
