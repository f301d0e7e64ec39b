#include <gtest/gtest.h>

#include <cstdint>

#include "base/counter.hpp"

using namespace smtplb;

namespace {
template <class T>
concept PreDecrement = requires(T t) {
    --t;
};
template <class T>
concept PostDecrement = requires(T t) {
    t--;
};
template <class T>
concept Subtraction = requires(T t) {
    t -= std::uint64_t{1};
};
template <class T>
concept CanGoDown = PreDecrement<T> || PostDecrement<T> || Subtraction<T>;
}  // namespace

// /metrics exports every base::Counter as a Prometheus counter: one that
// could go down would read as a reset. A level that goes back is a Gauge.
static_assert(!CanGoDown<base::Counter>, "a Counter only goes up");
static_assert(CanGoDown<base::Gauge>);

TEST(Counter, OnlyGoesUpAndSurvivesACopy) {
    base::Counter c;
    ++c;
    c++;
    c += 3;
    EXPECT_EQ(c.load(), 5u);
    base::Counter carried = c;  // a reload carries counters over
    EXPECT_EQ(std::uint64_t(carried), 5u);
}

TEST(Gauge, GoesBothWaysAndNeverBelowZero) {
    base::Gauge g;
    ++g;
    ++g;
    --g;
    EXPECT_EQ(g.load(), 1u);
    --g;
    --g;  // one close too many: stays at zero, does not wrap
    EXPECT_EQ(g.load(), 0u);
}
