#include "core/limits/gcra.hpp"

#include <algorithm>
#include <limits>

namespace smtplb::core {

Gcra::Gcra(std::uint64_t count, Duration period, std::uint64_t burst, Duration reserve_ahead)
    : count_(std::clamp<std::uint64_t>(count, 1, kMaxCount)),
      period_(std::clamp<Duration>(period, Duration(1), kMaxPeriod)),
      burst_(std::clamp<std::uint64_t>(burst, 1, kMaxBurst)),
      // One unit spends period / count nanoseconds = period (in ns) ticks.
      interval_(static_cast<GcraTicks>(period_.count())),
      tolerance_(static_cast<GcraTicks>(burst_) * interval_),
      reserve_(ticks(TimePoint(std::clamp(reserve_ahead, Duration(0), kMaxPeriod)))),
      max_lead_(tolerance_ + reserve_) {}

GcraTicks Gcra::ticks(TimePoint t) const {
    return static_cast<GcraTicks>(t.time_since_epoch().count()) * static_cast<GcraTicks>(count_);
}

Gcra::Duration Gcra::to_duration(GcraTicks t) const {
    if (t <= 0) return Duration(0);
    GcraTicks ns = (t + static_cast<GcraTicks>(count_) - 1) / static_cast<GcraTicks>(count_);
    if (ns > static_cast<GcraTicks>(std::numeric_limits<Duration::rep>::max())) return kNever;
    return Duration(static_cast<Duration::rep>(ns));
}

GcraDecision Gcra::evaluate(const GcraState& state, TimePoint now, std::uint64_t cost,
                            Duration max_wait, GcraTicks& new_tat) const {
    const GcraTicks now_ticks = ticks(now);
    // An allowed decision never leaves the TAT more than max_lead_ ahead of
    // its clock; more means the clock went backwards since. Capping it keeps
    // the wait within one burst's recovery without granting anything.
    const GcraTicks tat = std::min(std::max(state.tat, now_ticks), now_ticks + max_lead_);
    const auto units_left = [&](GcraTicks at) {
        GcraTicks room = now_ticks + tolerance_ - at;
        return room <= 0 ? 0 : static_cast<std::uint64_t>(room / interval_);
    };
    GcraDecision d;
    new_tat = tat;
    if (cost > burst_) {
        // More than may ever pass at once: waiting does not help.
        d.retry_after = kNever;
        d.remaining = units_left(tat);
        d.reset_after = to_duration(tat - now_ticks);
        return d;
    }
    const GcraTicks after = tat + static_cast<GcraTicks>(cost) * interval_;
    const GcraTicks allow_at = after - tolerance_;
    const GcraTicks may_wait =
        std::min(ticks(TimePoint(std::max(max_wait, Duration(0)))), reserve_);
    if (allow_at - now_ticks <= may_wait) {
        d.allowed = true;
        d.wait = to_duration(allow_at - now_ticks);
        new_tat = after;
        d.remaining = units_left(after);
        d.reset_after = to_duration(after - now_ticks);
    } else {
        d.retry_after = to_duration(allow_at - now_ticks);
        d.remaining = units_left(tat);
        d.reset_after = to_duration(tat - now_ticks);
    }
    return d;
}

GcraDecision Gcra::decide(GcraState& state, TimePoint now, std::uint64_t cost,
                          Duration max_wait) const {
    GcraTicks new_tat;
    GcraDecision d = evaluate(state, now, cost, max_wait, new_tat);
    // Refused, new_tat is the TAT capped after a clock that went backwards.
    state.tat = new_tat;
    return d;
}

GcraDecision Gcra::peek(const GcraState& state, TimePoint now, std::uint64_t cost,
                        Duration max_wait) const {
    GcraTicks new_tat;
    return evaluate(state, now, cost, max_wait, new_tat);
}

void Gcra::refund(GcraState& state, TimePoint now, std::uint64_t cost) const {
    if (idle(state, now)) return;  // nothing left to give back
    cost = std::min(cost, burst_);
    state.tat -= static_cast<GcraTicks>(cost) * interval_;
}

bool Gcra::idle(const GcraState& state, TimePoint now) const {
    return state.tat <= ticks(now);
}

Gcra::Duration Gcra::max_idle() const {
    return to_duration(max_lead_);
}

}  // namespace smtplb::core
