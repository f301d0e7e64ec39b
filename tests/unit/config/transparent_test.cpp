#include <gtest/gtest.h>

#include "config/describe.hpp"
#include "config/loader.hpp"
#include "config/transparent.hpp"

using namespace smtplb::config;

namespace {
// One listener (its extra keys in LISTENER), a pool of one IPv4 and one
// IPv6 backend (BACKENDS replaceable).
std::string config_text(const std::string& listener, const std::string& bind = "0.0.0.0:25",
                        const std::string& backends = "") {
    return R"(
[[listener]]
name = "edge"
bind = ")" +
           bind + R"("
accepted_domains = ["example.net"]
pool = "hubs"
)" + listener +
           R"(

[[pool]]
name = "hubs"
)" +
           (backends.empty() ? R"(
[[pool.backend]]
name = "hub4"
address = "10.0.0.1:25"
)"
                             : backends);
}

const std::string kSix = R"(
[[pool.backend]]
name = "hub6"
address = "[fd00::1]:25"
)";

bool has(const LoadResult& r, Diagnostic::Severity severity, const std::string& path,
         const std::string& text) {
    for (const auto& d : r.diagnostics.items)
        if (d.severity == severity && d.path == path && d.message.find(text) != std::string::npos)
            return true;
    ADD_FAILURE() << "missing '" << path << ": " << text << "' in\n"
                  << r.diagnostics.format("test");
    return false;
}
bool has_error(const LoadResult& r, const std::string& path, const std::string& text) {
    return has(r, Diagnostic::Severity::Error, path, text);
}
bool has_warning(const LoadResult& r, const std::string& path, const std::string& text) {
    return has(r, Diagnostic::Severity::Warning, path, text);
}
}  // namespace

TEST(TransparentConfig, TransparentAloneSendsNothingInBand) {
    auto r = load_string(config_text("client_identity = \"transparent\""), "t");
    ASSERT_TRUE(r.config) << r.diagnostics.format("t");
    const auto& l = r.config->listeners[0];
    EXPECT_TRUE(l.transparent);
    EXPECT_EQ(l.client_identity, IdentityMode::None);
    EXPECT_FALSE(l.transparent_port);
    EXPECT_EQ(identity_text(l), "transparent");
    EXPECT_NE(describe(*r.config).find("client_identity = \"transparent\"\n"), std::string::npos);
}

TEST(TransparentConfig, TransparentWithXclient) {
    auto r = load_string(config_text("client_identity = \"transparent+xclient\""), "t");
    ASSERT_TRUE(r.config) << r.diagnostics.format("t");
    const auto& l = r.config->listeners[0];
    EXPECT_TRUE(l.transparent);
    EXPECT_EQ(l.client_identity, IdentityMode::Xclient);
    EXPECT_EQ(identity_text(l), "transparent+xclient");
    // The description reads back as the same configuration.
    auto again = load_string(describe(*r.config), "described");
    ASSERT_TRUE(again.config) << again.diagnostics.format("described");
    EXPECT_TRUE(again.config->listeners[0].transparent);
    EXPECT_EQ(again.config->listeners[0].client_identity, IdentityMode::Xclient);
}

TEST(TransparentConfig, OtherIdentitiesAreNotTransparent) {
    auto r = load_string(config_text("client_identity = \"proxy-v2\""), "t");
    ASSERT_TRUE(r.config);
    EXPECT_FALSE(r.config->listeners[0].transparent);
    EXPECT_EQ(identity_text(r.config->listeners[0]), "proxy-v2");
    r = load_string(config_text("client_identity = \"transparent+proxy-v2\""), "t");
    EXPECT_TRUE(has_error(r, "listener[0].client_identity", "transparent+xclient"));
}

TEST(TransparentConfig, TcpModeKeepsTheClientsPortOnlyWhenAsked) {
    auto r = load_string(config_text("mode = \"tcp\"\nclient_identity = \"transparent\""), "t");
    ASSERT_TRUE(r.config) << r.diagnostics.format("t");
    EXPECT_TRUE(r.config->listeners[0].transparent);
    EXPECT_FALSE(r.config->listeners[0].transparent_port);
    r = load_string(
        config_text("mode = \"tcp\"\nclient_identity = \"transparent\"\ntransparent_port = true"),
        "t");
    ASSERT_TRUE(r.config) << r.diagnostics.format("t");
    EXPECT_TRUE(r.config->listeners[0].transparent_port);
    EXPECT_NE(describe(*r.config).find("transparent_port = true"), std::string::npos);
}

TEST(TransparentConfig, NonsenseIsRefused) {
    auto r = load_string(
        config_text("client_identity = \"transparent\"\nsource_address = \"10.0.0.9\""), "t");
    EXPECT_TRUE(has_error(r, "listener[0].source_address", "source_address cannot be set"));
    EXPECT_FALSE(r.config);
    r = load_string(config_text("mode = \"tcp\"\nclient_identity = \"transparent+xclient\""), "t");
    EXPECT_TRUE(has_error(r, "listener[0].client_identity", "cannot send XCLIENT"));
    r = load_string(config_text("client_identity = \"transparent\"\ntransparent_port = true"), "t");
    EXPECT_TRUE(has_error(r, "listener[0].transparent_port", "keeps the client's port"));
    r = load_string(config_text("mode = \"tcp\"\ntransparent_port = true"), "t");
    EXPECT_TRUE(has_error(r, "listener[0].transparent_port", "keeps the client's port"));
    r = load_string(config_text("transparent_port = \"yes\""), "t");
    EXPECT_FALSE(r.config);
}

TEST(TransparentConfig, AddressFamiliesMustMeet) {
    // IPv4 clients only, IPv6 backends only: nothing could ever be delivered.
    auto r = load_string(config_text("client_identity = \"transparent\"", "0.0.0.0:25", kSix), "t");
    EXPECT_TRUE(has_error(r, "listener[0].client_identity", "no backend of pool \"hubs\""));
    EXPECT_FALSE(r.config);
    r = load_string(config_text("client_identity = \"transparent\"", "[fd00::9]:25"), "t");
    EXPECT_TRUE(has_error(r, "listener[0].client_identity", "has an IPv6 address"));
    // A mixed pool: the IPv6 backend never gets this listener's clients.
    r = load_string(
        config_text("client_identity = \"transparent\"", "10.0.0.9:25",
                    "[[pool.backend]]\nname = \"hub4\"\naddress = \"10.0.0.1:25\"\n" + kSix),
        "t");
    ASSERT_TRUE(r.config) << r.diagnostics.format("t");
    EXPECT_TRUE(has_warning(r, "listener[0].client_identity",
                            "never reach backend(s) hub6 of pool \"hubs\""));
    // Dual-stack: IPv6 clients find no IPv6 backend.
    r = load_string(config_text("client_identity = \"transparent\"", "[::]:25"), "t");
    ASSERT_TRUE(r.config) << r.diagnostics.format("t");
    EXPECT_TRUE(has_warning(r, "listener[0].client_identity", "IPv6 clients find no IPv6 backend"));
    // Without transparent none of this matters.
    r = load_string(config_text("", "0.0.0.0:25", kSix), "t");
    EXPECT_TRUE(r.config);
    EXPECT_TRUE(r.diagnostics.items.empty()) << r.diagnostics.format("t");
}

TEST(TransparentConfig, ReachableOnlyWithinOneFamily) {
    auto v4 = *smtplb::base::IpAddress::parse("192.0.2.7");
    auto mapped = *smtplb::base::IpAddress::parse("::ffff:192.0.2.7");
    auto v6 = *smtplb::base::IpAddress::parse("2001:db8::7");
    smtplb::base::HostPort four{"10.0.0.1", 25}, six{"fd00::1", 25};
    EXPECT_TRUE(transparent_reachable(v4, four));
    EXPECT_TRUE(transparent_reachable(mapped, four));
    EXPECT_FALSE(transparent_reachable(v4, six));
    EXPECT_TRUE(transparent_reachable(v6, six));
    EXPECT_FALSE(transparent_reachable(v6, four));
}
