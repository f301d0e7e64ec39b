#include <gtest/gtest.h>

#include <map>

#include "core/hash_ring.hpp"
#include "core/scheduler.hpp"
#include "mocks/scripted_random.hpp"

using namespace smtplb;

namespace {
std::vector<core::BackendState> backends(std::vector<std::uint32_t> weights) {
    std::vector<core::BackendState> out;
    config::Pool pool;
    for (std::size_t i = 0; i < weights.size(); ++i) {
        config::Backend b;
        b.name = "b" + std::to_string(i);
        b.weight = weights[i];
        out.emplace_back(b, pool);
    }
    return out;
}
std::vector<std::size_t> all(const std::vector<core::BackendState>& b) {
    std::vector<std::size_t> c;
    for (std::size_t i = 0; i < b.size(); ++i)
        c.push_back(i);
    return c;
}
}  // namespace

TEST(SmoothRoundRobin, Weights3To1Give75To25Over400Picks) {
    auto b = backends({3, 1});
    core::SmoothRoundRobin s;
    std::map<std::size_t, int> count;
    for (int i = 0; i < 400; ++i)
        ++count[s.choose(b, all(b), 0)];
    EXPECT_EQ(count[0], 300);
    EXPECT_EQ(count[1], 100);
}

TEST(SmoothRoundRobin, InterleavesInsteadOfBursting) {
    auto b = backends({2, 1, 1});
    core::SmoothRoundRobin s;
    std::vector<std::size_t> seq;
    for (int i = 0; i < 8; ++i)
        seq.push_back(s.choose(b, all(b), 0));
    // The heavy backend never gets two in a row when others are due.
    EXPECT_EQ(seq, (std::vector<std::size_t>{0, 1, 2, 0, 0, 1, 2, 0}));
}

TEST(SmoothRoundRobin, EqualWeightsGiveExactThirds) {
    auto b = backends({1, 1, 1});
    core::SmoothRoundRobin s;
    std::map<std::size_t, int> count;
    for (int i = 0; i < 300; ++i)
        ++count[s.choose(b, all(b), 0)];
    EXPECT_EQ(count[0], 100);
    EXPECT_EQ(count[1], 100);
    EXPECT_EQ(count[2], 100);
}

TEST(LeastLoaded, PicksLowestPendingPerWeightAndRotatesTies) {
    auto b = backends({1, 1, 2});
    b[0].pending = 3;
    b[1].pending = 1;
    b[2].pending = 3;  // 1.5 per unit of weight
    core::LeastLoaded s(core::LeastLoaded::Measure::Pending);
    EXPECT_EQ(s.choose(b, all(b), 0), 1u);
    b[1].pending = 0;
    b[0].pending = 0;
    b[2].pending = 0;
    std::map<std::size_t, int> count;
    for (int i = 0; i < 30; ++i)
        ++count[s.choose(b, all(b), 0)];
    EXPECT_EQ(count.size(), 3u);  // ties spread, not always the first
}

TEST(LeastLoaded, Connections) {
    auto b = backends({1, 1});
    b[0].active_connections = 5;
    b[1].active_connections = 2;
    core::LeastLoaded s(core::LeastLoaded::Measure::Connections);
    EXPECT_EQ(s.choose(b, all(b), 0), 1u);
}

TEST(RandomTwo, PrefersTheLessLoadedOfTwo) {
    auto b = backends({1, 1, 1});
    b[0].pending = 10;
    b[1].pending = 0;
    b[2].pending = 5;
    smtplb::testing::ScriptedRandom random({0, 0});  // candidates 0 and (0 -> skips to) 1
    core::RandomTwo s(random);
    EXPECT_EQ(s.choose(b, all(b), 0), 1u);
    smtplb::testing::ScriptedRandom random2({2, 0});  // candidates 2 and 0
    core::RandomTwo s2(random2);
    EXPECT_EQ(s2.choose(b, all(b), 0), 2u);
}

TEST(HashRing, AddingABackendMovesAtMostOneNthPlusFivePercent) {
    for (std::size_t n : {2u, 3u, 5u, 8u}) {
        std::vector<std::string> names;
        for (std::size_t i = 0; i <= n; ++i)
            names.push_back("hub" + std::to_string(i));
        std::vector<core::HashRing::Member> before, after;
        for (std::size_t i = 0; i < n; ++i)
            before.push_back({names[i], 1});
        after = before;
        after.push_back({names[n], 1});
        core::HashRing r1(before), r2(after);
        const int keys = 20000;
        int moved = 0;
        for (int k = 0; k < keys; ++k) {
            auto key = core::stable_hash("192.0.2." + std::to_string(k));
            auto a = r1.owner(key), b = r2.owner(key);
            if (a != b) {
                ++moved;
                EXPECT_EQ(b, n) << "a key moved between old backends";
            }
        }
        double share = static_cast<double>(moved) / keys;
        EXPECT_LE(share, 1.0 / (n + 1) + 0.05) << n;
        EXPECT_GE(share, 1.0 / (n + 1) - 0.05) << n;
    }
}

TEST(SourceHash, SameClientSameBackendAndOnlyItsClientsMoveWhenDown) {
    auto b = backends({1, 1, 1});
    core::SourceHash s(b);
    std::map<std::uint64_t, std::size_t> first;
    for (int k = 0; k < 3000; ++k) {
        auto key = core::stable_hash("client" + std::to_string(k));
        first[key] = s.choose(b, all(b), key);
        EXPECT_EQ(s.choose(b, all(b), key), first[key]);
    }
    std::vector<std::size_t> without_1 = {0, 2};
    for (auto [key, owner] : first) {
        auto now = s.choose(b, without_1, key);
        if (owner != 1)
            EXPECT_EQ(now, owner);
        else
            EXPECT_NE(now, 1u);
    }
}
