// What the admin side reads from a LimitSet: counters that survive a reload
// that changes the limits, the cached scan of the keys nearest a limit, and
// a key built from part values as the sessions' keys are built.
#include <gtest/gtest.h>

#include <memory>

#include "core/limits/limit_set.hpp"
#include "mocks/fake_clock.hpp"

using smtplb::base::IpAddress;
using smtplb::config::Limit;
using smtplb::config::LimitCounts;
using smtplb::config::LimitKeyPart;
using smtplb::core::LimitEvent;
using smtplb::core::LimitSet;
using smtplb::core::LimitSubject;
using smtplb::core::LimitVerdict;
using smtplb::testing::FakeClock;
using namespace std::chrono_literals;
using Kind = LimitVerdict::Kind;

namespace {

Limit per_sender(std::string name, std::uint64_t burst, std::uint32_t max_keys = 100000) {
    Limit l;
    l.name = std::move(name);
    l.key = {LimitKeyPart::Sender};
    l.counts = LimitCounts::Messages;
    l.quantity = burst;
    l.period = 60s;
    l.burst = burst;
    l.max_keys = max_keys;
    return l;
}

std::shared_ptr<LimitSet> make(std::vector<Limit> limits) {
    auto store = LimitSet::in_process_store(limits);
    return std::make_shared<LimitSet>(std::move(limits), store);
}

LimitSubject sender(const std::string& address) {
    LimitSubject s;
    s.listener = "internet";
    s.client = IpAddress::parse("192.0.2.7");
    s.sender = address;
    return s;
}

// One message from `address` at end of data.
Kind send(LimitSet& set, const std::string& address, FakeClock& clock) {
    return set.check(LimitEvent::EndOfData, sender(address), clock.now()).kind;
}

}  // namespace

TEST(LimitWatch, AReloadThatChangesTheLimitsKeepsEachNamedLimitsCounters) {
    FakeClock clock;
    auto before = make({per_sender("per-sender", 1, 2)});
    EXPECT_EQ(send(*before, "a@x.example", clock), Kind::Allow);
    EXPECT_EQ(send(*before, "a@x.example", clock), Kind::Tempfail);
    for (const char* s : {"b@x.example", "c@x.example", "d@x.example"})
        send(*before, s, clock);  // two keys at most: two evicted
    ASSERT_EQ(before->stats(0).evictions, 2u);

    // The rate changes and a limit is added: a new set, counters carried on.
    auto after = make({per_sender("new", 5), per_sender("per-sender", 3, 2)});
    after->carry_over(*before);
    EXPECT_EQ(after->hits(1).tempfail, 1u);
    EXPECT_EQ(after->hits(0).tempfail, 0u);
    EXPECT_EQ(after->stats(1).evictions, 2u);
    EXPECT_EQ(after->stats(1).tracked_keys, 0u);  // state starts afresh; only counters go on
    // A session of the old generation still counts into the same total.
    EXPECT_EQ(send(*before, "d@x.example", clock), Kind::Tempfail);
    EXPECT_EQ(after->hits(1).tempfail, 2u);
    // And the new set's own evictions add to those carried.
    for (const char* s : {"e@x.example", "f@x.example", "g@x.example"})
        send(*after, s, clock);
    EXPECT_EQ(after->stats(1).evictions, 3u);
}

TEST(LimitWatch, AReloadKeepsTheStateOfTheLimitsItLeavesAsTheyWere) {
    FakeClock clock;
    auto before = make({per_sender("kept", 2), per_sender("changed", 2)});
    for (int i = 0; i < 2; ++i)
        ASSERT_EQ(send(*before, "a@x.example", clock), Kind::Allow);
    ASSERT_EQ(send(*before, "a@x.example", clock), Kind::Tempfail);

    // "changed" gets another rate and moves; "kept" is the same, elsewhere.
    auto after = make({per_sender("changed", 3), per_sender("kept", 2)});
    after->carry_over(*before);
    EXPECT_EQ(after->stats(1).tracked_keys, 1u);  // kept: a@ still at its limit
    EXPECT_EQ(after->stats(0).tracked_keys, 0u);  // changed: afresh
    auto verdict = after->check(LimitEvent::EndOfData, sender("a@x.example"), clock.now());
    EXPECT_EQ(verdict.kind, Kind::Tempfail);
    EXPECT_EQ(verdict.limit, "kept");
    // One state for both generations: what the old one counts, the new one sees.
    EXPECT_EQ(send(*before, "b@x.example", clock), Kind::Allow);
    EXPECT_EQ(after->stats(1).tracked_keys, 2u);
}

TEST(LimitWatch, TheKeysNearestALimitAreScannedAtMostEveryFewSeconds) {
    FakeClock clock;
    auto set = make({per_sender("per-sender", 3)});
    send(*set, "a@x.example", clock);
    auto first = set->top_keys(0, clock.now());
    ASSERT_EQ(first.keys.size(), 1u);
    EXPECT_EQ(first.keys[0].key, "sender=a@x.example");
    EXPECT_EQ(first.keys[0].remaining, 2u);

    // Within kTopKeysMaxAge, the same scan (however often it is asked for).
    send(*set, "b@x.example", clock);
    send(*set, "b@x.example", clock);
    clock.advance(LimitSet::kTopKeysMaxAge - 1ms);
    auto cached = set->top_keys(0, clock.now());
    EXPECT_EQ(cached.scanned_at, first.scanned_at);
    EXPECT_EQ(cached.keys.size(), 1u);

    // Then a new one: b, with less left, first.
    clock.advance(1ms);
    auto fresh = set->top_keys(0, clock.now());
    EXPECT_EQ(fresh.scanned_at, clock.now());
    ASSERT_EQ(fresh.keys.size(), 2u);
    EXPECT_EQ(fresh.keys[0].key, "sender=b@x.example");
    EXPECT_EQ(fresh.keys[0].remaining, 1u);
    EXPECT_TRUE(set->top_keys(5, clock.now()).keys.empty());  // no such limit
}

TEST(LimitWatch, AKeyFromPartValuesIsTheKeyTheSessionsCount) {
    Limit combined = per_sender("combined", 5);
    combined.key = {LimitKeyPart::ClientNetwork, LimitKeyPart::Sender};
    combined.ipv4_prefix = 16;
    Limit by_ip = per_sender("by-ip", 5);
    by_ip.key = {LimitKeyPart::ClientIp};
    auto set = make({combined, by_ip, per_sender("per-sender", 5)});
    LimitSubject subject = sender("A|b=c%@X.Example");
    subject.client = IpAddress::parse("::ffff:192.0.2.7");

    // Parts in any order, values unescaped, in the case a client wrote them.
    LimitSet::KeyValues values{{LimitKeyPart::Sender, "A|b=c%@X.Example"},
                               {LimitKeyPart::ClientNetwork, "192.0.2.99"}};
    auto key = set->key_of(0, values);
    ASSERT_TRUE(key);
    EXPECT_EQ(*key, "client_network=192.0.0.0/16|sender=a%7Cb%3Dc%25@x.example");
    EXPECT_EQ(set->keys(0, LimitEvent::EndOfData, subject), std::vector<std::string>{*key});

    EXPECT_EQ(set->key_of(1, {{LimitKeyPart::ClientIp, "::ffff:192.0.2.7"}}),
              "client_ip=192.0.2.7");
    EXPECT_EQ(set->key_of(2, {{LimitKeyPart::Sender, ""}}), "sender=<>");
    // Other parts, fewer, more, or an address that is not one: no key.
    EXPECT_FALSE(set->key_of(2, {{LimitKeyPart::SenderDomain, "x.example"}}));
    EXPECT_FALSE(set->key_of(0, {{LimitKeyPart::Sender, "a@x.example"}}));
    EXPECT_FALSE(set->key_of(2, values));
    EXPECT_FALSE(set->key_of(1, {{LimitKeyPart::ClientIp, "not-an-address"}}));
    EXPECT_FALSE(set->key_of(7, values));
}
