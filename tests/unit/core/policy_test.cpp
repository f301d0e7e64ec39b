#include <gtest/gtest.h>

#include "core/policy.hpp"
#include "proto/command.hpp"

using namespace smtplb;

namespace {
config::Listener listener(config::Role role) {
    config::Listener l;
    l.role = role;
    l.accepted_domains = {"example.net", ".sub.example.net"};
    l.trusted_networks = {*base::Cidr::parse("10.0.0.0/8")};
    return l;
}
proto::Mailbox mailbox(const std::string& path) {
    proto::Path p;
    auto err = proto::parse_rcpt_argument("TO:" + path, p);
    EXPECT_FALSE(err) << path;
    return p.mailbox;
}
const base::IpAddress kOutsider = *base::IpAddress::parse("192.0.2.7");
const base::IpAddress kInsider = *base::IpAddress::parse("10.1.2.3");
}  // namespace

// The classic open-relay probes (as in nmap's smtp-open-relay), all refused
// on an inbound listener, whatever the backends would do.
class OpenRelayBattery : public ::testing::TestWithParam<const char*> {};

TEST_P(OpenRelayBattery, RefusedWith550_571ForOutsiders) {
    for (auto role : {config::Role::Inbound, config::Role::Relay}) {
        auto l = listener(role);
        core::RelayPolicy policy(l);
        auto refusal = policy.check_recipient(kOutsider, false, mailbox(GetParam()));
        ASSERT_TRUE(refusal) << GetParam();
        EXPECT_EQ(refusal->code, 550);
        EXPECT_EQ(refusal->enhanced, "5.7.1");
    }
}

INSTANTIATE_TEST_SUITE_P(
    Classic, OpenRelayBattery,
    ::testing::Values("<victim@target.example>", "<victim%target.example@example.net>",
                      "<target.example!victim@example.net>",
                      "<\"victim@target.example\"@example.net>",
                      "<\"victim%target.example\"@example.net>",
                      "<@example.net:victim@target.example>",
                      "<@example.net,@relay.example:victim@example.net>", "<victim@[192.0.2.1]>",
                      "<victim@[IPv6:2001:db8::1]>", "<victim@example.net.target.example>",
                      "<victim@notexample.net>", "<\"victim\\@target\"@example.net>",
                      "<victim@sub.example.net.evil.example>"));

TEST(RelayPolicy, AcceptsOwnDomainsSubdomainsAndPostmaster) {
    auto l = listener(config::Role::Inbound);
    core::RelayPolicy policy(l);
    EXPECT_FALSE(policy.check_recipient(kOutsider, false, mailbox("<user@example.net>")));
    EXPECT_FALSE(policy.check_recipient(kOutsider, false, mailbox("<user@EXAMPLE.net>")));
    EXPECT_FALSE(policy.check_recipient(kOutsider, false, mailbox("<user@a.sub.example.net>")));
    EXPECT_FALSE(policy.check_recipient(kOutsider, false, mailbox("<Postmaster>")));
    EXPECT_TRUE(policy.check_recipient(kOutsider, false, mailbox("<user@sub.example.net>")));
}

TEST(RelayPolicy, TrustedNetworksRelayOnlyOnRelayListeners) {
    auto relay = listener(config::Role::Relay);
    core::RelayPolicy relay_policy(relay);
    EXPECT_FALSE(
        relay_policy.check_recipient(kInsider, false, mailbox("<someone@elsewhere.example>")));
    auto inbound = listener(config::Role::Inbound);
    core::RelayPolicy inbound_policy(inbound);
    EXPECT_TRUE(
        inbound_policy.check_recipient(kInsider, false, mailbox("<someone@elsewhere.example>")));
}

TEST(RelayPolicy, SubmissionNeedsAuthentication) {
    auto l = listener(config::Role::Submission);
    core::RelayPolicy policy(l);
    auto refusal = policy.check_sender(false);
    ASSERT_TRUE(refusal);
    EXPECT_EQ(refusal->code, 530);
    EXPECT_FALSE(policy.check_sender(true));
    EXPECT_FALSE(policy.check_recipient(kOutsider, true, mailbox("<x@elsewhere.example>")));
}

TEST(RelayPolicy, KnownRecipientsAreCheckedOnlyWithAFile) {
    auto l = listener(config::Role::Inbound);
    core::RelayPolicy policy(l);
    EXPECT_FALSE(policy.check_known_recipient(mailbox("<anyone@example.net>")));
    l.recipients_file = "/etc/smtplb/recipients";
    l.known_recipients = {"alice@example.net", "@sub.example.net"};
    EXPECT_FALSE(policy.check_known_recipient(mailbox("<Alice@Example.NET>")));
    EXPECT_FALSE(policy.check_known_recipient(mailbox("<x@sub.example.net>")));
    auto refusal = policy.check_known_recipient(mailbox("<bob@example.net>"));
    ASSERT_TRUE(refusal);
    EXPECT_EQ(refusal->code, 550);
    EXPECT_EQ(refusal->enhanced, "5.1.1");
}
