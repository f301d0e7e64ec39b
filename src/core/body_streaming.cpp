#include "core/body_streaming.hpp"

#include <algorithm>

namespace smtplb::core {

bool worth_streaming(const BodyProgress& p) {
    using Duration = base::Clock::Duration;
    if (p.received < kStreamFrom || p.hold_left <= Duration::zero()) return false;
    const auto elapsed = std::max(p.elapsed, Duration::zero());
    if (p.declared && *p.declared > p.received) {
        // In floating point: a SIZE= near 2^64 must not overflow.
        const double rest = static_cast<double>(*p.declared - p.received) /
                            static_cast<double>(p.received) * static_cast<double>(elapsed.count());
        return rest <= static_cast<double>((p.hold_left / 2).count());
    }
    return elapsed <= p.hold_left / 4;
}

}  // namespace smtplb::core
