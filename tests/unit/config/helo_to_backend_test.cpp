#include <gtest/gtest.h>

#include "config/describe.hpp"
#include "config/loader.hpp"

using namespace smtplb::config;

namespace {
std::string with_pool_key(const std::string& key) {
    return R"([server]
hostname = "mx.example.net"
[[listener]]
name = "in"
bind = "127.0.0.1:2525"
accepted_domains = ["example.net"]
pool = "hubs"
client_identity = "none"
[[pool]]
name = "hubs"
)" + key + R"(
[[pool.backend]]
name = "hub1"
address = "127.0.0.1:2601"
)";
}
}  // namespace

TEST(HeloToBackend, SmtplbByDefaultClientOnRequestAnythingElseRefused) {
    auto defaults = load_string(with_pool_key(""), "t");
    ASSERT_TRUE(defaults.config) << defaults.diagnostics.format("t");
    EXPECT_EQ(defaults.config->pools[0].helo_to_backend, HeloToBackend::Smtplb);

    auto client = load_string(with_pool_key("helo_to_backend = \"client\""), "t");
    ASSERT_TRUE(client.config) << client.diagnostics.format("t");
    EXPECT_EQ(client.config->pools[0].helo_to_backend, HeloToBackend::Client);
    // The effective configuration shows it and reads back the same.
    auto described = describe(*client.config);
    EXPECT_NE(described.find("helo_to_backend = \"client\""), std::string::npos);
    auto again = load_string(described, "described");
    ASSERT_TRUE(again.config) << again.diagnostics.format("described");
    EXPECT_EQ(again.config->pools[0].helo_to_backend, HeloToBackend::Client);

    auto bad = load_string(with_pool_key("helo_to_backend = \"backend\""), "t");
    EXPECT_FALSE(bad.config);
    auto text = bad.diagnostics.format("t");
    EXPECT_NE(text.find("pool[0].helo_to_backend"), std::string::npos) << text;
}
