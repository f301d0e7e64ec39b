#pragma once
#include "base/clock.hpp"

namespace smtplb::testing {

// A Clock the test moves by hand.
class FakeClock final : public base::Clock {
  public:
    TimePoint now() const override { return now_; }
    std::int64_t wall_ms() const override {
        return std::chrono::duration_cast<std::chrono::milliseconds>(now_.time_since_epoch())
            .count();
    }
    void advance(Duration d) { now_ += d; }

  private:
    TimePoint now_{std::chrono::hours(1)};
};

}  // namespace smtplb::testing
