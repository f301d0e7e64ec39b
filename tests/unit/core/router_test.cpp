#include <gtest/gtest.h>

#include "core/router.hpp"
#include "proto/command.hpp"

using namespace smtplb;

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
        return router.route(p.mailbox, "default");
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
    EXPECT_EQ(router.route(mailbox("ALICE", "Example.NET"), "default"), "alice");
    EXPECT_EQ(router.route(mailbox("xalice", "example.net"), "default"), "default");
    EXPECT_EQ(router.route(mailbox("alice", "example.network"), "default"), "default");
    EXPECT_EQ(router.route(mailbox("bob+Archive", "example.org"), "default"), "archive");
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
        EXPECT_EQ(router.route(mailbox(run, domain), "default"), matches ? "matched" : "default")
            << pattern;
        EXPECT_EQ(router.route(mailbox(run + "!", domain), "default"), "default") << pattern;
    }
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
