#include <gtest/gtest.h>

#include <memory>

#include "core/limits/limit_set.hpp"
#include "mocks/fake_clock.hpp"
#include "mocks/mock_limit_store.hpp"

using smtplb::base::Cidr;
using smtplb::base::IpAddress;
using smtplb::config::Limit;
using smtplb::config::LimitAction;
using smtplb::config::LimitCounts;
using smtplb::config::LimitKeyPart;
using smtplb::core::AcquireResult;
using smtplb::core::GcraDecision;
using smtplb::core::LimitEvent;
using smtplb::core::LimitSet;
using smtplb::core::LimitSubject;
using smtplb::core::LimitVerdict;
using smtplb::testing::FakeClock;
using smtplb::testing::MockLimitStore;
using namespace std::chrono_literals;
using Kind = LimitVerdict::Kind;

namespace {

Limit rate(std::string name, std::vector<LimitKeyPart> key, LimitCounts counts,
           std::uint64_t quantity, std::chrono::milliseconds period, std::uint64_t burst) {
    Limit l;
    l.name = std::move(name);
    l.key = std::move(key);
    l.counts = counts;
    l.quantity = quantity;
    l.period = period;
    l.burst = burst;
    return l;
}

Limit concurrency(std::string name, std::vector<LimitKeyPart> key, LimitCounts counts,
                  std::uint32_t max) {
    Limit l;
    l.name = std::move(name);
    l.key = std::move(key);
    l.counts = counts;
    l.concurrency = max;
    return l;
}

LimitSet make(std::vector<Limit> limits) {
    auto store = LimitSet::in_process_store(limits);
    return LimitSet(std::move(limits), store);
}

LimitSubject client(const char* ip, const char* sender = nullptr) {
    LimitSubject s;
    s.listener = "internet";
    s.client = IpAddress::parse(ip);
    if (sender) s.sender = sender;
    return s;
}

}  // namespace

TEST(LimitSet, ASenderGetsItsBurstThen451NamingTheLimitAndAgainAfterTheInterval) {
    FakeClock clock;
    auto set =
        make({rate("per-sender", {LimitKeyPart::Sender}, LimitCounts::Messages, 10, 1min, 5)});
    auto s = client("192.0.2.1", "alice@example.net");
    int delivered = 0;
    while (set.check(LimitEvent::Mail, s, clock.now()).kind == Kind::Allow && delivered < 100) {
        EXPECT_EQ(set.check(LimitEvent::EndOfData, s, clock.now()).kind, Kind::Allow);
        ++delivered;
    }
    EXPECT_EQ(delivered, 5);
    auto refused = set.check(LimitEvent::Mail, s, clock.now());
    EXPECT_EQ(refused.kind, Kind::Tempfail);
    EXPECT_EQ(refused.reply.wire(),
              "451 4.7.1 Too many messages (limit \"per-sender\"), try again in 6 seconds\r\n");
    EXPECT_EQ(refused.limit, "per-sender");
    EXPECT_EQ(refused.key, "sender=alice@example.net");
    // Another sender is not affected.
    EXPECT_EQ(set.check(LimitEvent::Mail, client("192.0.2.1", "bob@example.net"), clock.now()).kind,
              Kind::Allow);
    clock.advance(1min);
    EXPECT_EQ(set.check(LimitEvent::Mail, s, clock.now()).kind, Kind::Allow);
    EXPECT_EQ(set.hits(0).tempfail, 2u);
}

TEST(LimitSet, AClientOverItsConcurrencyGets421UntilAConnectionEnds) {
    FakeClock clock;
    auto set = make(
        {concurrency("conns", {LimitKeyPart::ClientIp}, LimitCounts::ConcurrentConnections, 2)});
    auto s = client("192.0.2.7");
    auto first = set.check(LimitEvent::Connect, s, clock.now());
    auto second = set.check(LimitEvent::Connect, s, clock.now());
    ASSERT_EQ(first.kind, Kind::Allow);
    ASSERT_EQ(second.kind, Kind::Allow);
    ASSERT_EQ(first.leases.size(), 1u);
    auto third = set.check(LimitEvent::Connect, s, clock.now());
    EXPECT_EQ(third.kind, Kind::Tempfail);
    EXPECT_EQ(third.reply.code, 421);
    EXPECT_EQ(third.reply.enhanced, "4.7.0");
    EXPECT_EQ(third.reply.summary(),
              "421 4.7.0 Too many concurrent connections (limit \"conns\"), try again later");
    first.leases.clear();  // the first connection ends
    EXPECT_EQ(set.check(LimitEvent::Connect, s, clock.now()).kind, Kind::Allow);
    // Each verdict above dropped its leases when it went: nothing is held.
    second.leases.clear();
    EXPECT_EQ(set.store().stats(0).tracked_keys, 0u);
}

TEST(LimitSet, ARefusalGivesBackWhatTheSameEventCountedElsewhere) {
    FakeClock clock;
    auto set = make(
        {concurrency("conns", {LimitKeyPart::ClientIp}, LimitCounts::ConcurrentConnections, 10),
         rate("per-sender-rcpts", {LimitKeyPart::Sender}, LimitCounts::Recipients, 100, 1min, 100),
         rate("per-domain", {LimitKeyPart::RecipientDomain}, LimitCounts::Recipients, 1, 1h, 1),
         rate("conn-rate", {LimitKeyPart::ClientIp}, LimitCounts::Connections, 1, 1h, 1)});
    auto s = client("192.0.2.7", "alice@example.net");
    auto held = set.check(LimitEvent::Connect, s, clock.now());
    ASSERT_EQ(held.kind, Kind::Allow);
    // The second connection passes the concurrency but not the rate: its
    // place is given back at once.
    EXPECT_EQ(set.check(LimitEvent::Connect, s, clock.now()).kind, Kind::Tempfail);
    EXPECT_EQ(set.store().in_use(0, "client_ip=192.0.2.7"), 1u);

    s.recipient = "a@example.org";
    EXPECT_EQ(set.check(LimitEvent::Rcpt, s, clock.now()).kind, Kind::Allow);
    s.recipient = "b@example.org";
    EXPECT_EQ(set.check(LimitEvent::Rcpt, s, clock.now()).kind, Kind::Tempfail);
    smtplb::core::Gcra per_sender(100, 1min, 100);
    auto sender = set.store().peek_rate(1, "sender=alice@example.net", per_sender, clock.now(), 1);
    // One recipient counted (the refused one given back), one more peeked at.
    EXPECT_EQ(sender.remaining, 98u);
}

TEST(LimitSet, AMessageRateIsLookedAtOnceBeforeTheBody) {
    FakeClock clock;
    auto set = make(
        {rate("per-sender", {LimitKeyPart::Sender}, LimitCounts::Messages, 1, 1h, 1),
         rate("per-domain", {LimitKeyPart::RecipientDomain}, LimitCounts::Messages, 1, 1h, 1)});
    auto s = client("192.0.2.7", "alice@example.net");
    s.recipient_domains = {"example.org"};
    ASSERT_EQ(set.check(LimitEvent::EndOfData, s, clock.now()).kind, Kind::Allow);
    // Both used up. Keyed by the sender: looked at MAIL, not at each RCPT.
    auto at_mail = set.check(LimitEvent::Mail, s, clock.now());
    EXPECT_EQ(at_mail.kind, Kind::Tempfail);
    EXPECT_EQ(at_mail.limit, "per-sender");
    s.recipient = "x@other.example";
    EXPECT_EQ(set.check(LimitEvent::Rcpt, s, clock.now()).kind, Kind::Allow);
    // Keyed by the recipient's domain: not known at MAIL, looked at at RCPT.
    s.recipient = "x@Example.org";
    auto at_rcpt = set.check(LimitEvent::Rcpt, s, clock.now());
    EXPECT_EQ(at_rcpt.kind, Kind::Tempfail);
    EXPECT_EQ(at_rcpt.limit, "per-domain");
    EXPECT_EQ(at_rcpt.key, "recipient_domain=example.org");
}

TEST(LimitSet, ARefusalForOneDomainGivesBackTheDomainsCountedBeforeIt) {
    FakeClock clock;
    auto set = make(
        {rate("per-domain", {LimitKeyPart::RecipientDomain}, LimitCounts::Messages, 1, 1h, 1)});
    auto s = client("192.0.2.7", "alice@example.net");
    s.recipient_domains = {"two.example"};
    ASSERT_EQ(set.check(LimitEvent::EndOfData, s, clock.now()).kind, Kind::Allow);
    s.recipient_domains = {"one.example", "three.example", "two.example"};
    auto refused = set.check(LimitEvent::EndOfData, s, clock.now());
    EXPECT_EQ(refused.kind, Kind::Tempfail);
    EXPECT_EQ(refused.key, "recipient_domain=two.example");
    // one and three were counted, then given back: each still has its one.
    s.recipient_domains = {"three.example", "one.example"};
    EXPECT_EQ(set.check(LimitEvent::EndOfData, s, clock.now()).kind, Kind::Allow);
}

TEST(LimitSet, ARecipientTheBackendRefusesIsGivenBack) {
    FakeClock clock;
    auto set = make({rate("rcpts", {LimitKeyPart::Sender}, LimitCounts::Recipients, 2, 1h, 2)});
    auto s = client("192.0.2.7", "alice@example.net");
    s.recipient = "a@example.org";
    EXPECT_EQ(set.check(LimitEvent::Rcpt, s, clock.now()).kind, Kind::Allow);
    EXPECT_EQ(set.check(LimitEvent::Rcpt, s, clock.now()).kind, Kind::Allow);
    set.refund(LimitEvent::Rcpt, s, clock.now());
    EXPECT_EQ(set.check(LimitEvent::Rcpt, s, clock.now()).kind, Kind::Allow);
    EXPECT_EQ(set.check(LimitEvent::Rcpt, s, clock.now()).kind, Kind::Tempfail);
}

TEST(LimitSet, ExemptNetworksAndUsersAndOtherListenersAreNeverLimited) {
    FakeClock clock;
    auto l = rate("tight", {LimitKeyPart::ClientIp}, LimitCounts::Connections, 1, 1h, 1);
    l.exempt_networks = {*Cidr::parse("10.0.0.0/8")};
    l.exempt_auth_users = {"monitor"};
    l.listeners = {"internet"};
    auto set = make({l});
    for (int i = 0; i < 10; ++i)
        EXPECT_EQ(set.check(LimitEvent::Connect, client("10.1.2.3"), clock.now()).kind,
                  Kind::Allow);
    auto other = client("192.0.2.1");
    other.listener = "submission";
    for (int i = 0; i < 10; ++i)
        EXPECT_EQ(set.check(LimitEvent::Connect, other, clock.now()).kind, Kind::Allow);
    auto monitor = client("192.0.2.1");
    monitor.auth_user = "monitor";
    for (int i = 0; i < 10; ++i)
        EXPECT_EQ(set.check(LimitEvent::Connect, monitor, clock.now()).kind, Kind::Allow);
    EXPECT_EQ(set.check(LimitEvent::Connect, client("192.0.2.1"), clock.now()).kind, Kind::Allow);
    EXPECT_EQ(set.check(LimitEvent::Connect, client("192.0.2.1"), clock.now()).kind,
              Kind::Tempfail);
    // An IPv4-mapped address is the IPv4 client.
    EXPECT_EQ(set.check(LimitEvent::Connect, client("::ffff:10.9.9.9"), clock.now()).kind,
              Kind::Allow);
    EXPECT_EQ(set.check(LimitEvent::Connect, client("::ffff:10.9.9.9"), clock.now()).kind,
              Kind::Allow);
}

TEST(LimitSet, KeysNormaliseCombineAndWaitForWhatIsNotKnownYet) {
    auto net = rate("net", {LimitKeyPart::ClientNetwork, LimitKeyPart::SenderDomain},
                    LimitCounts::Messages, 10, 1min, 10);
    auto user = rate("user", {LimitKeyPart::AuthUser}, LimitCounts::Messages, 10, 1min, 10);
    auto domain = rate("dom", {LimitKeyPart::Listener, LimitKeyPart::RecipientDomain},
                       LimitCounts::Messages, 10, 1min, 10);
    auto sender = rate("snd", {LimitKeyPart::Sender}, LimitCounts::Messages, 10, 1min, 10);
    auto set = make({net, user, domain, sender});
    auto s = client("203.0.113.77", "Alice@Example.NET");
    using V = std::vector<std::string>;
    EXPECT_EQ(set.keys(0, LimitEvent::Mail, s),
              V{"client_network=203.0.113.0/24|sender_domain=example.net"});
    EXPECT_EQ(set.keys(0, LimitEvent::Mail, client("2001:db8:1:2:3:4:5:6", "a@b")),
              V{"client_network=2001:db8:1:2::/64|sender_domain=b"});
    EXPECT_EQ(set.keys(0, LimitEvent::Connect, client("203.0.113.77")), V{});
    net.ipv4_prefix = 20;
    net.ipv6_prefix = 0;
    auto odd = make({net});
    EXPECT_EQ(odd.keys(0, LimitEvent::Mail, s),
              V{"client_network=203.0.112.0/20|sender_domain=example.net"});
    EXPECT_EQ(odd.keys(0, LimitEvent::Mail, client("2001:db8::1", "a@b")),
              V{"client_network=::/0|sender_domain=b"});
    EXPECT_EQ(set.keys(1, LimitEvent::Mail, s), V{});  // not authenticated
    s.auth_user = "alice";
    EXPECT_EQ(set.keys(1, LimitEvent::Mail, s), V{"auth_user=alice"});
    EXPECT_EQ(set.keys(2, LimitEvent::Mail, s), V{});  // no recipient yet
    s.recipient = "x@Example.ORG";
    EXPECT_EQ(set.keys(2, LimitEvent::Rcpt, s),
              V{"listener=internet|recipient_domain=example.org"});
    s.recipient_domains = {"example.org", "EXAMPLE.org", "example.com"};
    // Each distinct domain once, in the order the recipients came.
    EXPECT_EQ(set.keys(2, LimitEvent::EndOfData, s),
              (V{"listener=internet|recipient_domain=example.org",
                 "listener=internet|recipient_domain=example.com"}));
    EXPECT_EQ(set.keys(3, LimitEvent::Mail, s), V{"sender=alice@example.net"});
    EXPECT_EQ(set.keys(3, LimitEvent::Mail, client("192.0.2.1", "")), V{"sender=<>"});
    // A sender cannot pose as another key: '|' and '=' are escaped.
    EXPECT_EQ(set.keys(3, LimitEvent::Mail, client("192.0.2.1", "\"a|b=c%\"@x")),
              V{"sender=\"a%7Cb%3Dc%25\"@x"});
}

TEST(LimitSet, AMessageToSeveralDomainsCountsOncePerDomain) {
    FakeClock clock;
    auto set = make(
        {rate("per-domain", {LimitKeyPart::RecipientDomain}, LimitCounts::Messages, 1, 1h, 1)});
    auto s = client("192.0.2.1", "a@example.net");
    s.recipient_domains = {"one.example", "two.example"};
    EXPECT_EQ(set.check(LimitEvent::EndOfData, s, clock.now()).kind, Kind::Allow);
    s.recipient = "x@two.example";
    EXPECT_EQ(set.check(LimitEvent::Rcpt, s, clock.now()).kind, Kind::Tempfail);
    s.recipient = "x@three.example";
    EXPECT_EQ(set.check(LimitEvent::Rcpt, s, clock.now()).kind, Kind::Allow);
}

TEST(LimitSet, ADelayHoldsTheReplyWhileTheWaitIsShortThenRefusesAfterTheLongestHold) {
    FakeClock clock;
    auto l = rate("tarpit", {LimitKeyPart::ClientIp}, LimitCounts::Connections, 10, 1min, 1);
    l.action = LimitAction::Delay;
    l.delay = 10s;
    auto set = make({l});
    auto s = client("192.0.2.9");
    EXPECT_EQ(set.check(LimitEvent::Connect, s, clock.now()).kind, Kind::Allow);
    auto delayed = set.check(LimitEvent::Connect, s, clock.now());
    EXPECT_EQ(delayed.kind, Kind::Delay);
    EXPECT_EQ(delayed.hold, 6s);
    EXPECT_EQ(delayed.limit, "tarpit");
    EXPECT_EQ(delayed.key, "client_ip=192.0.2.9");
    // The delayed one was counted at the end of its hold: the next waits 12 s.
    auto refused = set.check(LimitEvent::Connect, s, clock.now());
    EXPECT_EQ(refused.kind, Kind::Tempfail);
    EXPECT_EQ(refused.hold, 10s);
    EXPECT_EQ(refused.reply.code, 421);
    // Named from the refusal, which comes after the 10 s hold: 12 - 10.
    EXPECT_NE(refused.reply.wire().find("try again in 2 seconds"), std::string::npos)
        << refused.reply.wire();
    EXPECT_EQ(set.hits(0).delay, 1u);
    EXPECT_EQ(set.hits(0).tempfail, 1u);
}

TEST(LimitSet, BytesCountTheMessageSizeAndAHugeMessagePassesOnAFullBurst) {
    FakeClock clock;
    auto set =
        make({rate("volume", {LimitKeyPart::Sender}, LimitCounts::Bytes, 1 << 20, 1h, 1 << 20)});
    auto s = client("192.0.2.1", "a@example.net");
    s.bytes = 600 << 10;
    EXPECT_EQ(set.check(LimitEvent::Mail, s, clock.now()).kind, Kind::Allow);  // SIZE=
    EXPECT_EQ(set.check(LimitEvent::EndOfData, s, clock.now()).kind, Kind::Allow);
    EXPECT_EQ(set.check(LimitEvent::Mail, s, clock.now()).kind, Kind::Tempfail);
    s.bytes = 0;  // no SIZE=: is there anything left at all?
    EXPECT_EQ(set.check(LimitEvent::Mail, s, clock.now()).kind, Kind::Allow);
    clock.advance(1h);
    s.bytes = 50 << 20;
    EXPECT_EQ(set.check(LimitEvent::EndOfData, s, clock.now()).kind, Kind::Allow);
    s.bytes = 1;
    EXPECT_EQ(set.check(LimitEvent::EndOfData, s, clock.now()).kind, Kind::Tempfail);
}

TEST(LimitSet, AConfiguredReplyIsUsedAsWritten) {
    FakeClock clock;
    auto l = rate("r", {LimitKeyPart::Sender}, LimitCounts::Messages, 1, 1h, 1);
    l.reply = smtplb::proto::Reply::make(450, "4.7.1", "Slow down");
    auto set = make({l});
    auto s = client("192.0.2.1", "a@example.net");
    set.check(LimitEvent::EndOfData, s, clock.now());
    EXPECT_EQ(set.check(LimitEvent::Mail, s, clock.now()).reply.wire(), "450 4.7.1 Slow down\r\n");
}

TEST(LimitSet, ATransactionHoldsItsPlaceUntilItEnds) {
    FakeClock clock;
    auto set =
        make({concurrency("tx", {LimitKeyPart::Sender}, LimitCounts::ConcurrentTransactions, 1)});
    auto s = client("192.0.2.1", "a@example.net");
    EXPECT_TRUE(set.check(LimitEvent::Connect, s, clock.now()).leases.empty());
    auto tx = set.check(LimitEvent::Mail, s, clock.now());
    EXPECT_EQ(tx.kind, Kind::Allow);
    auto second = set.check(LimitEvent::Mail, s, clock.now());
    EXPECT_EQ(second.kind, Kind::Tempfail);
    EXPECT_EQ(second.reply.code, 451);
    tx.leases.clear();
    EXPECT_EQ(set.check(LimitEvent::Mail, s, clock.now()).kind, Kind::Allow);
}

TEST(LimitSet, AStoreThatIsFullRefusesAndWhatWasCountedIsRefunded) {
    using ::testing::_;
    using ::testing::Return;
    FakeClock clock;
    auto store = std::make_shared<MockLimitStore>();
    std::vector<Limit> limits{
        rate("rate", {LimitKeyPart::ClientIp}, LimitCounts::Connections, 10, 1min, 10),
        concurrency("conns", {LimitKeyPart::ClientIp}, LimitCounts::ConcurrentConnections, 5)};
    LimitSet set(limits, store);
    GcraDecision allowed;
    allowed.allowed = true;
    EXPECT_CALL(*store, rate(0, std::string_view("client_ip=192.0.2.1"), _, _, 1, _))
        .WillOnce(Return(allowed));
    EXPECT_CALL(*store, acquire(1, std::string_view("client_ip=192.0.2.1"), 5))
        .WillOnce(Return(AcquireResult::TableFull));
    EXPECT_CALL(*store, refund_rate(0, std::string_view("client_ip=192.0.2.1"), _, _, 1));
    EXPECT_CALL(*store, release(_, _)).Times(0);
    auto v = set.check(LimitEvent::Connect, client("192.0.2.1"), clock.now());
    EXPECT_EQ(v.kind, Kind::Tempfail);
    EXPECT_EQ(v.limit, "conns");
}

TEST(LimitSet, ReportsAKeysStateAndTheKeysNearestTheirLimits) {
    FakeClock clock;
    auto set = make(
        {rate("per-sender", {LimitKeyPart::Sender}, LimitCounts::Messages, 10, 1min, 5),
         concurrency("conns", {LimitKeyPart::ClientIp}, LimitCounts::ConcurrentConnections, 3)});
    auto s = client("192.0.2.1", "alice@example.net");
    set.check(LimitEvent::EndOfData, s, clock.now());
    set.check(LimitEvent::EndOfData, s, clock.now());
    auto conn = set.check(LimitEvent::Connect, s, clock.now());
    auto state = set.inspect(0, "sender=alice@example.net", clock.now());
    EXPECT_EQ(state.remaining, 3u);
    EXPECT_EQ(state.reset_after, 12s);
    EXPECT_EQ(set.inspect(0, "sender=nobody@example.net", clock.now()).remaining, 5u);
    EXPECT_EQ(set.inspect(1, "client_ip=192.0.2.1", clock.now()).in_use, 1u);
    auto top = set.nearest(0, clock.now(), 10);
    ASSERT_EQ(top.size(), 1u);
    EXPECT_EQ(top[0].key, "sender=alice@example.net");
    EXPECT_EQ(set.nearest(1, clock.now(), 10).at(0).in_use, 1u);
}
