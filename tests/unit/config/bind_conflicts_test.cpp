// Addresses the daemon could not bind because another of its own sockets
// has them, found when the file is loaded (check, run and reload alike),
// with the line of the key to change; and KeyLines, which finds that line.
#include <gtest/gtest.h>

#include "config/loader.hpp"

using namespace smtplb::config;

namespace {

std::string file(const std::string& first, const std::string& second, const std::string& admin) {
    return "[server]\n"  // 1
           "admin = \"" +
           admin +
           "\"\n"            // 2
           "[[listener]]\n"  // 3
           "name = \"a\"\n"  // 4
           "bind = \"" +
           first +
           "\"\n"                                    // 5
           "accepted_domains = [\"example.net\"]\n"  // 6
           "pool = \"p\"\n"                          // 7
           "[[listener]]\n"                          // 8
           "name = \"b\"\n"                          // 9
           "bind = \"" +
           second +
           "\"\n"                                    // 10
           "accepted_domains = [\"example.net\"]\n"  // 11
           "pool = \"p\"\n"                          // 12
           "[[pool]]\n"                              // 13
           "name = \"p\"\n"                          // 14
           "health = { depth = \"mail\" }\n"         // 15
           "[[pool.backend]]\n"                      // 16
           "name = \"b1\"\n"                         // 17
           "address = \"127.0.0.1:2601\"\n";         // 18
}

// The collisions found, as "path:line: message".
std::vector<std::string> collisions(const LoadResult& r) {
    std::vector<std::string> out;
    for (const auto& d : r.diagnostics.items)
        if (d.message.find("collides") != std::string::npos)
            out.push_back(d.path + ":" + std::to_string(d.line) + ": " + d.message);
    return out;
}

}  // namespace

TEST(BindConflicts, SameAddressWildcardsAndTheAdminApiCollide) {
    auto same = load_string(file("127.0.0.1:25", "127.0.0.1:25", ""), "t");
    EXPECT_FALSE(same.config);
    EXPECT_EQ(collisions(same),
              std::vector<std::string>{"listener[1].bind:10: 127.0.0.1:25 collides with listener "
                                       "\"a\" on 127.0.0.1:25 (line 5): both cannot bind; use "
                                       "another port or address"});
    EXPECT_EQ(collisions(load_string(file("0.0.0.0:25", "192.0.2.1:25", ""), "t")).size(), 1u);
    EXPECT_EQ(collisions(load_string(file("192.0.2.1:25", "0.0.0.0:25", ""), "t")).size(), 1u);
    // Dual-stack sockets: [::] takes IPv4 too.
    EXPECT_EQ(collisions(load_string(file("[::]:25", "127.0.0.1:25", ""), "t")).size(), 1u);
    auto admin = load_string(file("0.0.0.0:25", "127.0.0.1:587", "127.0.0.1:25"), "t");
    ASSERT_EQ(collisions(admin).size(), 1u);
    EXPECT_EQ(collisions(admin)[0].rfind("server.admin:2: 127.0.0.1:25 collides with listener "
                                         "\"a\" on 0.0.0.0:25 (line 5)",
                                         0),
              0u)
        << collisions(admin)[0];
}

TEST(BindConflicts, OtherPortsSpecificAddressesAndPortZeroDoNot) {
    for (auto [first, second, admin] : {std::tuple{"0.0.0.0:25", "0.0.0.0:587", "127.0.0.1:8025"},
                                        std::tuple{"127.0.0.1:25", "127.0.0.2:25", "127.0.0.3:25"},
                                        std::tuple{"0.0.0.0:25", "[::1]:25", ""},
                                        std::tuple{"127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0"}}) {
        auto r = load_string(file(first, second, admin), "t");
        EXPECT_TRUE(r.config) << first << " " << second << " " << admin << "\n"
                              << r.diagnostics.format("t");
    }
}

TEST(KeyLines, FindsKeysInTablesArraysOfTablesAndInlineTables) {
    auto r = load_string(file("127.0.0.1:25", "127.0.0.1:587", ""), "t");
    ASSERT_TRUE(r.config) << r.diagnostics.format("t");
    EXPECT_EQ(r.lines.line("server.admin"), 2);
    EXPECT_EQ(r.lines.line("listener[1].bind"), 10);
    EXPECT_EQ(r.lines.line("pool[0].health.depth"), 15);
    EXPECT_EQ(r.lines.line("pool[0].backend[0].address"), 18);
    // A key not written: the line of the table it would be in.
    EXPECT_EQ(r.lines.line("server.state_dir"), 1);
    EXPECT_EQ(r.lines.line("listener[1].tls.cert"), 8);
    EXPECT_EQ(r.lines.line("nothing.here"), 0);
}
