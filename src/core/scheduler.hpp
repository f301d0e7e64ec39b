#pragma once
#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

#include "base/random.hpp"
#include "core/backend_state.hpp"
#include "core/hash_ring.hpp"

namespace smtplb::core {

// Chooses one of `candidates` (indexes into `backends`, all usable, all of one
// priority tier, never empty). `key` is the client's hash, for source_hash.
class Scheduler {
  public:
    virtual ~Scheduler() = default;
    virtual std::size_t choose(std::vector<BackendState>& backends,
                               const std::vector<std::size_t>& candidates, std::uint64_t key) = 0;
};

std::unique_ptr<Scheduler> make_scheduler(config::Algorithm algorithm,
                                          const std::vector<BackendState>& backends,
                                          base::Random& random);

// nginx-style smooth weighted round robin: exact proportions, well interleaved.
class SmoothRoundRobin final : public Scheduler {
  public:
    std::size_t choose(std::vector<BackendState>& backends,
                       const std::vector<std::size_t>& candidates, std::uint64_t key) override;
};

// Least load per unit of weight; ties go round robin so equal loads spread.
class LeastLoaded final : public Scheduler {
  public:
    enum class Measure { Connections, Pending };
    explicit LeastLoaded(Measure measure) : measure_(measure) {}
    std::size_t choose(std::vector<BackendState>& backends,
                       const std::vector<std::size_t>& candidates, std::uint64_t key) override;

  private:
    Measure measure_;
    std::size_t rotation_ = 0;
};

class SourceHash final : public Scheduler {
  public:
    explicit SourceHash(const std::vector<BackendState>& backends);
    std::size_t choose(std::vector<BackendState>& backends,
                       const std::vector<std::size_t>& candidates, std::uint64_t key) override;

  private:
    HashRing ring_;
};

// Power of two choices: two random candidates, the less loaded wins.
class RandomTwo final : public Scheduler {
  public:
    explicit RandomTwo(base::Random& random) : random_(random) {}
    std::size_t choose(std::vector<BackendState>& backends,
                       const std::vector<std::size_t>& candidates, std::uint64_t key) override;

  private:
    base::Random& random_;
};

}  // namespace smtplb::core
