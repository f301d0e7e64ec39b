#include <gtest/gtest.h>

#include "base/network.hpp"

using namespace smtplb::base;

TEST(IpAddress, ParsesBothFamiliesAndRejectsJunk) {
    EXPECT_EQ(IpAddress::parse("127.0.0.2")->to_string(), "127.0.0.2");
    EXPECT_TRUE(IpAddress::parse("::1")->v6);
    EXPECT_FALSE(IpAddress::parse("127.0.0.256"));
    EXPECT_FALSE(IpAddress::parse("example.net"));
    EXPECT_FALSE(IpAddress::parse(std::string(100, '1')));
}

TEST(IpAddress, UnmapsV4MappedV6) {
    auto a = IpAddress::parse("::ffff:10.1.2.3")->unmapped();
    EXPECT_FALSE(a.v6);
    EXPECT_EQ(a.to_string(), "10.1.2.3");
}

TEST(Cidr, MatchesPrefixes) {
    auto net = Cidr::parse("10.1.0.0/16");
    ASSERT_TRUE(net);
    EXPECT_TRUE(net->contains(*IpAddress::parse("10.1.200.3")));
    EXPECT_FALSE(net->contains(*IpAddress::parse("10.2.0.1")));
    EXPECT_TRUE(net->contains(*IpAddress::parse("::ffff:10.1.0.9")));
    EXPECT_TRUE(Cidr::parse("192.0.2.1")->contains(*IpAddress::parse("192.0.2.1")));
    EXPECT_TRUE(Cidr::parse("2001:db8::/33")->contains(*IpAddress::parse("2001:db8:7fff::1")));
    EXPECT_FALSE(Cidr::parse("2001:db8::/33")->contains(*IpAddress::parse("2001:db8:8000::1")));
    EXPECT_FALSE(Cidr::parse("10.0.0.0/33"));
    EXPECT_FALSE(Cidr::parse("10.0.0.0/"));
    EXPECT_FALSE(Cidr::parse("10.0.0.0/8x"));
}

TEST(HostPort, ParsesV4V6AndRejectsBadPorts) {
    auto a = HostPort::parse("127.0.0.1:25");
    ASSERT_TRUE(a);
    EXPECT_EQ(a->host, "127.0.0.1");
    EXPECT_EQ(a->port, 25);
    auto b = HostPort::parse("[::1]:2525");
    ASSERT_TRUE(b);
    EXPECT_EQ(b->host, "::1");
    EXPECT_EQ(b->to_string(), "[::1]:2525");
    EXPECT_FALSE(HostPort::parse("127.0.0.1:65536"));
    EXPECT_FALSE(HostPort::parse("::1:25"));
    EXPECT_FALSE(HostPort::parse("127.0.0.1"));
    EXPECT_FALSE(HostPort::parse(":25"));
}
