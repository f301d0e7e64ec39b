// [[route]] conditions on the session (issue 27, tenants): auth_user,
// client_network, listener; their checks, `check`'s output and the reload
// summary.
#include <gtest/gtest.h>

#include "config/changes.hpp"
#include "config/describe.hpp"
#include "config/loader.hpp"
#include "core/audit_routing.hpp"
#include "unit/config/diagnostic_matchers.hpp"

using namespace smtplb::config;

namespace {

const std::string kBase = R"(
[[listener]]
name = "internet"
bind = "127.0.0.1:2525"
accepted_domains = ["example.net"]
pool = "hubs"

[[listener]]
name = "submission"
bind = "127.0.0.1:2587"
role = "submission"
pool = "hubs"
tls = { mode = "starttls", cert = "/dev/null", key = "/dev/null" }
auth = { verifier = "dovecot", dovecot_socket = "/run/dovecot/auth-client" }

[[listener]]
name = "passthrough"
bind = "127.0.0.1:2526"
mode = "tcp"
pool = "hubs"

[[pool]]
name = "hubs"
[[pool.backend]]
name = "hub1"
address = "127.0.0.1:2601"

[[pool]]
name = "acme"
[[pool.backend]]
name = "acme1"
address = "127.0.0.1:2701"
)";

LoadResult load(const std::string& routes) {
    return load_string(kBase + routes, "test.toml");
}

using test_support::says;

::testing::AssertionResult fails(const std::string& routes, const std::string& path,
                                 const std::string& text) {
    auto r = load(routes);
    if (r.config) return ::testing::AssertionFailure() << "loaded without error";
    return says(r, Diagnostic::Severity::Error, path, text);
}
::testing::AssertionResult warns(const std::string& routes, const std::string& path,
                                 const std::string& text) {
    auto r = load(routes);
    if (!r.config) return ::testing::AssertionFailure() << r.diagnostics.format("test.toml");
    return says(r, Diagnostic::Severity::Warning, path, text);
}

}  // namespace

TEST(RoutesLoader, ReadsSessionConditionsAsOneValueOrAList) {
    auto r = load(R"(
[[route]]
auth_user = ["acme", "acme-billing"]
client_network = "10.1.0.0/16"
listener = "submission"
pool = "acme"

[[route]]
client_network = ["192.0.2.7", "2001:db8::/32"]
recipient_domain = "Example.ORG"
pool = "acme"
)");
    ASSERT_TRUE(r.config) << r.diagnostics.format("test.toml");
    EXPECT_TRUE(r.diagnostics.items.empty()) << r.diagnostics.format("test.toml");
    const auto& routes = r.config->routes;
    ASSERT_EQ(routes.size(), 2u);
    EXPECT_EQ(routes[0].auth_users, (std::vector<std::string>{"acme", "acme-billing"}));
    ASSERT_EQ(routes[0].client_networks.size(), 1u);
    EXPECT_EQ(routes[0].client_networks[0].prefix, 16);
    EXPECT_EQ(routes[0].listeners, std::vector<std::string>{"submission"});
    EXPECT_FALSE(routes[0].on_recipient());
    EXPECT_TRUE(routes[0].serves("submission"));
    EXPECT_FALSE(routes[0].serves("internet"));
    EXPECT_EQ(routes[1].client_networks.size(), 2u);
    EXPECT_EQ(routes[1].recipient_domain, "example.org");
    EXPECT_TRUE(routes[1].serves("internet"));  // no listener named: all of them
}

TEST(RoutesLoader, EveryBadConditionIsAnErrorAtItsKeyAndLine) {
    EXPECT_TRUE(fails("[[route]]\npool = \"acme\"\n", "route[0]", "a route needs a condition"));
    EXPECT_TRUE(
        fails("[[route]]\nrecipient_domain = \"a.example\"\nrecipient = \".*\"\n"
              "pool = \"acme\"\n",
              "route[0]", "not both"));
    EXPECT_TRUE(fails("[[route]]\nclient_network = [\"10.1.0.0/33\"]\npool = \"acme\"\n",
                      "route[0].client_network", "\"10.1.0.0/33\" is not an address or a network"));
    EXPECT_TRUE(fails("[[route]]\nclient_network = 10\npool = \"acme\"\n",
                      "route[0].client_network", "an array of strings"));
    EXPECT_TRUE(fails("[[route]]\nlistener = \"nosuch\"\npool = \"acme\"\n", "route[0].listener",
                      "no [[listener]] is named \"nosuch\""));
    EXPECT_TRUE(fails("[[route]]\nauth_user = \"\"\npool = \"acme\"\n", "route[0].auth_user",
                      "a login is 1 to 512 characters"));
    EXPECT_TRUE(fails("[[route]]\nauth_user = [\"@\"]\npool = \"acme\"\n", "route[0].auth_user",
                      "a login, or \"@\" and a domain"));
    EXPECT_TRUE(fails("[[route]]\nauth_user = [\"@a@b.example\"]\npool = \"acme\"\n",
                      "route[0].auth_user", "a login, or \"@\" and a domain"));
    EXPECT_TRUE(fails("[[route]]\nauth_user = \"acme\"\npool = \"nosuch\"\n", "route[0].pool",
                      "no [[pool]] is named \"nosuch\""));
    std::string many = "[[route]]\nclient_network = [";
    for (int i = 0; i < 1001; ++i)
        many += "\"10.0." + std::to_string(i / 256) + "." + std::to_string(i % 256) + "\",";
    EXPECT_TRUE(
        fails(many + "]\npool = \"acme\"\n", "route[0].client_network", "more than 1000 networks"));
}

TEST(RoutesLoader, ConditionsNoSessionCanMeetAreWarnings) {
    // Only "submission" offers AUTH.
    EXPECT_TRUE(
        warns("[[route]]\nauth_user = \"acme\"\nlistener = [\"internet\", \"submission\"]\n"
              "pool = \"acme\"\n",
              "route[0].auth_user", "listener \"internet\" offers no AUTH"));
    EXPECT_TRUE(warns("[[route]]\nlistener = \"passthrough\"\npool = \"acme\"\n",
                      "route[0].listener", "routes apply to smtp listeners only"));
    auto no_auth = kBase;
    no_auth.replace(no_auth.find("role = \"submission\""), 19,
                    "role = \"inbound\"\naccepted_domains = [\"example.net\"]");
    auto r = load_string(no_auth + "[[route]]\nauth_user = \"acme\"\npool = \"acme\"\n", "t");
    ASSERT_TRUE(r.config) << r.diagnostics.format("t");
    EXPECT_TRUE(
        says(r, Diagnostic::Severity::Warning, "route[0].auth_user", "no listener offers AUTH"));
    // A login route with the submission listener in it draws nothing.
    auto fine = load("[[route]]\nauth_user = \"acme\"\npool = \"acme\"\n");
    ASSERT_TRUE(fine.config);
    EXPECT_TRUE(fine.diagnostics.items.empty()) << fine.diagnostics.format("test.toml");
}

// `check` prints the conditions, and what it prints loads back the same.
TEST(RoutesLoader, DescribedRoutesLoadBackAndChangesAreReported) {
    const std::string routes = R"(
[[route]]
auth_user = ["acme", "acme-billing"]
client_network = ["10.1.0.0/16"]
listener = ["submission"]
pool = "acme"
)";
    auto r = load(routes);
    ASSERT_TRUE(r.config) << r.diagnostics.format("test.toml");
    auto text = describe(*r.config);
    EXPECT_NE(text.find("[[route]]\nauth_user = [\"acme\", \"acme-billing\"]\n"
                        "client_network = [\"10.1.0.0/16\"]\nlistener = [\"submission\"]\n"
                        "pool = \"acme\"\n"),
              std::string::npos)
        << text;
    auto again = load_string(text, "described");
    ASSERT_TRUE(again.config) << again.diagnostics.format("described");
    EXPECT_EQ(describe(*again.config), text);
    EXPECT_TRUE(describe_changes(*r.config, *again.config).empty());

    auto moved = routes;
    moved.replace(moved.find("\"10.1.0.0/16\""), 13, "\"10.2.0.0/16\"");
    auto after = load(moved);
    ASSERT_TRUE(after.config);
    EXPECT_EQ(describe_changes(*r.config, *after.config),
              (std::vector<std::string>{
                  "removed route auth_user [\"acme\", \"acme-billing\"] client_network "
                  "[\"10.1.0.0/16\"] listener [\"submission\"] to pool acme",
                  "added route auth_user [\"acme\", \"acme-billing\"] client_network "
                  "[\"10.2.0.0/16\"] listener [\"submission\"] to pool acme"}));
}

// Health probes of a pool go out as the listeners that feed it do: a route
// restricted to one listener makes only that one a feeder.
TEST(RoutesLoader, ProbeOriginFollowsOnlyTheListenersARouteServes) {
    auto with_proxy = kBase;
    with_proxy.replace(with_proxy.find("name = \"internet\"\n"), 18,
                       "name = \"internet\"\nclient_identity = \"proxy-v2\"\n");
    auto only_submission = load_string(
        with_proxy +
            "[[route]]\nauth_user = \"acme\"\nlistener = \"submission\"\npool = \"acme\"\n",
        "t");
    ASSERT_TRUE(only_submission.config) << only_submission.diagnostics.format("t");
    EXPECT_EQ(probe_origin(*only_submission.config, "acme").identity, IdentityMode::None);
    auto everywhere =
        load_string(with_proxy + "[[route]]\nauth_user = \"acme\"\npool = \"acme\"\n", "t");
    ASSERT_TRUE(everywhere.config);
    EXPECT_EQ(probe_origin(*everywhere.config, "acme").identity, IdentityMode::ProxyV2);
}

// A transparent listener's backends must route replies back through smtplb:
// `audit` looks at the pools that listener feeds, and a route kept to another
// listener does not make its pool one of them.
TEST(RoutesLoader, TransparentTargetsFollowOnlyTheListenersARouteServes) {
    const std::string base = R"(
[[listener]]
name = "edge"
bind = "0.0.0.0:25"
accepted_domains = ["example.net"]
pool = "hubs"
client_identity = "transparent"
[[listener]]
name = "internal"
bind = "10.3.0.1:587"
accepted_domains = ["example.net"]
pool = "hubs"
[[pool]]
name = "hubs"
[[pool.backend]]
name = "hub1"
address = "10.1.1.21:25"
[[pool]]
name = "archive"
[[pool.backend]]
name = "archive1"
address = "10.1.2.21:25"
[[route]]
client_network = "10.0.0.0/8"
)";
    auto targets = [&](const std::string& route_end) {
        auto r = load_string(base + route_end + "pool = \"archive\"\n", "t");
        EXPECT_TRUE(r.config) << r.diagnostics.format("t");
        std::vector<std::string> out;
        for (const auto& t : smtplb::core::transparent_targets(*r.config))
            out.push_back(t.backend);
        return out;
    };
    EXPECT_EQ(targets("listener = \"internal\"\n"), std::vector<std::string>{"hubs/hub1"});
    EXPECT_EQ(targets(""), (std::vector<std::string>{"hubs/hub1", "archive/archive1"}));
}
