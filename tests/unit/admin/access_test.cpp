#include "admin/access.hpp"

#include <gtest/gtest.h>

namespace smtplb::admin {
namespace {

AccessPolicy policy(std::string bind = "127.0.0.1", std::string token = "") {
    AccessPolicy p;
    p.bind_host = std::move(bind);
    p.port = 8025;
    p.readonly_token = token.empty() ? "" : "read-only-token-0123";
    p.admin_token = std::move(token);
    p.host_names = {"admin.example.net"};
    return p;
}

RequestFacts post(std::string_view host = "127.0.0.1:8025") {
    RequestFacts r;
    r.method = "POST";
    r.target = "/api/v1/backends/hubs/a/drain";
    r.host = host;
    r.content_type = "application/json";
    r.body = "{}";
    return r;
}

TEST(AdminAccess, HostMustBeTheAdminAddressOrAConfiguredName) {
    auto p = policy();
    for (auto host : {"127.0.0.1:8025", "127.0.0.1", "localhost:8025", "ADMIN.example.net:8025",
                      "admin.example.net"})
        EXPECT_TRUE(acceptable_host(p, host)) << host;
    for (auto host :
         {"", "evil.example:8025", "127.0.0.2:8025", "127.0.0.1:8026", "admin.example.net:80",
          "127.0.0.1:", "127.0.0.1:99999", "[::1]:8025", "admin.example.net.evil.example"})
        EXPECT_FALSE(acceptable_host(p, host)) << host;
    auto v6 = policy("::1");
    EXPECT_TRUE(acceptable_host(v6, "[::1]:8025"));
    EXPECT_TRUE(acceptable_host(v6, "[0:0::1]:8025"));
    EXPECT_FALSE(acceptable_host(v6, "[::2]:8025"));
    auto wildcard = policy("0.0.0.0");
    EXPECT_TRUE(acceptable_host(wildcard, "192.0.2.7:8025"));
    EXPECT_FALSE(acceptable_host(wildcard, "rebound.evil.example:8025"));
    auto outside = policy("192.0.2.1");
    EXPECT_FALSE(acceptable_host(outside, "localhost:8025"));
}

TEST(AdminAccess, ForeignHostIsRefusedEvenForThePage) {
    auto r = post("evil.example:8025");
    r.method = "GET";
    r.target = "/";
    auto refusal = check_access(policy(), r);
    ASSERT_TRUE(refusal);
    EXPECT_EQ(refusal->status, 421);
}

TEST(AdminAccess, PageLoadsWithoutTokenApiNeedsIt) {
    auto p = policy("127.0.0.1", "admin-token-0123456789");
    RequestFacts get = post();
    get.method = "GET";
    get.target = "/app.js";
    EXPECT_FALSE(check_access(p, get));
    get.target = "/api/v1/status";
    auto refusal = check_access(p, get);
    ASSERT_TRUE(refusal);
    EXPECT_EQ(refusal->status, 401);
    EXPECT_TRUE(refusal->ask_for_token);
    get.authorization = "Bearer read-only-token-0123";
    EXPECT_FALSE(check_access(p, get));
    get.target = "/metrics";
    EXPECT_FALSE(check_access(p, get));
}

TEST(AdminAccess, ReadOnlyTokenMayNotChangeAnything) {
    auto p = policy("127.0.0.1", "admin-token-0123456789");
    auto r = post();
    r.authorization = "Bearer read-only-token-0123";
    auto refusal = check_access(p, r);
    ASSERT_TRUE(refusal);
    EXPECT_EQ(refusal->status, 403);
    r.authorization = "Bearer admin-token-0123456789";
    EXPECT_FALSE(check_access(p, r));
}

TEST(AdminAccess, StateChangesNeedJsonAndNoForeignOrigin) {
    auto p = policy();
    EXPECT_FALSE(check_access(p, post()));
    auto r = post();
    r.origin = "http://127.0.0.1:8025";
    EXPECT_FALSE(check_access(p, r));
    for (auto origin : {"http://evil.example", "null", "https://127.0.0.1:8025",
                        "http://127.0.0.1:8025.evil.example", "",
                        "http://127.0.0.1" /* port 80: another origin */}) {
        r.origin = origin;
        auto refusal = check_access(p, r);
        ASSERT_TRUE(refusal) << origin;
        EXPECT_EQ(refusal->status, 403) << origin;
    }
    r = post();
    r.content_type = "text/plain";
    ASSERT_TRUE(check_access(p, r));
    r.content_type = "application/json; charset=utf-8";
    EXPECT_FALSE(check_access(p, r));
    r.body = "";
    ASSERT_TRUE(check_access(p, r));
    r.body = "drain";
    ASSERT_TRUE(check_access(p, r));
    p.tls = true;
    r = post();
    r.origin = "https://127.0.0.1:8025";
    EXPECT_FALSE(check_access(p, r));
}

}  // namespace
}  // namespace smtplb::admin
