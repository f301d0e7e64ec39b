// pool.discover (issue 28, pools from DNS): its three kinds, its bounds and
// every error at its key and line; `check` prints it.
#include <gtest/gtest.h>

#include "config/describe.hpp"
#include "config/discover_reader.hpp"
#include "config/loader.hpp"
#include "unit/config/diagnostic_matchers.hpp"

using namespace smtplb::config;
using namespace std::chrono_literals;
using test_support::refused_with;

namespace {

const std::string kListener = R"(
[[listener]]
name = "internet"
bind = "127.0.0.1:2525"
accepted_domains = ["example.net"]
pool = "hubs"
)";

LoadResult load(const std::string& pool) {
    return load_string(kListener + pool, "test.toml");
}

std::string pool_with(const std::string& discover) {
    return "[[pool]]\nname = \"hubs\"\ndiscover = " + discover + "\n";
}

}  // namespace

TEST(DiscoverLoader, ReadsEachKindWithDefaultsAndNoStaticBackendNeeded) {
    auto mx = load(pool_with("{ mx = \"Example.ORG.\" }"));
    ASSERT_TRUE(mx.config) << mx.diagnostics.format("test.toml");
    const auto& d = *mx.config->pools[0].discover;
    EXPECT_EQ(d.kind, DiscoverKind::Mx);
    EXPECT_EQ(d.name, "example.org");  // lower case, without the final dot
    EXPECT_EQ(d.port, 25);
    EXPECT_EQ(d.min_refresh, 30s);
    EXPECT_EQ(d.max_refresh, 1h);
    EXPECT_TRUE(mx.config->pools[0].backends.empty());

    auto a = load(pool_with(
        "{ a = \"hubs.example.org\", port = 2525, min_refresh = \"5s\", max_refresh = \"10m\" }"));
    ASSERT_TRUE(a.config) << a.diagnostics.format("test.toml");
    EXPECT_EQ(a.config->pools[0].discover->kind, DiscoverKind::A);
    EXPECT_EQ(a.config->pools[0].discover->port, 2525);
    EXPECT_EQ(a.config->pools[0].discover->min_refresh, 5s);
    EXPECT_EQ(a.config->pools[0].discover->max_refresh, 10min);

    auto srv = load(pool_with("{ srv = \"_smtp._tcp.example.org\" }") +
                    "[[pool.backend]]\nname = \"backup\"\naddress = \"127.0.0.1:2600\"\n"
                    "priority = 100\n");
    ASSERT_TRUE(srv.config) << srv.diagnostics.format("test.toml");
    EXPECT_EQ(srv.config->pools[0].discover->kind, DiscoverKind::Srv);
    EXPECT_EQ(srv.config->pools[0].backends.size(), 1u);  // beside the static ones
}

TEST(DiscoverLoader, EveryMistakeIsAnErrorAtItsKeyAndLine) {
    EXPECT_TRUE(refused_with(load(pool_with("{ cname = \"example.org\" }")), "pool[0].discover",
                             "needs one of mx"));
    EXPECT_TRUE(refused_with(load(pool_with("{ cname = \"example.org\" }")),
                             "pool[0].discover.cname", "unknown key"));
    EXPECT_TRUE(refused_with(load(pool_with("{ mx = \"example.org\", a = \"hubs.example.org\" }")),
                             "pool[0].discover.a", "not both mx and a"));
    EXPECT_TRUE(refused_with(load(pool_with("{ mx = \"example.org\", port = 2525 }")),
                             "pool[0].discover.port", "MX hosts take mail on port 25"));
    EXPECT_TRUE(refused_with(load(pool_with("{ srv = \"_smtp._tcp.example.org\", port = 25 }")),
                             "pool[0].discover.port", "SRV records carry their own port"));
    EXPECT_TRUE(refused_with(load(pool_with("{ a = \"hubs.example.org\", port = 0 }")),
                             "pool[0].discover.port", "must be"));
    EXPECT_TRUE(refused_with(load(pool_with("{ mx = \"exa mple.org\" }")), "pool[0].discover.mx",
                             "is not a domain name"));
    EXPECT_TRUE(refused_with(load(pool_with("{ mx = \"localhost\" }")), "pool[0].discover.mx",
                             "is not a domain name"));
    EXPECT_TRUE(
        refused_with(load(pool_with("{ mx = \"\" }")), "pool[0].discover.mx", "must not be empty"));
    EXPECT_TRUE(refused_with(load(pool_with("{ srv = \"smtp.example.org\" }")),
                             "pool[0].discover.srv", "starts with the service and protocol"));
    EXPECT_TRUE(refused_with(load(pool_with("{ mx = \"example.org\", min_refresh = \"0s\" }")),
                             "pool[0].discover.min_refresh", "must be"));
    EXPECT_TRUE(refused_with(
        load(pool_with("{ mx = \"example.org\", min_refresh = \"5m\", max_refresh = \"1m\" }")),
        "pool[0].discover.max_refresh", "must not be less than min_refresh"));
    EXPECT_TRUE(
        refused_with(load(pool_with("\"example.org\"")), "pool[0].discover", "must be a table"));
    // Neither backends nor discover: the pool would never have a backend.
    EXPECT_TRUE(refused_with(load("[[pool]]\nname = \"hubs\"\n"), "pool[0].backend",
                             "at least one [[pool.backend]] or a `discover`"));
}

TEST(DiscoverLoader, NamesAreCheckedLabelByLabel) {
    EXPECT_TRUE(valid_discover_name("example.org"));
    EXPECT_TRUE(valid_discover_name("example.org."));
    EXPECT_TRUE(valid_discover_name("_smtp._tcp.example.org"));
    EXPECT_FALSE(valid_discover_name("example..org"));
    EXPECT_FALSE(valid_discover_name("-bad.example.org"));
    EXPECT_FALSE(valid_discover_name(std::string(64, 'a') + ".org"));
    EXPECT_FALSE(valid_discover_name("org"));
    EXPECT_FALSE(valid_discover_name("ex@mple.org"));
}

TEST(DiscoverLoader, CheckPrintsTheSettingButNotWhatDnsFound) {
    auto r = load(pool_with("{ a = \"hubs.example.org\", port = 2525 }"));
    ASSERT_TRUE(r.config) << r.diagnostics.format("test.toml");
    Backend found;
    found.name = "hubs.example.org@192.0.2.1";
    found.address = {"192.0.2.1", 2525};
    found.discovered_from = "a hubs.example.org port 2525";
    r.config->pools[0].backends.push_back(found);
    auto text = describe(*r.config);
    EXPECT_NE(text.find("discover = { a = \"hubs.example.org\", port = 2525, min_refresh = "
                        "\"30s\", max_refresh = \"1h\" }"),
              std::string::npos)
        << text;
    EXPECT_EQ(text.find("192.0.2.1"), std::string::npos) << text;
}
