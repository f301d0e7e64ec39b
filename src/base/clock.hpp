#pragma once
#include <chrono>

namespace smtplb::base {

// Time source for everything that decides by time (persistence TTLs, health
// hysteresis, backoff), so tests can drive time by hand.
class Clock {
  public:
    using Duration = std::chrono::steady_clock::duration;
    using TimePoint = std::chrono::steady_clock::time_point;
    virtual ~Clock() = default;
    virtual TimePoint now() const = 0;
    // Wall-clock time in milliseconds since the epoch, for logs.
    virtual std::int64_t wall_ms() const = 0;
};

class SystemClock final : public Clock {
  public:
    TimePoint now() const override { return std::chrono::steady_clock::now(); }
    std::int64_t wall_ms() const override {
        return std::chrono::duration_cast<std::chrono::milliseconds>(
                   std::chrono::system_clock::now().time_since_epoch())
            .count();
    }
};

}  // namespace smtplb::base
