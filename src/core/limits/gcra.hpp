#pragma once
#include <chrono>
#include <cstdint>

#include "base/clock.hpp"

namespace smtplb::core {

// A time in ticks of 1/count of a clock nanosecond, so that the emission
// interval (period / count) is a whole number of ticks: no rounding, no drift.
__extension__ using GcraTicks = __int128;

// What one key of a rate limit remembers: its theoretical arrival time (TAT).
// A default-constructed state is a key seen for the first time.
struct GcraState {
    static constexpr GcraTicks kFresh = -(static_cast<GcraTicks>(1) << 120);
    GcraTicks tat = kFresh;
    bool operator==(const GcraState&) const = default;
};

struct GcraDecision {
    bool allowed = false;
    // Allowed only once this has passed (a request held by a tarpit, counted
    // as of the end of its hold); 0 for a request that passes now.
    base::Clock::Duration wait{0};
    // Refused: how long until the same cost would pass; kNever when it never
    // can (the cost is larger than the burst). 0 when allowed.
    base::Clock::Duration retry_after{0};
    // Units that could still pass now (after this decision).
    std::uint64_t remaining = 0;
    // How long until the key has recovered its whole burst (and may be forgotten).
    base::Clock::Duration reset_after{0};
};

// The generic cell rate algorithm as KumoMTA's throttles and redis-cell
// define it: `count` units per `period`, of which at most `burst` may go at
// one instant (KumoMTA's max_burst; redis-cell's max_burst + 1). Each unit
// pushes the TAT on by one emission interval T = period / count; a request
// of `cost` units passes when the TAT it would leave is at most burst * T
// ahead of now. Exact integer arithmetic (128-bit ticks); a clock that goes
// backwards never grants more than the burst, and cannot make a key wait
// longer than a full recovery of its burst.
class Gcra {
  public:
    using Duration = base::Clock::Duration;
    using TimePoint = base::Clock::TimePoint;
    static constexpr Duration kNever = Duration::max();
    // Bounds that keep every product within 128 bits; values outside are clamped.
    static constexpr std::uint64_t kMaxCount = 1ull << 40;
    static constexpr std::uint64_t kMaxBurst = 1ull << 40;
    static constexpr Duration kMaxPeriod = std::chrono::hours(24 * 366);

    // `reserve_ahead`: the longest wait a decision may grant (a tarpit holds
    // the request that long), so that the TAT it leaves is not mistaken for
    // a clock gone backwards.
    Gcra(std::uint64_t count, Duration period, std::uint64_t burst,
         Duration reserve_ahead = Duration(0));

    // Decides a request of `cost` units at `now` and, when it passes, records
    // it. With `max_wait` (at most reserve_ahead), a request that would pass
    // within that time is allowed with that `wait` instead of refused.
    GcraDecision decide(GcraState& state, TimePoint now, std::uint64_t cost = 1,
                        Duration max_wait = Duration(0)) const;
    // The same decision without recording anything.
    GcraDecision peek(const GcraState& state, TimePoint now, std::uint64_t cost = 1,
                      Duration max_wait = Duration(0)) const;
    // Gives back `cost` units recorded by an earlier decide (a recipient the
    // backend refused after all, a later limit refusing the same event).
    void refund(GcraState& state, TimePoint now, std::uint64_t cost = 1) const;
    // True when the state remembers nothing: the key may be forgotten.
    bool idle(const GcraState& state, TimePoint now) const;
    // The longest a key can stay remembered after its last decision: the
    // time to recover a whole burst (plus reserve_ahead).
    Duration max_idle() const;

    std::uint64_t count() const { return count_; }
    Duration period() const { return period_; }
    std::uint64_t burst() const { return burst_; }

  private:
    GcraTicks ticks(TimePoint t) const;
    Duration to_duration(GcraTicks ticks) const;  // rounded up, saturated
    GcraDecision evaluate(const GcraState& state, TimePoint now, std::uint64_t cost,
                          Duration max_wait, GcraTicks& new_tat) const;

    std::uint64_t count_;
    Duration period_;
    std::uint64_t burst_;
    GcraTicks interval_;   // T in ticks: the period in nanoseconds
    GcraTicks tolerance_;  // burst * T
    GcraTicks reserve_;    // reserve_ahead in ticks
    GcraTicks max_lead_;   // the furthest ahead of its clock a TAT can legitimately be
};

}  // namespace smtplb::core
