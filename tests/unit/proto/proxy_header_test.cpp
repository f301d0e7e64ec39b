#include <gtest/gtest.h>

#include "proto/identity.hpp"
#include "proto/proxy_header.hpp"

using namespace smtplb::proto;
using smtplb::base::IpAddress;
using Status = ProxyParse::Status;

namespace {

// Feeds the header the way the io layer does: only as many bytes as asked.
ProxyParse incremental(std::string_view wire, ProxyVersions versions = ProxyVersions::Any) {
    std::size_t have = 0;
    for (;;) {
        auto p = parse_proxy_header(wire.substr(0, have), versions);
        if (p.status != Status::NeedMore) return p;
        EXPECT_GT(p.length, have);
        if (p.length > wire.size()) return p;  // the rest never comes
        have = p.length;
    }
}

std::string bytes(std::initializer_list<int> values) {
    std::string out;
    for (int v : values)
        out += static_cast<char>(v);
    return out;
}

const std::string kSig =
    bytes({0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A});

std::string v2(int version_command, int family, const std::string& body) {
    return kSig +
           bytes({version_command, family, static_cast<int>(body.size() >> 8),
                  static_cast<int>(body.size() & 0xff)}) +
           body;
}

const std::string kV4Body = bytes({192, 0, 2, 7, 198, 51, 100, 1, 0xC3, 0x50, 0x00, 0x19});

}  // namespace

TEST(ProxyHeader, ValidV1Headers) {
    std::string wire = "PROXY TCP4 192.0.2.7 198.51.100.1 50000 25\r\nEHLO x\r\n";
    auto p = incremental(wire);
    ASSERT_EQ(p.status, Status::Done) << p.error;
    EXPECT_EQ(p.length, wire.find("EHLO"));  // nothing behind the header is consumed
    EXPECT_EQ(p.header.source.to_string(), "192.0.2.7");
    EXPECT_EQ(p.header.destination.to_string(), "198.51.100.1");
    EXPECT_EQ(p.header.source_port, 50000);
    EXPECT_EQ(p.header.destination_port, 25);
    EXPECT_FALSE(p.header.local);

    p = incremental("PROXY TCP6 2001:db8::7 2001:db8::1 65535 0\r\n");
    ASSERT_EQ(p.status, Status::Done) << p.error;
    EXPECT_EQ(p.header.source.to_string(), "2001:db8::7");
    EXPECT_EQ(p.header.source_port, 65535);

    p = incremental("PROXY UNKNOWN ffff:f...f:ffff ffff:f...f:ffff 65535 65535\r\n");
    ASSERT_EQ(p.status, Status::Done) << p.error;
    EXPECT_TRUE(p.header.local);
    EXPECT_EQ(incremental("PROXY UNKNOWN\r\n").status, Status::Done);
}

TEST(ProxyHeader, MalformedV1HeadersAreRefused) {
    const char* bad[] = {
        "PROXY TCP4 192.0.2.7 198.51.100.1 50000 25\n",      // bare LF
        "PROXY TCP4 192.0.2.7 198.51.100.1 50000 25\r\r\n",  // bare CR
        "PROXY TCP4 192.0.2.07 198.51.100.1 50000 25\r\n",   // leading zero in an address
        "PROXY TCP4 192.0.2.7 198.51.100.1 050000 25\r\n",   // leading zero in a port
        "PROXY TCP4 192.0.2.7 198.51.100.1 65536 25\r\n",    // port out of range
        "PROXY TCP4 192.0.2.7  198.51.100.1 50000 25\r\n",   // two spaces
        "PROXY TCP4 192.0.2.7 198.51.100.1 50000 25 \r\n",   // trailing space
        "PROXY TCP4 192.0.2.7 198.51.100.1 50000\r\n",       // a field missing
        "PROXY TCP4 2001:db8::7 198.51.100.1 50000 25\r\n",  // family mismatch
        "PROXY TCP6 192.0.2.7 2001:db8::1 50000 25\r\n",     // family mismatch
        "PROXY TCP5 192.0.2.7 198.51.100.1 50000 25\r\n",    // unknown protocol
        "PROXY TCP4 192.0.2.256 198.51.100.1 50000 25\r\n",  // octet out of range
        "PROXY TCP4 192.0.2 198.51.100.1 50000 25\r\n",      // three octets
        "PROXY TCP4 +1.2.3.4 198.51.100.1 50000 25\r\n",     // sign
        "proxy TCP4 192.0.2.7 198.51.100.1 50000 25\r\n",    // case
        "EHLO client.example\r\n",                           // no header at all
    };
    for (const char* wire : bad)
        EXPECT_EQ(incremental(wire).status, Status::Invalid) << wire;
}

TEST(ProxyHeader, V1WithoutCrlfIsRefusedAt107Bytes) {
    std::string wire = "PROXY UNKNOWN " + std::string(200, 'x');
    auto p = incremental(wire);
    EXPECT_EQ(p.status, Status::Invalid);
    // 107 bytes with CRLF at the end is the longest allowed.
    std::string longest = "PROXY UNKNOWN " + std::string(107 - 16, 'x') + "\r\n";
    ASSERT_EQ(longest.size(), 107u);
    EXPECT_EQ(incremental(longest).status, Status::Done);
    std::string too_long = "PROXY UNKNOWN " + std::string(108 - 16, 'x') + "\r\n";
    EXPECT_EQ(incremental(too_long).status, Status::Invalid);
}

TEST(ProxyHeader, ValidV2Headers) {
    auto wire = v2(0x21, 0x11, kV4Body) + "EHLO";
    auto p = incremental(wire);
    ASSERT_EQ(p.status, Status::Done) << p.error;
    EXPECT_EQ(p.length, wire.size() - 4);
    EXPECT_EQ(p.header.source.to_string(), "192.0.2.7");
    EXPECT_EQ(p.header.destination.to_string(), "198.51.100.1");
    EXPECT_EQ(p.header.source_port, 50000);
    EXPECT_EQ(p.header.destination_port, 25);

    // With TLVs (an ALPN and a NOOP) after the addresses.
    p = incremental(v2(0x21, 0x11, kV4Body + bytes({0x01, 0, 2, 'h', '2', 0x04, 0, 0})));
    ASSERT_EQ(p.status, Status::Done) << p.error;

    p = incremental(v2(0x20, 0x00, ""));  // LOCAL: a health check from the proxy
    ASSERT_EQ(p.status, Status::Done) << p.error;
    EXPECT_TRUE(p.header.local);

    // What smtplb itself sends to backends parses back to the same client.
    ClientIdentity id;
    id.address = *IpAddress::parse("2001:db8::7");
    id.local_address = *IpAddress::parse("2001:db8::1");
    id.port = 4000;
    id.local_port = 25;
    p = incremental(proxy_v2_header(id));
    ASSERT_EQ(p.status, Status::Done) << p.error;
    EXPECT_EQ(p.header.source, id.address);
    EXPECT_EQ(p.header.source_port, 4000);
    p = incremental(proxy_v1_header(id));
    ASSERT_EQ(p.status, Status::Done) << p.error;
    EXPECT_EQ(p.header.destination, id.local_address);
}

TEST(ProxyHeader, MalformedV2HeadersAreRefused) {
    std::string bad_signature = v2(0x21, 0x11, kV4Body);
    bad_signature[7] = 'X';
    EXPECT_EQ(incremental(bad_signature).status, Status::Invalid);
    EXPECT_EQ(incremental(v2(0x11, 0x11, kV4Body)).status, Status::Invalid);  // version 1
    EXPECT_EQ(incremental(v2(0x22, 0x11, kV4Body)).status, Status::Invalid);  // command 2
    EXPECT_EQ(incremental(v2(0x21, 0x12, kV4Body)).status, Status::Invalid);  // UDP
    EXPECT_EQ(incremental(v2(0x21, 0x31, std::string(216, 'x'))).status, Status::Invalid);  // UNIX
    EXPECT_EQ(incremental(v2(0x21, 0x21, kV4Body)).status, Status::Invalid);  // short for IPv6
    // A TLV that claims more than the header holds, and one cut short.
    EXPECT_EQ(incremental(v2(0x21, 0x11, kV4Body + bytes({0x04, 0, 9, 1, 2}))).status,
              Status::Invalid);
    EXPECT_EQ(incremental(v2(0x21, 0x11, kV4Body + bytes({0x04, 0}))).status, Status::Invalid);
    // Over the bound: refused from the first 16 bytes, before reading the rest.
    auto huge = v2(0x21, 0x11, std::string(4000, 'x'));
    EXPECT_EQ(parse_proxy_header(huge.substr(0, 16), ProxyVersions::Any).status, Status::Invalid);
}

// LOCAL (a health check from the proxy itself): the spec has the receiver
// use the real endpoints and discard the protocol block, family included.
TEST(ProxyHeader, V2LocalSkipsItsBody) {
    // No body.
    auto wire = v2(0x20, 0x00, "") + "EHLO";
    auto p = incremental(wire);
    ASSERT_EQ(p.status, Status::Done) << p.error;
    EXPECT_TRUE(p.header.local);
    EXPECT_EQ(p.length, 16u);

    // TLVs as HAProxy adds them to its checks: UNIQUE_ID, NOOP padding,
    // and SSL (client flags, verify, then VERSION and CIPHER sub-TLVs).
    std::string unique_id = bytes({0x05, 0, 8}) + "4f2a9c1e";
    std::string noop = bytes({0x04, 0, 3, 0, 0, 0});
    std::string ssl_sub =
        bytes({0x21, 0, 7}) + "TLSv1.3" + bytes({0x23, 0, 22}) + "TLS_AES_256_GCM_SHA384";
    std::string ssl =
        bytes({0x20, 0, static_cast<int>(5 + ssl_sub.size()), 0x01, 0, 0, 0, 0}) + ssl_sub;
    std::string tlvs = unique_id + noop + ssl;
    wire = v2(0x20, 0x00, tlvs) + "EHLO x\r\n";
    p = incremental(wire);  // byte by byte: never past the header
    ASSERT_EQ(p.status, Status::Done) << p.error;
    EXPECT_TRUE(p.header.local);
    EXPECT_EQ(p.length, 16 + tlvs.size());
    EXPECT_EQ(wire.substr(p.length), "EHLO x\r\n");
    // Addresses of the proxy's own connection (a family given anyway) are
    // ignored too: nothing of the block is used.
    p = incremental(v2(0x20, 0x11, kV4Body + unique_id));
    ASSERT_EQ(p.status, Status::Done) << p.error;
    EXPECT_TRUE(p.header.local);
    EXPECT_EQ(p.header.source_port, 0);
    // Bytes that are not TLVs at all are discarded unread as well.
    p = incremental(v2(0x20, 0x00, bytes({0x04, 0, 9, 1})));
    ASSERT_EQ(p.status, Status::Done) << p.error;

    // All of the body is waited for, then everything at once also works.
    auto head = v2(0x20, 0x00, tlvs);
    auto partial = parse_proxy_header(std::string_view(head).substr(0, 20), ProxyVersions::V2);
    EXPECT_EQ(partial.status, Status::NeedMore);
    EXPECT_EQ(partial.length, head.size());
    EXPECT_EQ(parse_proxy_header(head + "EHLO", ProxyVersions::Any).length, head.size());

    // The bound holds for LOCAL too: refused from the first 16 bytes.
    auto at_bound = v2(0x20, 0x00, std::string(kProxyV2MaxLength - 16, 'x'));
    EXPECT_EQ(incremental(at_bound).status, Status::Done);
    auto over = v2(0x20, 0x00, std::string(kProxyV2MaxLength - 15, 'x'));
    auto refused = parse_proxy_header(std::string_view(over).substr(0, 16), ProxyVersions::Any);
    EXPECT_EQ(refused.status, Status::Invalid);
    // An unknown version or command is still refused, LOCAL or not.
    EXPECT_EQ(incremental(v2(0x10, 0x00, "")).status, Status::Invalid);
    EXPECT_EQ(incremental(v2(0x2F, 0x00, "")).status, Status::Invalid);
}

TEST(ProxyHeader, OnlyTheConfiguredVersionIsTaken) {
    EXPECT_EQ(incremental("PROXY UNKNOWN\r\n", ProxyVersions::V2).status, Status::Invalid);
    EXPECT_EQ(incremental(v2(0x20, 0x00, ""), ProxyVersions::V1).status, Status::Invalid);
    EXPECT_EQ(incremental(v2(0x20, 0x00, ""), ProxyVersions::V2).status, Status::Done);
}

TEST(ProxyHeader, OurV2HeaderCarriesTheClientsTls) {
    ClientIdentity id;
    id.address = *IpAddress::parse("192.0.2.7");
    id.local_address = *IpAddress::parse("198.51.100.1");
    id.port = 4000;
    id.local_port = 465;
    id.tls_version = "TLSv1.3";
    id.tls_cipher = "TLS_AES_256_GCM_SHA384";
    id.client_certificate = true;
    auto wire = proxy_v2_header(id);
    auto p = incremental(wire);
    ASSERT_EQ(p.status, Status::Done) << p.error;  // lengths add up, TLVs fit
    EXPECT_EQ(p.length, wire.size());
    auto tlv = wire.substr(16 + 12);
    ASSERT_GE(tlv.size(), 8u);
    EXPECT_EQ(static_cast<unsigned char>(tlv[0]), 0x20);                // PP2_TYPE_SSL
    EXPECT_EQ(static_cast<unsigned char>(tlv[3]), 0x01 | 0x02 | 0x04);  // SSL, cert conn+sess
    EXPECT_NE(tlv.find(bytes({0x21, 0, 7}) + "TLSv1.3"), std::string::npos);
    EXPECT_NE(tlv.find(bytes({0x23, 0, 22}) + "TLS_AES_256_GCM_SHA384"), std::string::npos);
    id.tls_version.clear();
    EXPECT_EQ(proxy_v2_header(id).size(), 16u + 12u);  // plaintext: no TLV
}
