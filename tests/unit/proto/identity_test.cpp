#include <gtest/gtest.h>

#include <algorithm>

#include "proto/identity.hpp"
#include "proto/xtext.hpp"

using namespace smtplb::proto;
using smtplb::base::IpAddress;

namespace {
ClientIdentity sample() {
    ClientIdentity id;
    id.address = *IpAddress::parse("127.0.0.2");
    id.port = 40000;
    id.local_address = *IpAddress::parse("127.0.0.1");
    id.local_port = 2525;
    id.helo = "client.example";
    return id;
}
const std::set<std::string> kPostfixAttrs = {"NAME", "ADDR", "PORT", "PROTO", "HELO", "LOGIN"};
}  // namespace

TEST(Xtext, EncodesSpecialsAndRoundTrips) {
    EXPECT_EQ(xtext_encode("a+b=c d"), "a+2Bb+3Dc+20d");
    EXPECT_EQ(*xtext_decode("a+2Bb+3Dc+20d"), "a+b=c d");
    EXPECT_FALSE(xtext_decode("a+2"));
    EXPECT_FALSE(xtext_decode("a+zz"));
    EXPECT_FALSE(xtext_decode("a=b"));
    EXPECT_FALSE(xtext_decode("a+2b"));  // hex digits are upper case only
}

TEST(Xclient, SendsOnlyAnnouncedAttributes) {
    auto cmd = xclient_command(sample(), {"ADDR", "HELO"});
    EXPECT_EQ(cmd.line, "XCLIENT ADDR=127.0.0.2 HELO=client.example\r\n");
    EXPECT_TRUE(cmd.omitted.empty());
    EXPECT_EQ(xclient_command(sample(), {}).line, "");
}

TEST(Xclient, FullSetAndIpv6) {
    auto id = sample();
    id.address = *IpAddress::parse("2001:db8::7");
    auto cmd = xclient_command(id, kPostfixAttrs);
    EXPECT_EQ(cmd.line,
              "XCLIENT NAME=[UNAVAILABLE] ADDR=IPV6:2001:db8::7 PORT=40000 PROTO=ESMTP "
              "HELO=client.example LOGIN=[UNAVAILABLE]\r\n");
}

TEST(Xclient, VerifiedAndReverseNamesWhenLookedUp) {
    auto id = sample();
    id.name = "mx.client.example";
    id.reverse_name = "[TEMPUNAVAIL]";
    auto cmd = xclient_command(id, {"NAME", "REVERSE_NAME", "ADDR"});
    EXPECT_EQ(cmd.line,
              "XCLIENT NAME=mx.client.example REVERSE_NAME=[TEMPUNAVAIL] ADDR=127.0.0.2\r\n");
}

TEST(Xclient, AlwaysOneCommandLeavingOutHeloThenLoginThenNames) {
    auto id = sample();
    id.helo = std::string(80, '+');  // 240 octets once xtext-encoded
    id.login = std::string(250, 'u');
    id.name = std::string(250, 'n');
    id.reverse_name = std::string(250, 'r');
    const std::set<std::string> all = {"NAME",  "REVERSE_NAME", "ADDR", "PORT",
                                       "PROTO", "HELO",         "LOGIN"};
    // Postfix's 2048: everything in one line.
    auto roomy = xclient_command(id, all);
    EXPECT_TRUE(roomy.omitted.empty());
    EXPECT_NE(roomy.line.find("HELO=+2B+2B"), std::string::npos);
    EXPECT_LE(roomy.line.size(), 2048u);
    const std::vector<std::string> order = {"HELO", "LOGIN", "REVERSE_NAME", "NAME"};
    std::size_t last_omitted = 0;
    for (std::size_t limit = 1200; limit >= 512; limit -= 8) {
        auto cmd = xclient_command(id, all, limit);
        EXPECT_LE(cmd.line.size(), limit);
        EXPECT_NE(cmd.line.find("ADDR=127.0.0.2 PORT=40000 PROTO=ESMTP"), std::string::npos);
        // Always a prefix of the documented order, growing as the line shrinks.
        ASSERT_LE(cmd.omitted.size(), order.size());
        EXPECT_TRUE(std::equal(cmd.omitted.begin(), cmd.omitted.end(), order.begin()));
        EXPECT_GE(cmd.omitted.size(), last_omitted);
        last_omitted = cmd.omitted.size();
    }
    EXPECT_EQ(last_omitted, 3u);  // at 512 only NAME (250 octets) still fits
}

TEST(Xclient, ValuesOverPostfixs255OctetsAsSentAreLeftOut) {
    auto id = sample();
    id.helo = std::string(85, '+');  // 255 octets encoded: taken
    EXPECT_TRUE(xclient_command(id, kPostfixAttrs).omitted.empty());
    id.helo = std::string(86, '+');  // 258: Postfix would refuse the command
    auto cmd = xclient_command(id, kPostfixAttrs);
    EXPECT_EQ(cmd.omitted, std::vector<std::string>{"HELO"});
    EXPECT_EQ(cmd.line.find("HELO="), std::string::npos);
    id.helo = "client.example";
    id.login = std::string(256, 'u');
    EXPECT_EQ(xclient_command(id, kPostfixAttrs).omitted, std::vector<std::string>{"LOGIN"});
}

TEST(Xclient, HostileValuesAreXtextEncodedInOneLine) {
    auto id = sample();
    id.helo = "h =+\r\nMAIL";
    auto cmd = xclient_command(id, kPostfixAttrs, 512);
    EXPECT_EQ(cmd.line.find('\n'), cmd.line.size() - 1);
    EXPECT_NE(cmd.line.find("HELO=h+20+3D+2B+0D+0AMAIL"), std::string::npos);
}

TEST(HeloForBackend, TheClientsOwnArgumentByteForByte) {
    EXPECT_EQ(helo_for_backend("client.example", "lb"), "client.example");
    EXPECT_EQ(helo_for_backend("[192.0.2.1]", "lb"), "[192.0.2.1]");
    // What Postfix would judge ("Invalid name") had the client talked to it.
    EXPECT_EQ(helo_for_backend("foo bar", "lb"), "foo bar");
    EXPECT_EQ(helo_for_backend("t\xc3\xa9st.example", "lb"), "t\xc3\xa9st.example");
    EXPECT_EQ(helo_for_backend(std::string(150, '+'), "lb"), std::string(150, '+'));
    // Nothing that could end or split the line.
    EXPECT_EQ(helo_for_backend("a\rb\nc\x7f\x01", "lb"), "a?b?c??");
    EXPECT_EQ(helo_for_backend("", "lb"), "lb");
    EXPECT_EQ(helo_for_backend(std::string(3000, 'a'), "lb", 512).size(), 505u);
}

TEST(IdentityKey, SameClientAnyPortOtherwiseDistinct) {
    auto a = sample();
    auto same_client_new_port = a;
    same_client_new_port.port = 50000;
    EXPECT_EQ(identity_key(a), identity_key(same_client_new_port));
    for (auto change : std::vector<void (*)(ClientIdentity&)>{
             [](ClientIdentity& i) { i.address = *IpAddress::parse("127.0.0.3"); },
             [](ClientIdentity& i) { i.helo = "other.example"; },
             [](ClientIdentity& i) { i.esmtp = false; },
             [](ClientIdentity& i) { i.login = "alice"; },
             [](ClientIdentity& i) { i.name = "client.example"; },
             [](ClientIdentity& i) { i.local_port = 25; }}) {
        auto b = a;
        change(b);
        EXPECT_NE(identity_key(a), identity_key(b));
    }
    // Length prefixes: moving a character from one field to the next differs.
    auto x = a, y = a;
    x.helo = "ab";
    x.login = "c";
    y.helo = "a";
    y.login = "bc";
    EXPECT_NE(identity_key(x), identity_key(y));
}

TEST(HeloKey, OneNameAndCommandAndNeverAnIdentityKey) {
    EXPECT_EQ(helo_key("a.example", true), helo_key("a.example", true));
    EXPECT_NE(helo_key("a.example", true), helo_key("b.example", true));
    EXPECT_NE(helo_key("a.example", true), helo_key("a.example", false));
    EXPECT_TRUE(is_helo_key(helo_key("a.example", false)));
    EXPECT_FALSE(is_helo_key(identity_key(sample())));
    EXPECT_FALSE(is_helo_key(""));
}

TEST(Proxy, V1Header) {
    EXPECT_EQ(proxy_v1_header(sample()), "PROXY TCP4 127.0.0.2 127.0.0.1 40000 2525\r\n");
}

TEST(Proxy, V2Header) {
    auto h = proxy_v2_header(sample());
    ASSERT_EQ(h.size(), 16u + 12u);
    EXPECT_EQ(h.substr(0, 12), std::string("\r\n\r\n\0\r\nQUIT\n", 12));
    EXPECT_EQ(static_cast<unsigned char>(h[12]), 0x21);
    EXPECT_EQ(static_cast<unsigned char>(h[13]), 0x11);
    EXPECT_EQ(static_cast<unsigned char>(h[15]), 12);
    EXPECT_EQ(static_cast<unsigned char>(h[16 + 3]), 2);  // 127.0.0.2
    EXPECT_EQ((static_cast<unsigned char>(h[24]) << 8) | static_cast<unsigned char>(h[25]), 40000);
}
