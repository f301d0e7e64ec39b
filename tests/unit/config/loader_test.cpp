#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "config/describe.hpp"
#include "config/loader.hpp"

using namespace smtplb::config;

namespace {
const char* kValid = R"(
[server]
hostname = "mx.example.net"
tracking_log = "-"

[[listener]]
name = "internet"
bind = "127.0.0.1:2525"
accepted_domains = ["Example.NET"]
pool = "hubs"
max_message_size = "10MiB"

[[listener]]
name = "internal"
bind = "127.0.0.1:2526"
role = "relay"
trusted_networks = ["10.0.0.0/8", "127.0.0.1"]
pool = "hubs"
client_identity = "proxy-v2"
source_address = "127.0.0.3"

[[pool]]
name = "hubs"
algorithm = "least_pending"

[[pool.backend]]
name = "hub1"
address = "127.0.0.1:2601"
weight = 3

[[pool.backend]]
name = "hub2"
address = "127.0.0.1:2602"
priority = 20

[[pool]]
name = "org"
[[pool.backend]]
name = "org1"
address = "127.0.0.1:2700"

[[route]]
recipient_domain = "example.org"
pool = "org"
)";

bool has_error(const LoadResult& r, const std::string& path, int line, const std::string& text) {
    for (const auto& d : r.diagnostics.items)
        if (d.path == path && (line == 0 || d.line == line) &&
            d.message.find(text) != std::string::npos)
            return true;
    ADD_FAILURE() << "missing '" << path << ":" << line << " " << text << "' in\n"
                  << r.diagnostics.format("test");
    return false;
}
}  // namespace

TEST(ConfigLoader, LoadsAValidFileWithDefaults) {
    auto r = load_string(kValid, "test.toml");
    ASSERT_TRUE(r.config) << r.diagnostics.format("test.toml");
    const auto& c = *r.config;
    ASSERT_EQ(c.listeners.size(), 2u);
    EXPECT_EQ(c.listeners[0].accepted_domains[0], "example.net");
    EXPECT_EQ(c.listeners[0].max_message_size, 10u << 20);
    EXPECT_EQ(c.listeners[0].max_recipients, 100u);
    EXPECT_EQ(c.listeners[1].client_identity, IdentityMode::ProxyV2);
    EXPECT_EQ(c.listeners[1].source_address->to_string(), "127.0.0.3");
    EXPECT_EQ(c.pools[0].algorithm, Algorithm::LeastPending);
    EXPECT_EQ(c.pools[0].backends[0].weight, 3u);
    EXPECT_EQ(c.pools[0].backends[1].priority, 20u);
    EXPECT_EQ(c.routes[0].pool, "org");
    // The effective configuration reads back to the same thing.
    auto again = load_string(describe(c), "described");
    ASSERT_TRUE(again.config) << again.diagnostics.format("described");
    EXPECT_EQ(describe(*again.config), describe(c));
}

TEST(ConfigLoader, ReportsEveryErrorWithPathAndLine) {
    auto r = load_string(R"([server]
hostnme = "typo"

[[listener]]
name = "x"
bind = "localhost:25"
role = "outbound"
pool = "nope"
max_recipients = 0
command_timeout = "5 parsecs"
accepted_domains = ["example.net"]

[[pool]]
name = "p"
algorithm = "fastest"
[[pool.backend]]
name = "b"
address = "127.0.0.1:99999"
weight = 0
)",
                         "bad.toml");
    EXPECT_FALSE(r.config);
    has_error(r, "server.hostnme", 2, "unknown key; did you mean \"hostname\"?");
    has_error(r, "listener[0].bind", 6, "numeric address");
    has_error(r, "listener[0].role", 7, "inbound | relay | submission");
    has_error(r, "listener[0].max_recipients", 9, "between 1 and 100000");
    has_error(r, "listener[0].command_timeout", 10, "duration");
    has_error(r, "pool[0].algorithm", 15, "round_robin");
    has_error(r, "pool[0].backend[0].address", 18, "ADDRESS:PORT");
    has_error(r, "pool[0].backend[0].weight", 19, "between 1 and 1000");
    has_error(r, "listener[0].pool", 0, "no [[pool]] is named \"nope\"");
}

TEST(ConfigLoader, SyntaxErrorHasALine) {
    auto r = load_string("[server]\nhostname = \n", "broken.toml");
    EXPECT_FALSE(r.config);
    ASSERT_FALSE(r.diagnostics.items.empty());
    EXPECT_EQ(r.diagnostics.items[0].line, 2);
}

TEST(ConfigLoader, InboundNeedsDomainsAndRoutesNeedACondition) {
    auto r = load_string(R"(
[[listener]]
name = "in"
bind = "127.0.0.1:25"
pool = "p"
[[pool]]
name = "p"
[[pool.backend]]
name = "b"
address = "127.0.0.1:26"
[[route]]
pool = "p"
[[route]]
recipient = "([a-z"
pool = "p"
)",
                         "t");
    EXPECT_FALSE(r.config);
    has_error(r, "listener[0].accepted_domains", 0, "needs the domains");
    has_error(r, "route[0]", 0, "a route needs a condition");
    has_error(r, "route[1].recipient", 0, "regular expression");
}

// Routes are RE2 patterns (linear time): what RE2 refuses, such as a
// backreference or a lookahead that ECMAScript would take, is a
// configuration error at the key and line of the pattern.
TEST(ConfigLoader, RoutePatternsAreRE2AndRefusalsNameKeyAndLine) {
    std::string text = R"(
[[listener]]
name = "in"
bind = "127.0.0.1:25"
role = "relay"
trusted_networks = ["127.0.0.1"]
pool = "p"
[[pool]]
name = "p"
[[pool.backend]]
name = "b"
address = "127.0.0.1:26"
[[route]]
recipient = "(a+)+@example\\.net"
pool = "p"
[[route]]
pool = "p"
recipient = "(x)\\1@example\\.net"
[[route]]
recipient = "(?=admin)[a-z]+@example\\.net"
pool = "p"
)";
    auto r = load_string(text, "t");
    EXPECT_FALSE(r.config);
    has_error(r, "route[1].recipient", 18, "not a valid RE2 regular expression");
    has_error(r, "route[2].recipient", 20, "not a valid RE2 regular expression");
    for (const auto& d : r.diagnostics.items)
        EXPECT_NE(d.path, "route[0].recipient") << "(a+)+ is valid RE2: " << d.message;
    // Without the two refused routes the same file loads.
    auto good = text.substr(0, text.find("[[route]]\npool"));
    auto loaded = load_string(good, "t");
    ASSERT_TRUE(loaded.config) << loaded.diagnostics.format("t");
    EXPECT_EQ(loaded.config->routes.size(), 1u);
}

TEST(ConfigLoader, ThreadsDefaultToTheCpusAndAreBounded) {
    auto defaulted = load_string(kValid, "t");
    ASSERT_TRUE(defaulted.config);
    EXPECT_EQ(defaulted.config->server.threads, default_threads());
    EXPECT_GE(default_threads(), 1u);
    EXPECT_LE(default_threads(), 16u);
    std::string text = kValid;
    text.replace(text.find("[server]\n"), 9, "[server]\nthreads = 3\n");
    auto three = load_string(text, "t");
    ASSERT_TRUE(three.config);
    EXPECT_EQ(three.config->server.threads, 3u);
    for (const char* wrong : {"threads = 0", "threads = 65", "threads = \"auto\""}) {
        std::string bad = kValid;
        bad.replace(bad.find("[server]\n"), 9, std::string("[server]\n") + wrong + "\n");
        auto r = load_string(bad, "t");
        EXPECT_FALSE(r.config) << wrong;
        EXPECT_TRUE(has_error(r, "server.threads", 3, "")) << wrong;
    }
}

TEST(ConfigLoader, BusyPollIsBoundedAndMayBeOff) {
    auto defaulted = load_string(kValid, "t");
    ASSERT_TRUE(defaulted.config);
    // smtp mode only: no polling; with a tcp-mode listener, 5 µs when there
    // is a second CPU for it.
    EXPECT_EQ(defaulted.config->server.busy_poll_us, 0u);
    std::vector<Listener> listeners(2);
    EXPECT_EQ(default_busy_poll_us(listeners), 0u);
    listeners[1].mode = ListenerMode::Tcp;
    EXPECT_EQ(default_busy_poll_us(listeners), default_threads() > 1 ? 5u : 0u);
    std::string tcp = kValid;
    tcp.replace(tcp.find("source_address"), 0, "mode = \"tcp\"\n");
    auto with_tcp = load_string(tcp, "t");
    ASSERT_TRUE(with_tcp.config) << with_tcp.diagnostics.format("t");
    EXPECT_EQ(with_tcp.config->server.busy_poll_us, default_threads() > 1 ? 5u : 0u);
    for (const auto& [line, expected] :
         {std::pair{"busy_poll_us = 0", 0u}, {"busy_poll_us = 1000", 1000u}}) {
        std::string text = kValid;
        text.replace(text.find("[server]\n"), 9, std::string("[server]\n") + line + "\n");
        auto r = load_string(text, "t");
        ASSERT_TRUE(r.config) << line;
        EXPECT_EQ(r.config->server.busy_poll_us, expected) << line;
    }
    for (const char* wrong :
         {"busy_poll_us = -1", "busy_poll_us = 1001", "busy_poll_us = \"5us\""}) {
        std::string bad = kValid;
        bad.replace(bad.find("[server]\n"), 9, std::string("[server]\n") + wrong + "\n");
        auto r = load_string(bad, "t");
        EXPECT_FALSE(r.config) << wrong;
        EXPECT_TRUE(has_error(r, "server.busy_poll_us", 3, "")) << wrong;
    }
}

TEST(ConfigLoader, NulBytesRejectByDefaultOrStrip) {
    auto defaulted = load_string(kValid, "t");
    ASSERT_TRUE(defaulted.config);
    EXPECT_EQ(defaulted.config->listeners[0].nul_bytes, smtplb::proto::NulBytes::Reject);
    EXPECT_NE(describe(*defaulted.config).find("nul_bytes = \"reject\""), std::string::npos);
    const std::string after = "max_message_size = \"10MiB\"\n";
    std::string strip = kValid;
    strip.replace(strip.find(after), after.size(), after + "nul_bytes = \"strip\"\n");
    auto r = load_string(strip, "t");
    ASSERT_TRUE(r.config) << r.diagnostics.format("t");
    EXPECT_EQ(r.config->listeners[0].nul_bytes, smtplb::proto::NulBytes::Strip);
    EXPECT_EQ(r.config->listeners[1].nul_bytes, smtplb::proto::NulBytes::Reject);
    auto again = load_string(describe(*r.config), "described");
    ASSERT_TRUE(again.config) << again.diagnostics.format("described");
    EXPECT_EQ(again.config->listeners[0].nul_bytes, smtplb::proto::NulBytes::Strip);
    // "keep" is the test sink's, never a listener's: NULs passed on are the
    // smuggling vector.
    for (const char* wrong : {"nul_bytes = \"keep\"", "nul_bytes = \"Strip\"",
                              "nul_bytes = \"normalise\"", "nul_bytes = true"}) {
        std::string bad = kValid;
        bad.replace(bad.find(after), after.size(), after + wrong + "\n");
        auto b = load_string(bad, "t");
        EXPECT_FALSE(b.config) << wrong;
        EXPECT_TRUE(has_error(b, "listener[0].nul_bytes", 12, "")) << wrong;
    }
    std::string keep = kValid;
    keep.replace(keep.find(after), after.size(), after + "nul_bytes = \"keep\"\n");
    EXPECT_TRUE(has_error(load_string(keep, "t"), "listener[0].nul_bytes", 12, "reject | strip"));
}

TEST(ConfigLoader, ClientNameLookupKeys) {
    auto defaulted = load_string(kValid, "t");
    ASSERT_TRUE(defaulted.config);
    const auto& s = defaulted.config->server;
    EXPECT_TRUE(s.dns_servers.empty());  // /etc/resolv.conf's
    EXPECT_EQ(s.dns_timeout, std::chrono::seconds(5));
    EXPECT_EQ(s.client_name_cache_size, 10000u);
    EXPECT_TRUE(defaulted.config->listeners[0].resolve_client_names);

    std::string text = kValid;
    text.replace(text.find("[server]\n"), 9,
                 "[server]\ndns_servers = [\"127.0.0.1:5353\", \"192.0.2.53\", \"[::1]:53\", "
                 "\"2001:db8::53\"]\ndns_timeout = \"2s\"\nclient_name_cache_size = 0\n");
    text.replace(text.find("max_message_size"), 0, "resolve_client_names = false\n");
    auto r = load_string(text, "t");
    ASSERT_TRUE(r.config) << r.diagnostics.format("t");
    const auto& servers = r.config->server.dns_servers;
    ASSERT_EQ(servers.size(), 4u);
    EXPECT_EQ(servers[0].to_string(), "127.0.0.1:5353");
    EXPECT_EQ(servers[1].to_string(), "192.0.2.53:53");
    EXPECT_EQ(servers[2].to_string(), "[::1]:53");
    EXPECT_EQ(servers[3].to_string(), "[2001:db8::53]:53");
    EXPECT_EQ(r.config->server.dns_timeout, std::chrono::seconds(2));
    EXPECT_EQ(r.config->server.client_name_cache_size, 0u);
    EXPECT_FALSE(r.config->listeners[0].resolve_client_names);
    EXPECT_TRUE(r.config->listeners[1].resolve_client_names);
    auto described = describe(*r.config);
    EXPECT_NE(described.find("dns_servers = [\"127.0.0.1:5353\", \"192.0.2.53\""),
              std::string::npos);
    EXPECT_NE(described.find("dns_timeout = \"2s\""), std::string::npos);
    EXPECT_NE(described.find("client_name_cache_size = 0"), std::string::npos);
    EXPECT_NE(described.find("resolve_client_names = false"), std::string::npos);

    for (const auto& [wrong, key] :
         {std::pair{"dns_servers = [\"ns.example:53\"]", "server.dns_servers"},
          {"dns_servers = [\"127.0.0.1:0\"]", "server.dns_servers"},
          {"dns_servers = [\"127.0.0.1:99999\"]", "server.dns_servers"},
          {"dns_servers = \"127.0.0.1\"", "server.dns_servers"},
          {"dns_timeout = \"50ms\"", "server.dns_timeout"},
          {"dns_timeout = \"2m\"", "server.dns_timeout"},
          {"client_name_cache_size = 1000001", "server.client_name_cache_size"},
          {"client_name_cache_size = -1", "server.client_name_cache_size"}}) {
        std::string bad = kValid;
        bad.replace(bad.find("[server]\n"), 9, std::string("[server]\n") + wrong + "\n");
        auto br = load_string(bad, "t");
        EXPECT_FALSE(br.config) << wrong;
        EXPECT_TRUE(has_error(br, key, 3, "")) << wrong;
    }
    std::string bad = kValid;
    bad.replace(bad.find("max_message_size"), 0, "resolve_client_names = \"yes\"\n");
    auto br = load_string(bad, "t");
    EXPECT_FALSE(br.config);
    EXPECT_TRUE(has_error(br, "listener[0].resolve_client_names", 0, ""));
}

TEST(ConfigLoader, SpoolIsReadWithItsBounds) {
    std::string text = kValid;
    text.replace(text.find("algorithm = \"least_pending\""), 27,
                 "algorithm = \"least_pending\"\non_unavailable = \"spool\"");
    auto good = load_string(text + "[spool]\nmax_queue_lifetime = \"2d\"\nconcurrency = 5\n", "t");
    ASSERT_TRUE(good.config);
    EXPECT_TRUE(good.config->uses_spool());
    EXPECT_EQ(good.config->spool.max_queue_lifetime, std::chrono::hours(48));
    EXPECT_EQ(good.config->spool.concurrency, 5u);
    auto bad = load_string(text +
                               "[spool]\nmax_queue_lifetime = \"1s\"\nretry_initial = \"1h\"\n"
                               "retry_max = \"1m\"\nsize = 3\n",
                           "t");
    EXPECT_FALSE(bad.config);
    EXPECT_TRUE(has_error(bad, "spool.max_queue_lifetime", 0, ""));
    EXPECT_TRUE(has_error(bad, "spool.retry_max", 0, "retry_initial"));
    EXPECT_TRUE(has_error(bad, "spool.size", 0, ""));
}

TEST(ConfigLoader, RecipientsFileIsReadAndChecked) {
    auto path = ::testing::TempDir() + "/recipients";
    {
        std::ofstream f(path);
        f << "# known users\nAlice@Example.net\n@sub.example.net  # whole domain\n\n";
    }
    std::string text = kValid;
    text.replace(text.find("max_message_size"), 16,
                 "recipients_file = \"" + path + "\"\nmax_message_size");
    auto good = load_string(text, "t");
    ASSERT_TRUE(good.config) << good.diagnostics.format("t");
    EXPECT_EQ(good.config->listeners[0].known_recipients,
              (std::set<std::string>{"alice@example.net", "@sub.example.net"}));
    {
        std::ofstream f(path);
        f << "alice@example.net\nnot an address\n";
    }
    auto bad = load_string(text, "t");
    EXPECT_FALSE(bad.config);
    EXPECT_TRUE(has_error(bad, "listener[0].recipients_file", 0, "recipients:2: not an address"));
}

TEST(ConfigLoader, HealthAndAdminAreChecked) {
    std::string text = kValid;
    text.replace(text.find("[server]\n"), 9, "[server]\nadmin = \"0.0.0.0:8025\"\n");
    text.replace(
        text.find("algorithm = \"least_pending\""), 27,
        "algorithm = \"least_pending\"\nhealth = { depth = \"rcpt\", mail_from = \"a b@x\" }");
    auto r = load_string(text, "t");
    EXPECT_FALSE(r.config);
    EXPECT_TRUE(has_error(r, "server.admin", 0, "needs admin_token_file"));
    EXPECT_TRUE(has_error(r, "pool[0].health.rcpt_to", 0, "needs a recipient"));
    EXPECT_TRUE(has_error(r, "pool[0].health.mail_from", 0, "plain address"));

    text = kValid;
    text.replace(text.find("algorithm = \"least_pending\""), 27,
                 "algorithm = \"least_pending\"\nhealth = { depth = \"starttls\" }");
    r = load_string(text, "t");
    ASSERT_TRUE(r.config);  // probes speak TLS now
    EXPECT_EQ(r.config->pools[0].health.depth, smtplb::proto::ProbeDepth::Starttls);

    auto ok = load_string(kValid, "t");
    ASSERT_TRUE(ok.config);
    EXPECT_EQ(ok.config->server.admin_bind->port, 8025);
    EXPECT_TRUE(ok.config->pools[0].health.enabled);
    EXPECT_EQ(ok.config->pools[0].health.depth, smtplb::config::HealthDepth::Mail);
}

TEST(ConfigLoader, AdminTokenFileIsReadAndChecked) {
    auto dir = std::filesystem::temp_directory_path();
    auto good = dir / "smtplb-token-good";
    auto shorty = dir / "smtplb-token-short";
    std::ofstream(good) << "0123456789abcdef0123\n";
    std::ofstream(shorty) << "short\n";
    std::string text = kValid;
    text.replace(
        text.find("[server]\n"), 9,
        "[server]\nadmin = \"0.0.0.0:8025\"\nadmin_token_file = \"" + good.string() + "\"\n");
    auto ok = load_string(text, "t");
    ASSERT_TRUE(ok.config) << ok.diagnostics.format("t");
    EXPECT_EQ(ok.config->server.admin_token, "0123456789abcdef0123");
    EXPECT_EQ(ok.config->server.admin_bind->host, "0.0.0.0");
    auto bad = text;
    bad.replace(bad.find(good.string()), good.string().size(), shorty.string());
    auto r = load_string(bad, "t");
    EXPECT_TRUE(has_error(r, "server.admin_token_file", 0, "at least 16"));
    bad = text;
    bad.replace(bad.find(good.string()), good.string().size(), "/nonexistent/token");
    r = load_string(bad, "t");
    EXPECT_TRUE(has_error(r, "server.admin_token_file", 0, "cannot read"));
    std::filesystem::remove(good);
    std::filesystem::remove(shorty);
}

TEST(ConfigLoader, TlsAuthProxyAndTcpModeAreChecked) {
    auto with_internet = [](const std::string& extra) {
        std::string text = kValid;
        text.replace(text.find("max_message_size = \"10MiB\""), 26,
                     "max_message_size = \"10MiB\"\n" + extra);
        return load_string(text, "t");
    };
    auto r = with_internet("tls = { mode = \"starttls\" }");
    EXPECT_TRUE(has_error(r, "listener[0].tls.cert", 0, "needs both cert and key"));
    r = with_internet(
        "tls = { mode = \"starttls\", cert = \"/nonexistent.pem\", key = \"/nonexistent.key\" }");
    EXPECT_TRUE(has_error(r, "listener[0].tls.cert", 0, "cannot read"));
    r = with_internet("tls = { mode = \"sometimes\" }");
    EXPECT_TRUE(has_error(r, "listener[0].tls.mode", 0, "none | starttls | implicit | required"));
    r = with_internet("role = \"submission\"");
    EXPECT_TRUE(has_error(r, "listener[0].tls", 0, "AUTH inside TLS only"));
    r = with_internet("proxy_protocol = \"v2\"");
    EXPECT_TRUE(has_error(r, "listener[0].proxy_trusted_networks", 0, "proxy_protocol needs"));
    r = with_internet("proxy_protocol = \"v2\"\nproxy_trusted_networks = [\"10.0.0.300\"]");
    EXPECT_TRUE(has_error(r, "listener[0].proxy_trusted_networks", 0, "not an address"));
    r = with_internet("mode = \"tcp\"\nclient_identity = \"xclient\"");
    EXPECT_TRUE(has_error(r, "listener[0].client_identity", 0, "cannot send XCLIENT"));
    r = with_internet("mode = \"tcp\"");
    ASSERT_TRUE(r.config);
    EXPECT_EQ(r.config->listeners[0].client_identity, smtplb::config::IdentityMode::None);
    r = with_internet("auth = { verifier = \"dovecot\" }");
    EXPECT_TRUE(has_error(r, "listener[0].auth.dovecot_socket", 0, "needs the auth socket"));

    // Passwords are not sent to backends in plaintext.
    std::string text = kValid;
    text.replace(text.find("max_message_size = \"10MiB\""), 26,
                 "role = \"submission\"\ntls = { mode = \"implicit\", cert = \"/dev/null\", key = "
                 "\"/dev/null\" }");
    r = load_string(text, "t");
    EXPECT_TRUE(has_error(r, "listener[0].auth.verifier", 0, "needs tls"));
    text.replace(text.find("algorithm = \"least_pending\""), 27,
                 "algorithm = \"least_pending\"\ntls = { mode = \"opportunistic\" }");
    r = load_string(text, "t");
    EXPECT_TRUE(r.config) << r.diagnostics.format("t");
}

// kValid with `keys` added to its pool "hubs".
LoadResult with_pool_keys(const std::string& keys) {
    std::string text = kValid;
    text.replace(text.find("algorithm = \"least_pending\""), 27,
                 "algorithm = \"least_pending\"\n" + keys);
    return load_string(text, "t");
}

TEST(ConfigLoader, BackendStepTimeoutsHaveDefaultsAndBounds) {
    using namespace std::chrono_literals;
    auto with_hubs = with_pool_keys;
    auto defaults = with_hubs("");
    ASSERT_TRUE(defaults.config);
    const auto& d = defaults.config->pools[0];
    EXPECT_EQ(d.final_reply_timeout, 10min);  // RFC 5321 §4.5.3.2.6
    EXPECT_EQ(d.data_timeout, 3min);          // RFC 5321 §4.5.3.2.5
    EXPECT_EQ(d.data_min_rate, 500u);

    auto set = with_hubs(
        "final_reply_timeout = \"20m\"\ndata_timeout = \"90s\"\ndata_min_rate = \"64KiB\"");
    ASSERT_TRUE(set.config) << set.diagnostics.format("t");
    const auto& p = set.config->pools[0];
    EXPECT_EQ(p.final_reply_timeout, 20min);
    EXPECT_EQ(p.data_timeout, 90s);
    EXPECT_EQ(p.data_min_rate, 65536u);
    // The effective configuration shows them and reads back the same.
    auto described = describe(*set.config);
    EXPECT_NE(described.find("final_reply_timeout = \"20m\""), std::string::npos);
    EXPECT_NE(described.find("data_timeout = \"90s\""), std::string::npos);
    EXPECT_NE(described.find("data_min_rate = \"64KiB\""), std::string::npos);
    auto again = load_string(described, "described");
    ASSERT_TRUE(again.config) << again.diagnostics.format("described");
    EXPECT_EQ(describe(*again.config), described);

    auto bad =
        with_hubs("final_reply_timeout = \"500ms\"\ndata_timeout = \"2h\"\ndata_min_rate = 0");
    EXPECT_FALSE(bad.config);
    EXPECT_TRUE(has_error(bad, "pool[0].final_reply_timeout", 0, ""));
    EXPECT_TRUE(has_error(bad, "pool[0].data_timeout", 0, ""));
    EXPECT_TRUE(has_error(bad, "pool[0].data_min_rate", 0, "between 1B and"));
}

TEST(ConfigLoader, ABodyWriteGetsTimeInProportionToItsSizeUpToDataTimeout) {
    using namespace std::chrono_literals;
    smtplb::config::Pool pool;  // 500 bytes/s, at most 3 minutes
    EXPECT_EQ(body_write_budget(pool, 0), kBodyWriteFloor);
    EXPECT_EQ(body_write_budget(pool, 5000), kBodyWriteFloor + 10s);
    EXPECT_EQ(body_write_budget(pool, 250), kBodyWriteFloor + 500ms);
    EXPECT_EQ(body_write_budget(pool, 256 * 1024), 3min);
    EXPECT_EQ(body_write_budget(pool, UINT64_MAX), 3min);  // no overflow
    pool.data_min_rate = 1 << 20;
    EXPECT_EQ(body_write_budget(pool, 256 * 1024), kBodyWriteFloor + 250ms);
    pool.data_timeout = 5s;  // below the floor: data_timeout still bounds it
    EXPECT_EQ(body_write_budget(pool, 1), 5s);
}

TEST(ConfigLoader, ConnectionCapIsUnlimitedByDefaultAndBounded) {
    using namespace std::chrono_literals;
    auto edit = [](const std::string& pool_keys, const std::string& hub1_keys) {
        std::string text = kValid;
        text.replace(text.find("algorithm = \"least_pending\""), 27,
                     "algorithm = \"least_pending\"\n" + pool_keys);
        text.replace(text.find("weight = 3"), 10, "weight = 3\n" + hub1_keys);
        return load_string(text, "t");
    };
    auto defaults = edit("", "");
    ASSERT_TRUE(defaults.config);
    EXPECT_EQ(defaults.config->pools[0].backends[0].max_connections, 0u);  // no limit
    EXPECT_EQ(defaults.config->pools[0].connection_wait, 5s);

    auto set = edit("connection_wait = \"250ms\"", "max_connections = 20");
    ASSERT_TRUE(set.config) << set.diagnostics.format("t");
    EXPECT_EQ(set.config->pools[0].backends[0].max_connections, 20u);
    EXPECT_EQ(set.config->pools[0].backends[1].max_connections, 0u);
    EXPECT_EQ(set.config->pools[0].connection_wait, 250ms);
    auto described = describe(*set.config);
    EXPECT_NE(described.find("max_connections = 20\n"), std::string::npos);
    EXPECT_NE(described.find("connection_wait = \"250ms\""), std::string::npos);
    auto again = load_string(described, "described");
    ASSERT_TRUE(again.config) << again.diagnostics.format("described");
    EXPECT_EQ(describe(*again.config), described);
    // 0 s: a backend at its cap is skipped at once.
    EXPECT_TRUE(edit("connection_wait = \"0s\"", "").config);

    auto bad = edit("connection_wait = \"6m\"", "max_connections = 1000001");
    EXPECT_FALSE(bad.config);
    EXPECT_TRUE(has_error(bad, "pool[0].connection_wait", 0, "between 0s and 5m, not 6m"));
    EXPECT_TRUE(has_error(bad, "pool[0].backend[0].max_connections", 0, "between 0 and 1000000"));
    auto negative = edit("connection_wait = 5", "max_connections = -1");
    EXPECT_FALSE(negative.config);
    EXPECT_TRUE(has_error(negative, "pool[0].connection_wait", 0, "a duration"));
    EXPECT_TRUE(has_error(negative, "pool[0].backend[0].max_connections", 0, "between 0 and"));
}

TEST(ConfigLoader, BackendHoldTimeStaysBelowABackendsCommandTimeout) {
    using namespace std::chrono_literals;
    auto edit = with_pool_keys;
    auto defaults = edit("");
    ASSERT_TRUE(defaults.config);
    EXPECT_EQ(defaults.config->pools[0].backend_hold_time, 1s);
    auto set = edit("backend_hold_time = \"5s\"");
    ASSERT_TRUE(set.config) << set.diagnostics.format("t");
    EXPECT_EQ(set.config->pools[0].backend_hold_time, 5s);
    EXPECT_NE(describe(*set.config).find("backend_hold_time = \"5s\""), std::string::npos);
    // Longer than Postfix's smtpd_timeout under stress would let the backend
    // time out first (a 421 that counts against its health).
    for (const char* value : {"\"6s\"", "\"50ms\"", "\"abc\""}) {
        auto bad = edit(std::string("backend_hold_time = ") + value);
        EXPECT_FALSE(bad.config) << value;
        EXPECT_TRUE(has_error(bad, "pool[0].backend_hold_time", 0, "")) << value;
    }
}
