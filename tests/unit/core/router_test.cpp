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

TEST(TrackingRecord, QueueIdFromReply) {
    EXPECT_EQ(core::queue_id_from("2.0.0 Ok: queued as 4XyZ12"), "4XyZ12");
    EXPECT_EQ(core::queue_id_from("Ok"), "");
}
