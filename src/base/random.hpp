#pragma once
#include <cstdint>
#include <mutex>
#include <random>

namespace smtplb::base {

// Randomness behind an interface so schedulers are deterministic under test.
class Random {
  public:
    virtual ~Random() = default;
    // Uniform in [0, bound); bound must be > 0.
    virtual std::uint64_t below(std::uint64_t bound) = 0;
};

class DefaultRandom final : public Random {
  public:
    DefaultRandom() : engine_(std::random_device{}()) {}
    explicit DefaultRandom(std::uint64_t seed) : engine_(seed) {}
    // Locked: pools on several event loops and the health checker share one.
    std::uint64_t below(std::uint64_t bound) override {
        std::lock_guard guard(mutex_);
        return std::uniform_int_distribution<std::uint64_t>(0, bound - 1)(engine_);
    }

  private:
    std::mutex mutex_;
    std::mt19937_64 engine_;
};

}  // namespace smtplb::base
