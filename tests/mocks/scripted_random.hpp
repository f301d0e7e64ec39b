#pragma once
#include <cstdint>
#include <vector>

#include "base/random.hpp"

namespace smtplb::testing {

// Returns scripted values (modulo the bound), cycling; deterministic schedulers.
class ScriptedRandom final : public base::Random {
  public:
    explicit ScriptedRandom(std::vector<std::uint64_t> values) : values_(std::move(values)) {}
    std::uint64_t below(std::uint64_t bound) override {
        auto v = values_[next_++ % values_.size()];
        return v % bound;
    }

  private:
    std::vector<std::uint64_t> values_;
    std::size_t next_ = 0;
};

}  // namespace smtplb::testing
