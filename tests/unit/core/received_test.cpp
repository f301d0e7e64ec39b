#include <gtest/gtest.h>

#include "core/received.hpp"

namespace smtplb::core {
namespace {

proto::Mailbox mailbox(const std::string& local, const std::string& domain) {
    proto::Mailbox m;
    m.local = local;
    m.domain = domain;
    return m;
}

proto::ClientIdentity client() {
    proto::ClientIdentity id;
    id.address = *base::IpAddress::parse("192.0.2.7");
    id.helo = "client.example";
    id.name = "mail.client.example";
    return id;
}

// 2026-12-03 18:00:43 UTC
constexpr std::int64_t kWhen = 1796320843000;

TEST(ReceivedHeader, HasPostfixsFormWithTheSpoolIdAndTheOneRecipient) {
    auto h = received_header(client(), "mx.example.net", "0005F1A2B3C4D000",
                             {mailbox("bob", "example.net")}, kWhen);
    EXPECT_EQ(h,
              "Received: from client.example (mail.client.example [192.0.2.7])\r\n"
              "\tby mx.example.net (smtplb) with ESMTP id 0005F1A2B3C4D000\r\n"
              "\tfor <bob@example.net>; Thu,  3 Dec 2026 18:00:43 +0000 (UTC)\r\n");
}

TEST(ReceivedHeader, ProtocolFollowsHeloTlsAndAuth) {
    auto id = client();
    id.esmtp = false;
    auto two =
        std::vector<proto::Mailbox>{mailbox("a", "example.net"), mailbox("b", "example.net")};
    auto h = received_header(id, "mx", "1", two, kWhen);
    EXPECT_NE(h.find("with SMTP id 1; Thu"), std::string::npos) << h;  // no "for" with two
    id.esmtp = true;
    id.tls_version = "TLSv1.3";
    id.tls_cipher = "TLS_AES_256_GCM_SHA384";
    id.login = "alice";
    h = received_header(id, "mx", "1", two, kWhen);
    EXPECT_NE(h.find("\t(using TLSv1.3 with cipher TLS_AES_256_GCM_SHA384)\r\n"), std::string::npos)
        << h;
    EXPECT_NE(h.find("with ESMTPSA id 1"), std::string::npos) << h;
    EXPECT_EQ(h.find("alice"), std::string::npos) << "the login is not disclosed";
}

TEST(ReceivedHeader, UnknownNamesIPv6AndHostileHelosStayOneSafeHeader) {
    auto id = client();
    id.address = *base::IpAddress::parse("2001:db8::1");
    id.name = "[UNAVAILABLE]";
    id.helo = std::string("evil\x01host (x)\x7f") + std::string(400, 'a');
    auto h = received_header(id, "mx", "1", {mailbox("b", "example.net")}, kWhen);
    EXPECT_EQ(h.rfind("Received: from evil?host?(x)?aaa", 0), 0u) << h;
    EXPECT_NE(h.find(" (unknown [IPv6:2001:db8::1])\r\n"), std::string::npos) << h;
    EXPECT_LT(h.size(), 400u);
    // Lines of printable ASCII, folded with a tab, ended by CRLF.
    std::size_t from = 0, lines = 0;
    for (auto end = h.find("\r\n"); end != std::string::npos; end = h.find("\r\n", from)) {
        auto line = h.substr(from, end - from);
        EXPECT_TRUE(lines == 0 || line.front() == '\t') << line;
        for (char c : line.substr(lines == 0 ? 0 : 1))
            EXPECT_TRUE(c >= 0x20 && c < 0x7f) << int(c) << " in " << line;
        from = end + 2;
        ++lines;
    }
    EXPECT_EQ(from, h.size());
    id.helo.clear();  // none: the client's name stands in, as in Postfix
    h = received_header(id, "mx", "1", {}, kWhen);
    EXPECT_EQ(h.rfind("Received: from unknown (unknown [IPv6:2001:db8::1])", 0), 0u) << h;
}

TEST(PrefixedBody, ReadsThePrefixThenTheBody) {
    proto::StringBody body("Subject: x\r\n\r\nhello\r\n");
    PrefixedBody traced("Received: a\r\n", body);
    EXPECT_EQ(traced.size(), 13u + body.size());
    std::string scratch, all;
    for (std::uint64_t at = 0; at < traced.size();) {
        auto chunk = traced.chunk_at(at, 5, scratch);
        ASSERT_FALSE(chunk.empty());
        all += chunk;
        at += chunk.size();
    }
    EXPECT_EQ(all, "Received: a\r\nSubject: x\r\n\r\nhello\r\n");
}

}  // namespace
}  // namespace smtplb::core
