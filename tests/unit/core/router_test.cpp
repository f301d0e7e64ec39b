#include <gtest/gtest.h>

#include "core/router.hpp"
#include "proto/command.hpp"

using namespace smtplb;

namespace {
// A recipient's pool in a session that no other condition looks at.
std::string route_rcpt(const core::Router& router, const proto::Mailbox& rcpt) {
    return router.route({&rcpt, "in", {}, ""}, "default");
}
}  // namespace

TEST(Router, FirstMatchingRouteElseDefault) {
    std::vector<config::Route> routes(3);
    routes[0].recipient_domain = "example.org";
    routes[0].pool = "org";
    routes[1].recipient = "^[a-m].*@example\\.net$";
    routes[1].pool = "a-to-m";
    routes[2].recipient_domain = "example.net";
    routes[2].pool = "net";
    core::Router router(routes);
    auto route = [&](const char* path) {
        proto::Path p;
        EXPECT_FALSE(proto::parse_rcpt_argument(std::string("TO:") + path, p));
        return route_rcpt(router, p.mailbox);
    };
    EXPECT_EQ(route("<x@EXAMPLE.org>"), "org");
    EXPECT_EQ(route("<Alice@example.net>"), "a-to-m");
    EXPECT_EQ(route("<zed@example.net>"), "net");
    EXPECT_EQ(route("<x@example.com>"), "default");
    EXPECT_EQ(route("<postmaster>"), "default");
}

namespace {
proto::Mailbox mailbox(std::string local, std::string domain) {
    proto::Mailbox m;
    m.local = std::move(local);
    m.domain = std::move(domain);
    return m;
}
}  // namespace

TEST(Router, PatternsMatchTheWholeAddressIgnoringCase) {
    std::vector<config::Route> routes(2);
    routes[0].recipient = "alice@example\\.net";
    routes[0].pool = "alice";
    routes[1].recipient = "[^@]+\\+archive@.*";
    routes[1].pool = "archive";
    core::Router router(routes);
    EXPECT_EQ(route_rcpt(router, mailbox("ALICE", "Example.NET")), "alice");
    EXPECT_EQ(route_rcpt(router, mailbox("xalice", "example.net")), "default");
    EXPECT_EQ(route_rcpt(router, mailbox("alice", "example.network")), "default");
    EXPECT_EQ(route_rcpt(router, mailbox("bob+Archive", "example.org")), "archive");
}

// Patterns a backtracking engine (std::regex) takes exponential time on,
// against a 256-byte address that almost matches: RE2 answers in time
// linear in the address. The test asserts the answers; ctest's timeout
// is what a hang would run into.
TEST(Router, PathologicalPatternsAnswerInLinearTime) {
    const std::string domain = "example.net";
    const std::string run(256 - 1 - domain.size(), 'a');  // 256 bytes with "@" and the domain
    ASSERT_EQ(mailbox(run, domain).address().size(), 256u);
    struct Case {
        const char* pattern;
        bool matches;  // against run@example.net
    };
    for (auto [pattern, matches] :
         {Case{"(a+)+$", false}, Case{"(a|aa)*b", false}, Case{"(a*)*b", false},
          Case{"(a|a)*@example\\.com", false}, Case{"(.*a){12}x", false},
          Case{"(a+)+@example\\.net", true}, Case{"(a|aa)*@EXAMPLE\\.net", true}}) {
        std::vector<config::Route> routes(1);
        routes[0].recipient = pattern;
        routes[0].pool = "matched";
        core::Router router(routes);
        EXPECT_EQ(route_rcpt(router, mailbox(run, domain)), matches ? "matched" : "default")
            << pattern;
        EXPECT_EQ(route_rcpt(router, mailbox(run + "!", domain)), "default") << pattern;
    }
}

namespace {
base::IpAddress ip(const char* text) {
    return *base::IpAddress::parse(text);
}
base::Cidr net(const char* text) {
    return *base::Cidr::parse(text);
}

// Issue 27's tenants: routes on the session's login, client network and
// listener, in order, each route's conditions together.
std::vector<config::Route> tenant_routes() {
    std::vector<config::Route> routes(5);
    routes[0].recipient_domain = "internal.example";  // before the tenants: theirs go here too
    routes[0].pool = "hubs";
    routes[1].auth_users = {"acme", "acme-billing"};
    routes[1].pool = "acme";
    routes[2].auth_users = {"globex"};
    routes[2].listeners = {"submission"};  // AND: globex's login on that listener only
    routes[2].pool = "globex";
    routes[3].client_networks = {net("10.1.0.0/16"), net("2001:db8:1::/48")};
    routes[3].recipient_domain = "example.org";  // AND: that network's mail to example.org
    routes[3].pool = "apps-org";
    routes[4].listeners = {"partners"};
    routes[4].pool = "partners";
    return routes;
}
}  // namespace

TEST(Router, SessionConditionsCombineWithAndAndTheFirstMatchWins) {
    core::Router router(tenant_routes());
    const auto out = mailbox("bob", "example.com"), org = mailbox("bob", "example.org"),
               internal = mailbox("ops", "internal.example");
    auto route = [&](const proto::Mailbox& rcpt, std::string_view listener, const char* client,
                     std::string_view user) {
        return router.route({&rcpt, listener, ip(client), user}, "default");
    };
    EXPECT_EQ(route(out, "submission", "192.0.2.1", "acme"), "acme");
    EXPECT_EQ(route(out, "internet", "192.0.2.1", "acme-billing"), "acme");
    EXPECT_EQ(route(internal, "submission", "192.0.2.1", "acme"), "hubs");  // route 0 first
    EXPECT_EQ(route(out, "submission", "192.0.2.1", "globex"), "globex");
    EXPECT_EQ(route(out, "internet", "192.0.2.1", "globex"), "default");  // not on submission
    // Logins compare exactly, and a session without one matches no login.
    EXPECT_EQ(route(out, "submission", "192.0.2.1", "ACME"), "default");
    EXPECT_EQ(route(out, "submission", "192.0.2.1", ""), "default");
    EXPECT_EQ(route(org, "internet", "10.1.200.3", ""), "apps-org");
    EXPECT_EQ(route(org, "internet", "2001:db8:1:ff::9", ""), "apps-org");
    EXPECT_EQ(route(org, "internet", "::ffff:10.1.0.1", ""), "apps-org");  // mapped IPv4
    EXPECT_EQ(route(out, "internet", "10.1.200.3", ""), "default");        // not example.org
    EXPECT_EQ(route(org, "internet", "10.2.0.1", ""), "default");          // not that network
    EXPECT_EQ(route(org, "partners", "10.2.0.1", ""), "partners");
    EXPECT_EQ(route(org, "partners", "10.2.0.1", "acme"), "acme");  // route 1 before route 4
}

// A tenant with many logins: "@domain" takes every login in that domain.
TEST(Router, AnAtDomainEntryTakesEveryLoginOfThatDomain) {
    std::vector<config::Route> routes(1);
    routes[0].auth_users = {"billing", "@Acme.example"};
    routes[0].pool = "acme";
    core::Router router(routes);
    auto login = [&](std::string_view user) {
        return router.route({nullptr, "submission", ip("192.0.2.1"), user}, "default");
    };
    EXPECT_EQ(login("billing"), "acme");
    EXPECT_EQ(login("jo@acme.example"), "acme");
    EXPECT_EQ(login("Jo@ACME.Example"), "acme");
    EXPECT_EQ(login("x@y@acme.example"), "acme");  // the last "@" starts the domain
    EXPECT_EQ(login("jo@sub.acme.example"), "default");
    EXPECT_EQ(login("jo@acme.example.org"), "default");
    EXPECT_EQ(login("acme.example"), "default");
    EXPECT_EQ(login("@acme.example"), "acme");  // a login may be just that
    EXPECT_EQ(login("jo@"), "default");
}

// At MAIL no recipient is known: the session's own route gives the
// transaction's pool, and routes on a recipient wait for one.
TEST(Router, BeforeAnyRecipientOnlySessionRoutesMatch) {
    core::Router router(tenant_routes());
    auto at_mail = [&](std::string_view listener, const char* client, std::string_view user) {
        return router.route({nullptr, listener, ip(client), user}, "default");
    };
    EXPECT_EQ(at_mail("submission", "192.0.2.1", "acme"), "acme");  // route 0 passed over
    EXPECT_EQ(at_mail("submission", "192.0.2.1", "globex"), "globex");
    EXPECT_EQ(at_mail("internet", "10.1.200.3", ""), "default");  // route 3 needs example.org
    EXPECT_EQ(at_mail("partners", "10.1.200.3", ""), "partners");
    // A configuration of recipient routes only starts every transaction on
    // the listener's pool, as before routes could look at the session.
    std::vector<config::Route> by_recipient(1);
    by_recipient[0].recipient = ".*";
    by_recipient[0].pool = "all";
    core::Router plain(by_recipient);
    EXPECT_EQ(plain.route({nullptr, "in", ip("10.1.0.1"), "acme"}, "default"), "default");
    const auto rcpt = mailbox("a", "example.net");
    EXPECT_EQ(plain.route({&rcpt, "in", ip("10.1.0.1"), "acme"}, "default"), "all");
}

#include "core/tracking.hpp"

TEST(TrackingRecord, IsOneLineOfValidEscapedJson) {
    core::TrackingRecord r;
    r.helo = "evil\"\\\n\x01";
    r.sender = "a@example.org";
    r.recipient_domains = {"example.net", "example.org"};
    r.attempts = {{"hub1", "rcpt", "451 4.3.0 later"}, {"hub2", "message", "250 ok"}};
    auto json = r.to_json();
    EXPECT_EQ(json.find('\n'), std::string::npos);
    EXPECT_NE(json.find(R"("helo":"evil\"\\\n\u0001")"), std::string::npos) << json;
    EXPECT_NE(json.find(R"("recipient_domains":["example.net","example.org"])"), std::string::npos);
    EXPECT_NE(
        json.find(
            R"("attempts":[{"backend":"hub1","stage":"rcpt","reply":"451 4.3.0 later"},{"backend":"hub2")"),
        std::string::npos)
        << json;
}

TEST(TrackingRecord, EightBitThatIsNotUtf8IsEscapedSoTheLineStaysUtf8) {
    core::TrackingRecord r;
    // Latin-1 "héllo", then UTF-8 "tést", then a truncated sequence and DEL.
    r.helo = "h\xe9llo t\xc3\xa9st \xe2\x82 \x7f";
    auto json = r.to_json();
    EXPECT_NE(json.find(R"("helo":"h\u00e9llo t)"
                        "\xc3\xa9"
                        R"(st \u00e2\u0082 \u007f")"),
              std::string::npos)
        << json;
}

TEST(TrackingRecord, QueueIdFromReply) {
    EXPECT_EQ(core::queue_id_from("2.0.0 Ok: queued as 4XyZ12"), "4XyZ12");
    EXPECT_EQ(core::queue_id_from("Ok"), "");
}
