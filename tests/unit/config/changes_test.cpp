#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "config/changes.hpp"
#include "config/loader.hpp"

using namespace smtplb::config;

namespace {

const std::string kBase = R"(
[server]
hostname = "mx.example.net"
state_dir = "/tmp"

[[listener]]
name = "internet"
bind = "127.0.0.1:2525"
accepted_domains = ["example.net"]
pool = "hubs"

[[pool]]
name = "hubs"
health = { depth = "mail", interval = "5s" }

[[pool.backend]]
name = "hub1"
address = "127.0.0.1:2601"

[[pool.backend]]
name = "hub2"
address = "127.0.0.1:2602"
weight = 1

[[pool]]
name = "org"

[[pool.backend]]
name = "org1"
address = "127.0.0.1:2701"

[[route]]
recipient_domain = "example.org"
pool = "org"
)";

Config load(const std::string& text) {
    auto loaded = load_string(text, "test.toml");
    EXPECT_TRUE(loaded.config) << loaded.diagnostics.format("test.toml");
    return loaded.config ? *loaded.config : Config{};
}

std::string replaced(std::string text, const std::string& from, const std::string& to) {
    auto at = text.find(from);
    EXPECT_NE(at, std::string::npos) << from;
    return text.replace(at, from.size(), to);
}

std::vector<std::string> changes(const std::string& after) {
    return describe_changes(load(kBase), load(after));
}

using Lines = std::vector<std::string>;

}  // namespace

TEST(ConfigChanges, NothingChangedIsEmpty) {
    EXPECT_EQ(changes(kBase), Lines{});
}

TEST(ConfigChanges, AddedListenerWithItsAddress) {
    auto after = kBase + R"(
[[listener]]
name = "internal"
bind = "127.0.0.1:2587"
role = "relay"
trusted_networks = ["10.0.0.0/8"]
pool = "hubs"
)";
    EXPECT_EQ(changes(after), Lines{"added listener internal on 127.0.0.1:2587 (mode smtp, "
                                    "role relay, pool hubs)"});
}

TEST(ConfigChanges, RemovedBackendAndChangedWeight) {
    auto after = replaced(kBase, "weight = 1", "weight = 2");
    after =
        replaced(after, "[[pool.backend]]\nname = \"hub1\"\naddress = \"127.0.0.1:2601\"\n", "");
    EXPECT_EQ(changes(after), (Lines{"removed backend hub1 from pool hubs",
                                     "weight of backend hub2 in pool hubs: 1 -> 2"}));
}

TEST(ConfigChanges, AddedBackendAndMovedAddress) {
    auto after = replaced(kBase, "address = \"127.0.0.1:2602\"", "address = \"127.0.0.1:2603\"");
    after = replaced(after, "[[pool]]\nname = \"org\"\n",
                     "[[pool.backend]]\nname = \"hub3\"\naddress = \"127.0.0.1:2604\"\n"
                     "priority = 20\n\n[[pool]]\nname = \"org\"\n");
    EXPECT_EQ(changes(after), (Lines{"address of backend hub2 in pool hubs: 127.0.0.1:2602 -> "
                                     "127.0.0.1:2603",
                                     "added backend hub3 to pool hubs at 127.0.0.1:2604 "
                                     "(weight 1, priority 20)"}));
}

TEST(ConfigChanges, PoolKeysInlineTablesAndServerKeys) {
    auto after = replaced(kBase, "interval = \"5s\"", "interval = \"10s\", rise = 3");
    after =
        replaced(after, "name = \"hubs\"\n", "name = \"hubs\"\nalgorithm = \"least_pending\"\n");
    after = replaced(after, "hostname = \"mx.example.net\"", "hostname = \"mx2.example.net\"");
    auto got = changes(after);
    ASSERT_EQ(got.size(), 4u) << ::testing::PrintToString(got);
    EXPECT_EQ(got[0], "server.hostname: mx.example.net -> mx2.example.net");
    EXPECT_EQ(got[1], "algorithm of pool hubs: round_robin -> least_pending");
    EXPECT_TRUE(got[2].starts_with("health.interval of pool hubs: ")) << got[2];
    EXPECT_TRUE(got[2].ends_with(" -> " + got[2].substr(got[2].rfind(' ') + 1))) << got[2];
    EXPECT_NE(got[2].find("5"), std::string::npos) << got[2];
    EXPECT_EQ(got[3], "health.rise of pool hubs: 2 -> 3");
}

TEST(ConfigChanges, RemovedPoolIsOneChangeAndRoutesAreCompared) {
    auto after = replaced(kBase,
                          "[[pool]]\nname = \"org\"\n\n[[pool.backend]]\nname = \"org1\"\n"
                          "address = \"127.0.0.1:2701\"\n",
                          "");
    after = replaced(after, "recipient_domain = \"example.org\"\npool = \"org\"",
                     "recipient_domain = \"example.org\"\npool = \"hubs\"");
    EXPECT_EQ(changes(after),
              (Lines{"removed pool org", "removed route recipient_domain example.org to pool org",
                     "added route recipient_domain example.org to pool hubs"}));
}

TEST(ConfigChanges, RemovedAndRenamedListener) {
    auto after = replaced(kBase, "name = \"internet\"\nbind = \"127.0.0.1:2525\"",
                          "name = \"public\"\nbind = \"127.0.0.1:2525\"");
    EXPECT_EQ(changes(after), (Lines{"removed listener internet on 127.0.0.1:2525",
                                     "added listener public on 127.0.0.1:2525 (mode smtp, role "
                                     "inbound, pool hubs)"}));
}

TEST(ConfigChanges, RestartOnlyKeysSaySo) {
    auto after = replaced(kBase, "state_dir = \"/tmp\"", "state_dir = \"/tmp\"\nthreads = 7");
    auto base = load(kBase);
    base.server.threads = 3;
    auto got = describe_changes(base, load(after));
    EXPECT_EQ(got, Lines{"server.threads: 3 -> 7 (takes effect at the next start)"});
}

TEST(ConfigChanges, AdminTokenIsNeverShown) {
    auto before = load(kBase), after = load(kBase);
    after.server.admin_token = "s3cret";
    EXPECT_EQ(describe_changes(before, after), Lines{});
}
