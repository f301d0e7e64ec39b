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
