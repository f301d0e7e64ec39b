// The pure half of the client name lookup: what an answer means, what the
// two lookups together give (Postfix smtpd_peer.c's outcomes), how long a
// result is kept, and the cache's bounds.
#include <gtest/gtest.h>

#include "core/client_names.hpp"
#include "mocks/fake_clock.hpp"

using namespace smtplb;
using core::ClientNames;
using core::DnsAnswer;
using core::DnsStatus;
using namespace std::chrono_literals;

namespace {

base::IpAddress ip(const char* text) {
    return *base::IpAddress::parse(text);
}

DnsAnswer ptr(std::string name, std::uint32_t ttl = 300) {
    DnsAnswer a;
    a.status = DnsStatus::Ok;
    a.names = {std::move(name)};
    a.ttl = ttl;
    return a;
}

DnsAnswer addresses(std::vector<const char*> list, std::uint32_t ttl = 300) {
    DnsAnswer a;
    a.status = DnsStatus::Ok;
    for (auto* text : list)
        a.addresses.push_back(ip(text));
    a.ttl = ttl;
    return a;
}

DnsAnswer status(DnsStatus s, std::optional<std::uint32_t> negative_ttl = std::nullopt) {
    DnsAnswer a;
    a.status = s;
    a.negative_ttl = negative_ttl;
    return a;
}

const std::string kUnavailable(core::kNameUnavailable);
const std::string kTemp(core::kNameTempUnavailable);

}  // namespace

TEST(ClientNames, AnswerStatusFollowsTheRcode) {
    EXPECT_EQ(core::answer_status(0, false, true), DnsStatus::Ok);
    EXPECT_EQ(core::answer_status(0, false, false), DnsStatus::NoName);    // NODATA
    EXPECT_EQ(core::answer_status(3, false, false), DnsStatus::NoName);    // NXDOMAIN
    EXPECT_EQ(core::answer_status(2, false, false), DnsStatus::TempFail);  // SERVFAIL
    EXPECT_EQ(core::answer_status(5, false, false), DnsStatus::TempFail);  // REFUSED
    EXPECT_EQ(core::answer_status(0, true, true), DnsStatus::TempFail);    // truncated
}

TEST(ClientNames, ReverseQueryNames) {
    EXPECT_EQ(core::reverse_query_name(ip("192.0.2.20")), "20.2.0.192.in-addr.arpa");
    EXPECT_EQ(core::reverse_query_name(ip("::ffff:192.0.2.20")), "20.2.0.192.in-addr.arpa");
    EXPECT_EQ(core::reverse_query_name(ip("2001:db8::567:89ab")),
              "b.a.9.8.7.6.5.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa");
}

TEST(ClientNames, ValidHostnamesAsPostfixJudgesThem) {
    for (const char* good :
         {"mail.example.com", "a", "x-1.example", "_dmarc-ish.example", "1.2.3.example", "123abc"})
        EXPECT_TRUE(core::valid_client_hostname(good)) << good;
    for (const char* bad : {"", "1.2.3.4", "123", "a..b", ".a", "a.", "-a.example", "a-.example",
                            "a b.example", "a/b", "\xc3\xa9.example"})
        EXPECT_FALSE(core::valid_client_hostname(bad)) << bad;
    EXPECT_TRUE(core::valid_client_hostname(std::string(63, 'a') + ".example"));
    EXPECT_FALSE(core::valid_client_hostname(std::string(64, 'a') + ".example"));
    std::string long_name;
    while (long_name.size() < 256)
        long_name += "abcdefg.";
    long_name += "x";
    EXPECT_FALSE(core::valid_client_hostname(long_name));
}

TEST(ClientNames, ReverseStepOutcomes) {
    auto none = core::after_reverse(status(DnsStatus::NoName));
    ASSERT_TRUE(none.result);
    EXPECT_EQ(*none.result, (ClientNames{kUnavailable, kUnavailable}));

    auto temp = core::after_reverse(status(DnsStatus::TempFail));
    ASSERT_TRUE(temp.result);
    EXPECT_EQ(*temp.result, (ClientNames{kTemp, kTemp}));

    // A PTR that could pass for an address, or is no host name: unusable.
    auto numeric = core::after_reverse(ptr("192.0.2.1"));
    ASSERT_TRUE(numeric.result);
    EXPECT_EQ(*numeric.result, (ClientNames{kUnavailable, kUnavailable}));
    auto garbage = core::after_reverse(ptr("evil host\r\nX"));
    ASSERT_TRUE(garbage.result);
    EXPECT_EQ(*garbage.result, (ClientNames{kUnavailable, kUnavailable}));

    auto good = core::after_reverse(ptr("mail.example.com"));
    EXPECT_FALSE(good.result);
    EXPECT_EQ(good.confirm, "mail.example.com");
}

TEST(ClientNames, ForwardStepConfirmsOrRefusesTheName) {
    auto client = ip("192.0.2.20");
    EXPECT_EQ(core::after_forward("mx.example", addresses({"192.0.2.9", "192.0.2.20"}), client),
              (ClientNames{"mx.example", "mx.example"}));
    // Listed under another address only: the reverse name stays, unverified.
    EXPECT_EQ(core::after_forward("mx.example", addresses({"192.0.2.9"}), client),
              (ClientNames{kUnavailable, "mx.example"}));
    EXPECT_EQ(core::after_forward("mx.example", status(DnsStatus::NoName), client),
              (ClientNames{kUnavailable, "mx.example"}));
    EXPECT_EQ(core::after_forward("mx.example", status(DnsStatus::TempFail), client),
              (ClientNames{kTemp, "mx.example"}));
    // An IPv4-mapped client matches its IPv4 address.
    EXPECT_EQ(core::after_forward("mx.example", addresses({"192.0.2.20"}), ip("::ffff:192.0.2.20")),
              (ClientNames{"mx.example", "mx.example"}));
    EXPECT_EQ(core::after_forward("v6.example", addresses({"2001:db8::20"}), ip("2001:db8::20")),
              (ClientNames{"v6.example", "v6.example"}));
}

TEST(ClientNames, CacheTtlIsTheSmallestClamped) {
    ClientNames ok{"mx.example", "mx.example"};
    auto p = ptr("mx.example", 600);
    auto a = addresses({"192.0.2.20"}, 120);
    EXPECT_EQ(core::cache_ttl(ok, {&p, &a}), 120s);
    auto huge = ptr("mx.example", 86400 * 7);
    auto huge_a = addresses({"192.0.2.20"}, 86400);
    EXPECT_EQ(core::cache_ttl(ok, {&huge, &huge_a}), core::kMaxCacheTtl);
    auto zero = ptr("mx.example", 0);
    EXPECT_EQ(core::cache_ttl(ok, {&zero, &a}), core::kMinCacheTtl);

    ClientNames none{kUnavailable, kUnavailable};
    auto nx = status(DnsStatus::NoName, 30);
    EXPECT_EQ(core::cache_ttl(none, {&nx}), 30s);
    auto nx_no_soa = status(DnsStatus::NoName);
    EXPECT_EQ(core::cache_ttl(none, {&nx_no_soa}), core::kDefaultNegativeTtl);

    // Temporary failures are not kept: the next client asks again.
    auto fail = status(DnsStatus::TempFail);
    EXPECT_FALSE(core::cache_ttl(ClientNames{kTemp, kTemp}, {&fail}));
    EXPECT_FALSE(core::cache_ttl(ClientNames{kTemp, "mx.example"}, {&p, &fail}));
}

TEST(ClientNames, CacheKeepsResultsUntilTheirTtl) {
    smtplb::testing::FakeClock clock;
    core::ClientNameCache cache(clock, 10);
    ClientNames names{"mx.example", "mx.example"};
    cache.store(ip("192.0.2.20"), names, 60s);
    EXPECT_EQ(cache.find(ip("192.0.2.20")), names);
    EXPECT_EQ(cache.find(ip("::ffff:192.0.2.20")), names);  // the same client
    EXPECT_FALSE(cache.find(ip("192.0.2.21")));
    clock.advance(59s);
    EXPECT_TRUE(cache.find(ip("192.0.2.20")));
    clock.advance(1s);
    EXPECT_FALSE(cache.find(ip("192.0.2.20")));
    EXPECT_EQ(cache.size(), 0u);
}

TEST(ClientNames, CacheDropsTheLeastRecentlyUsedBeyondItsBound) {
    smtplb::testing::FakeClock clock;
    core::ClientNameCache cache(clock, 2);
    ClientNames names{"a.example", "a.example"};
    cache.store(ip("192.0.2.1"), names, 60s);
    cache.store(ip("192.0.2.2"), names, 60s);
    EXPECT_TRUE(cache.find(ip("192.0.2.1")));  // 2 is now the least recently used
    cache.store(ip("192.0.2.3"), names, 60s);
    EXPECT_EQ(cache.size(), 2u);
    EXPECT_TRUE(cache.find(ip("192.0.2.1")));
    EXPECT_FALSE(cache.find(ip("192.0.2.2")));
    EXPECT_TRUE(cache.find(ip("192.0.2.3")));
    // Storing again refreshes instead of adding.
    cache.store(ip("192.0.2.3"), ClientNames{"b.example", "b.example"}, 60s);
    EXPECT_EQ(cache.size(), 2u);
    EXPECT_EQ(cache.find(ip("192.0.2.3"))->name, "b.example");

    core::ClientNameCache none(clock, 0);
    none.store(ip("192.0.2.1"), names, 60s);
    EXPECT_FALSE(none.find(ip("192.0.2.1")));
}
