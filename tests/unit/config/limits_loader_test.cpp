#include <gtest/gtest.h>

#include "config/changes.hpp"
#include "config/limits_reader.hpp"
#include "config/loader.hpp"
#include "unit/config/diagnostic_matchers.hpp"

using namespace smtplb::config;
using namespace std::chrono_literals;

namespace {

const std::string kBase = R"(
[[listener]]
name = "internet"
bind = "127.0.0.1:2525"
accepted_domains = ["example.net"]
pool = "hubs"

[[pool]]
name = "hubs"
[[pool.backend]]
name = "hub1"
address = "127.0.0.1:2601"
)";

LoadResult load(const std::string& limits) {
    return load_string(kBase + limits, "test.toml");
}

::testing::AssertionResult fails(const std::string& limits, const std::string& path,
                                 const std::string& text) {
    return test_support::refused_with(load(limits), path, text);
}

}  // namespace

TEST(LimitsLoader, ReadsEveryKindOfLimit) {
    auto r = load(R"(
[[limit]]
name = "per-sender"
key = "sender"
messages = "10/1m"
burst = 5

[[limit]]
name = "net-domain"
key = ["client_network", "sender_domain"]
ipv4_prefix = 16
ipv6_prefix = 48
recipients = "1000/h"
action = "delay"
delay = "10s"
listeners = ["internet"]
exempt_networks = ["10.0.0.0/8", "192.0.2.1"]
exempt_auth_users = ["monitor"]
max_keys = 5000

[[limit]]
name = "volume"
key = "auth_user"
bytes = "500MiB/1d"
burst = "50MiB"
reply = "451 4.7.1 You have sent too much today"

[[limit]]
name = "conns"
key = "client_ip"
concurrent_connections = 20
reply = "421 4.7.0 Too many connections"

[[limit]]
name = "tx"
key = ["listener", "auth_user"]
concurrent_transactions = 3
)");
    ASSERT_TRUE(r.config) << r.diagnostics.format("test.toml");
    const auto& l = r.config->limits;
    ASSERT_EQ(l.size(), 5u);
    EXPECT_EQ(l[0].name, "per-sender");
    EXPECT_EQ(l[0].key, std::vector<LimitKeyPart>{LimitKeyPart::Sender});
    EXPECT_EQ(l[0].counts, LimitCounts::Messages);
    EXPECT_EQ(l[0].quantity, 10u);
    EXPECT_EQ(l[0].period, 1min);
    EXPECT_EQ(l[0].burst, 5u);
    EXPECT_EQ(l[0].action, LimitAction::Tempfail);
    EXPECT_FALSE(l[0].reply);
    EXPECT_EQ(l[0].max_keys, 100000u);
    EXPECT_EQ(l[1].key,
              (std::vector<LimitKeyPart>{LimitKeyPart::ClientNetwork, LimitKeyPart::SenderDomain}));
    EXPECT_EQ(l[1].ipv4_prefix, 16u);
    EXPECT_EQ(l[1].ipv6_prefix, 48u);
    EXPECT_EQ(l[1].counts, LimitCounts::Recipients);
    EXPECT_EQ(l[1].period, 1h);
    EXPECT_EQ(l[1].burst, 1000u);  // the whole quantity at once by default
    EXPECT_EQ(l[1].action, LimitAction::Delay);
    EXPECT_EQ(l[1].delay, 10s);
    EXPECT_EQ(l[1].listeners, std::vector<std::string>{"internet"});
    EXPECT_EQ(l[1].exempt_networks.size(), 2u);
    EXPECT_EQ(l[1].exempt_auth_users, std::vector<std::string>{"monitor"});
    EXPECT_EQ(l[1].max_keys, 5000u);
    EXPECT_TRUE(l[0].shared);  // with a [cluster]: shared unless it says otherwise
    EXPECT_EQ(l[2].counts, LimitCounts::Bytes);
    EXPECT_EQ(l[2].quantity, 500ull << 20);
    EXPECT_EQ(l[2].period, 24h);
    EXPECT_EQ(l[2].burst, 50ull << 20);
    ASSERT_TRUE(l[2].reply);
    EXPECT_EQ(l[2].reply->wire(), "451 4.7.1 You have sent too much today\r\n");
    EXPECT_EQ(l[3].counts, LimitCounts::ConcurrentConnections);
    EXPECT_EQ(l[3].concurrency, 20u);
    EXPECT_EQ(l[3].reply->code, 421);
    EXPECT_EQ(l[4].counts, LimitCounts::ConcurrentTransactions);
    EXPECT_EQ(l[4].concurrency, 3u);
}

TEST(LimitsLoader, NoLimitsIsFine) {
    auto r = load("");
    ASSERT_TRUE(r.config);
    EXPECT_TRUE(r.config->limits.empty());
}

TEST(LimitsLoader, ParsesRates) {
    auto r = parse_rate("10/1m", false);
    ASSERT_TRUE(r);
    EXPECT_EQ(r->quantity, 10u);
    EXPECT_EQ(r->period, 1min);
    EXPECT_EQ(parse_rate("100/h", false)->period, 1h);
    EXPECT_EQ(parse_rate(" 5 / 30s ", false)->period, 30s);
    EXPECT_EQ(parse_rate("1GiB/1d", true)->quantity, 1ull << 30);
    EXPECT_FALSE(parse_rate("1GiB/1d", false));
    EXPECT_FALSE(parse_rate("10", false));
    EXPECT_FALSE(parse_rate("10/", false));
    EXPECT_FALSE(parse_rate("/1m", false));
    EXPECT_FALSE(parse_rate("-1/1m", false));
    EXPECT_FALSE(parse_rate("ten/1m", false));
    EXPECT_FALSE(parse_rate("10/1 fortnight", false));
    EXPECT_FALSE(parse_rate("99999999999999999999/1m", false));
}

TEST(LimitsLoader, RefusesBadNamesAndKeys) {
    const std::string rest = "\nmessages = \"10/1m\"\n";
    EXPECT_TRUE(fails("[[limit]]\nkey = \"sender\"" + rest, "limit[0].name", "is required"));
    EXPECT_TRUE(fails("[[limit]]\nname = \"a b\"\nkey = \"sender\"" + rest, "limit[0].name",
                      "letters, digits"));
    EXPECT_TRUE(fails("[[limit]]\nname = \"x\"" + rest, "limit[0].key", "is required"));
    EXPECT_TRUE(fails("[[limit]]\nname = \"x\"\nkey = \"helo\"" + rest, "limit[0].key",
                      "\"helo\" is not one of client_ip | client_network"));
    EXPECT_TRUE(fails("[[limit]]\nname = \"x\"\nkey = []" + rest, "limit[0].key", "at least one"));
    EXPECT_TRUE(fails("[[limit]]\nname = \"x\"\nkey = [\"sender\", \"sender\"]" + rest,
                      "limit[0].key", "given twice"));
    EXPECT_TRUE(
        fails("[[limit]]\nname = \"x\"\nkey = 3" + rest, "limit[0].key", "an array of strings"));
    EXPECT_TRUE(fails("[[limit]]\nname = \"x\"\nkey = \"sender\"" + rest +
                          "[[limit]]\nname = \"x\"\nkey = \"sender\"" + rest,
                      "limit[1].name", "duplicate limit name \"x\""));
}

TEST(LimitsLoader, NeedsExactlyOneThingCountedWithAValidRate) {
    const std::string head = "[[limit]]\nname = \"x\"\nkey = \"sender\"\n";
    EXPECT_TRUE(fails(head, "limit[0]", "exactly one of connections, messages"));
    EXPECT_TRUE(
        fails(head + "messages = \"1/1m\"\nrecipients = \"1/1m\"\n", "limit[0]", "exactly one of"));
    EXPECT_TRUE(fails(head + "messages = 10\n", "limit[0].messages", "QUANTITY/PERIOD"));
    EXPECT_TRUE(fails(head + "messages = \"10/1 week\"\n", "limit[0].messages", "\"10/1m\""));
    EXPECT_TRUE(fails(head + "bytes = \"ten/1m\"\n", "limit[0].bytes", "\"500MiB/1h\""));
    EXPECT_TRUE(fails(head + "messages = \"0/1m\"\n", "limit[0].messages", "quantity must be"));
    EXPECT_TRUE(fails(head + "messages = \"10/100ms\"\n", "limit[0].messages",
                      "period must be between 1s and 31d"));
    EXPECT_TRUE(fails(head + "messages = \"10/60d\"\n", "limit[0].messages", "period must be"));
    EXPECT_TRUE(fails(head + "concurrent_transactions = 0\n", "limit[0].concurrent_transactions",
                      "between 1 and 1000000"));
    EXPECT_TRUE(fails(head + "concurrent_transactions = \"5\"\n",
                      "limit[0].concurrent_transactions", "an integer"));
    EXPECT_TRUE(
        fails(head + "messages = \"10/1m\"\nburst = 0\n", "limit[0].burst", "between 1 and"));
    EXPECT_TRUE(fails(head + "messages = \"10/1m\"\nburst = \"5MiB\"\n", "limit[0].burst",
                      "must be an integer between"));
    EXPECT_TRUE(
        fails(head + "concurrent_transactions = 5\nburst = 2\n", "limit[0].burst", "only a rate"));
}

TEST(LimitsLoader, RefusesKeysNotKnownWhereTheLimitIsCounted) {
    EXPECT_TRUE(fails("[[limit]]\nname = \"x\"\nkey = \"sender\"\nconnections = \"10/1m\"\n",
                      "limit[0].key", "only client_ip, client_network and listener"));
    EXPECT_TRUE(
        fails("[[limit]]\nname = \"x\"\nkey = [\"client_ip\", \"auth_user\"]\n"
              "concurrent_connections = 3\n",
              "limit[0].key", "not \"auth_user\""));
    EXPECT_TRUE(
        fails("[[limit]]\nname = \"x\"\nkey = \"recipient_domain\"\n"
              "concurrent_transactions = 3\n",
              "limit[0].key", "before any recipient"));
}

TEST(LimitsLoader, ChecksActionsRepliesAndScope) {
    const std::string head = "[[limit]]\nname = \"x\"\nkey = \"client_ip\"\n";
    const std::string rate = head + "messages = \"10/1m\"\n";
    EXPECT_TRUE(fails(rate + "action = \"drop\"\n", "limit[0].action", "one of tempfail | delay"));
    EXPECT_TRUE(fails(rate + "action = \"delay\"\n", "limit[0].delay", "the longest hold"));
    EXPECT_TRUE(fails(rate + "action = \"delay\"\ndelay = \"1h\"\n", "limit[0].delay",
                      "between 100ms and 5m"));
    EXPECT_TRUE(fails(head + "concurrent_connections = 3\naction = \"delay\"\ndelay = \"5s\"\n",
                      "limit[0].action", "can only tempfail"));
    EXPECT_TRUE(fails(rate + "reply = \"550 5.7.1 No\"\n", "limit[0].reply", "4xx code"));
    EXPECT_TRUE(fails(rate + "reply = \"45 nope\"\n", "limit[0].reply", "4xx code"));
    EXPECT_TRUE(fails(rate + "reply = \"451\"\n", "limit[0].reply", "needs a text"));
    EXPECT_TRUE(fails(rate + "reply = \"451 4.7.1\"\n", "limit[0].reply", "needs a text"));
    EXPECT_TRUE(fails(rate + "reply = \"451 5.7.1 Slow\"\n", "limit[0].reply", "4.X.Y"));
    EXPECT_TRUE(fails(rate + "reply = \"451 4..1 Slow\"\n", "limit[0].reply", "4.X.Y"));
    EXPECT_TRUE(fails(rate + "reply = \"451 Slow\\u0007\"\n", "limit[0].reply", "printable ASCII"));
    EXPECT_TRUE(fails(rate + "reply = \"451 " + std::string(500, 'x') + "\"\n", "limit[0].reply",
                      "at most 400"));
    EXPECT_TRUE(fails(head + "connections = \"10/1m\"\nreply = \"451 4.7.1 Slow\"\n",
                      "limit[0].reply", "must be 421"));
    EXPECT_TRUE(fails(rate + "listeners = [\"intranet\"]\n", "limit[0].listeners",
                      "no [[listener]] is named \"intranet\""));
    EXPECT_TRUE(fails(rate + "exempt_networks = [\"10.0.0.0/33\"]\n", "limit[0].exempt_networks",
                      "not an address"));
    EXPECT_TRUE(fails(rate + "exempt_auth_users = [\"\"]\n", "limit[0].exempt_auth_users",
                      "exempt nobody"));
    EXPECT_TRUE(fails(rate + "max_keys = 0\n", "limit[0].max_keys", "between 1 and 10000000"));
    EXPECT_TRUE(fails(rate + "shared = \"no\"\n", "limit[0].shared", ""));
    EXPECT_TRUE(fails(rate + "speed = 3\n", "limit[0].speed", "unknown key"));
    EXPECT_TRUE(fails(rate + "bursts = 3\n", "limit[0].bursts", "did you mean \"burst\"?"));
    // A reply without an enhanced code is fine.
    auto r = load(rate + "reply = \"451 Slow down\"\n");
    ASSERT_TRUE(r.config) << r.diagnostics.format("test.toml");
    EXPECT_EQ(r.config->limits[0].reply->wire(), "451 Slow down\r\n");
}

TEST(LimitsLoader, WarnsAboutKeysThatDoNothing) {
    auto r = load(
        "[[limit]]\nname = \"x\"\nkey = \"client_ip\"\nmessages = \"10/1m\"\nipv4_prefix = 16\n"
        "delay = \"5s\"\n");
    ASSERT_TRUE(r.config) << r.diagnostics.format("test.toml");
    int warnings = 0;
    for (const auto& d : r.diagnostics.items)
        warnings += d.severity == Diagnostic::Severity::Warning;
    // The two (and no "not enforced": sessions apply the limits).
    EXPECT_EQ(warnings, 2) << r.diagnostics.format("test.toml");
    EXPECT_EQ(r.diagnostics.format("test.toml").find("enforced"), std::string::npos);
}

TEST(LimitsLoader, TheEffectiveConfigurationReadsBackTheSame) {
    auto r = load(R"(
[[limit]]
name = "net"
key = ["client_network", "sender_domain"]
ipv4_prefix = 16
recipients = "1000/h"
action = "delay"
delay = "10s"
listeners = ["internet"]
exempt_networks = ["10.0.0.0/8"]
exempt_auth_users = ["monitor"]

[[limit]]
name = "volume"
key = "auth_user"
bytes = "500MiB/1d"
burst = "50MiB"
reply = "451 4.7.1 Too \"much\" today"

[[limit]]
name = "conns"
key = "client_ip"
concurrent_connections = 20
)");
    ASSERT_TRUE(r.config) << r.diagnostics.format("test.toml");
    auto text = describe_limits(r.config->limits);
    EXPECT_NE(text.find("recipients = \"1000/1h\"\nburst = 1000\nipv4_prefix = 16\n"),
              std::string::npos)
        << text;
    EXPECT_NE(text.find("bytes = \"500MiB/1d\"\nburst = 52428800\n"), std::string::npos) << text;
    auto again = load(text);
    ASSERT_TRUE(again.config) << again.diagnostics.format("described") << text;
    EXPECT_EQ(describe_limits(again.config->limits), text);
}

TEST(LimitsLoader, AReloadSaysWhichLimitsWereAddedRemovedOrChanged) {
    const std::string one =
        "[[limit]]\nname = \"per-sender\"\nkey = \"sender\"\nmessages = \"10/1m\"\n";
    const std::string two =
        "[[limit]]\nname = \"conns\"\nkey = \"client_ip\"\nconcurrent_connections = 5\n";
    auto before = load(one + two),
         after = load(
             "[[limit]]\nname = \"per-sender\"\nkey = \"sender\"\nmessages = \"20/1m\"\n"
             "burst = 10\n"
             "[[limit]]\nname = \"volume\"\nkey = \"sender\"\nbytes = \"1GiB/1d\"\n");
    ASSERT_TRUE(before.config && after.config);
    EXPECT_EQ(describe_changes(*before.config, *after.config),
              (std::vector<std::string>{"removed limit conns",
                                        "messages of limit per-sender: 10/1m -> 20/1m",
                                        "added limit volume",
                                        "counts start afresh for the changed limits: "
                                        "per-sender"}));
    EXPECT_TRUE(describe_changes(*before.config, *before.config).empty());
}

TEST(LimitsLoader, SharedFalseKeepsALimitThisNodesOwn) {
    auto r = load(
        "[[limit]]\nname = \"x\"\nkey = \"client_ip\"\nmessages = \"10/1m\"\n"
        "shared = false\n");
    ASSERT_TRUE(r.config) << r.diagnostics.format("test.toml");
    EXPECT_FALSE(r.config->limits[0].shared);
    EXPECT_NE(describe_limits(r.config->limits).find("shared = false\n"), std::string::npos);
}
