#include <gtest/gtest.h>

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
    auto lines = xclient_commands(sample(), {"ADDR", "HELO"});
    ASSERT_EQ(lines.size(), 1u);
    EXPECT_EQ(lines[0], "XCLIENT ADDR=127.0.0.2 HELO=client.example\r\n");
}

TEST(Xclient, FullSetAndIpv6) {
    auto id = sample();
    id.address = *IpAddress::parse("2001:db8::7");
    auto lines = xclient_commands(id, kPostfixAttrs);
    ASSERT_EQ(lines.size(), 1u);
    EXPECT_EQ(lines[0],
              "XCLIENT NAME=[UNAVAILABLE] ADDR=IPV6:2001:db8::7 PORT=40000 PROTO=ESMTP "
              "HELO=client.example LOGIN=[UNAVAILABLE]\r\n");
}

TEST(Xclient, HostileHeloIsXtextEncodedAndLinesStayShort) {
    auto id = sample();
    id.helo = std::string(450, 'h') + " =+\r\nMAIL";
    auto lines = xclient_commands(id, kPostfixAttrs, 512);
    ASSERT_GE(lines.size(), 2u);
    for (const auto& l : lines) {
        EXPECT_LE(l.size(), 512u);
        EXPECT_EQ(l.find('\n'), l.size() - 1);
        EXPECT_EQ(l.rfind("XCLIENT ", 0), 0u);
    }
    std::string all;
    for (const auto& l : lines)
        all += l;
    EXPECT_NE(all.find("+20+3D+2B+0D+0AMAIL"), std::string::npos);
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

TEST(SafeHelo, OnlyOnePrintableWordPasses) {
    EXPECT_EQ(safe_helo("client.example", "lb"), "client.example");
    EXPECT_EQ(safe_helo("[192.0.2.1]", "lb"), "[192.0.2.1]");
    EXPECT_EQ(safe_helo("two words", "lb"), "lb");
    EXPECT_EQ(safe_helo("", "lb"), "lb");
    EXPECT_EQ(safe_helo("caf\xc3\xa9", "lb"), "lb");
    EXPECT_EQ(safe_helo(std::string(300, 'a'), "lb"), "lb");
}
