#include "core/scheduler.hpp"

#include <algorithm>

namespace smtplb::core {
namespace {

std::uint64_t load_of(const BackendState& b, LeastLoaded::Measure m) {
    return m == LeastLoaded::Measure::Connections ? b.active_connections : b.pending;
}

// a/wa < b/wb without division.
bool lighter(std::uint64_t a, std::uint32_t wa, std::uint64_t b, std::uint32_t wb) {
    return a * wb < b * wa;
}

std::vector<HashRing::Member> ring_members(const std::vector<BackendState>& backends) {
    std::vector<HashRing::Member> members;
    members.reserve(backends.size());
    for (const auto& b : backends)
        members.push_back({b.config.name, b.config.weight});
    return members;
}

}  // namespace

std::unique_ptr<Scheduler> make_scheduler(config::Algorithm algorithm,
                                          const std::vector<BackendState>& backends,
                                          base::Random& random) {
    switch (algorithm) {
        case config::Algorithm::RoundRobin:
            return std::make_unique<SmoothRoundRobin>();
        case config::Algorithm::LeastConnections:
            return std::make_unique<LeastLoaded>(LeastLoaded::Measure::Connections);
        case config::Algorithm::LeastPending:
            return std::make_unique<LeastLoaded>(LeastLoaded::Measure::Pending);
        case config::Algorithm::SourceHash:
            return std::make_unique<SourceHash>(backends);
        case config::Algorithm::RandomTwo:
            return std::make_unique<RandomTwo>(random);
    }
    return std::make_unique<SmoothRoundRobin>();
}

std::size_t SmoothRoundRobin::choose(std::vector<BackendState>& backends,
                                     const std::vector<std::size_t>& candidates, std::uint64_t) {
    std::int64_t total = 0;
    std::size_t best = candidates.front();
    for (std::size_t i : candidates) {
        auto& b = backends[i];
        b.smooth_current += b.effective_weight;
        total += b.effective_weight;
        if (b.smooth_current > backends[best].smooth_current) best = i;
    }
    backends[best].smooth_current -= total;
    return best;
}

std::size_t LeastLoaded::choose(std::vector<BackendState>& backends,
                                const std::vector<std::size_t>& candidates, std::uint64_t) {
    const std::size_t n = candidates.size();
    const std::size_t start = rotation_++ % n;
    std::size_t best = candidates[start];
    for (std::size_t k = 1; k < n; ++k) {
        std::size_t i = candidates[(start + k) % n];
        if (lighter(load_of(backends[i], measure_), backends[i].effective_weight,
                    load_of(backends[best], measure_), backends[best].effective_weight))
            best = i;
    }
    return best;
}

SourceHash::SourceHash(const std::vector<BackendState>& backends) : ring_(ring_members(backends)) {}

std::size_t SourceHash::choose(std::vector<BackendState>&,
                               const std::vector<std::size_t>& candidates, std::uint64_t key) {
    // The first usable backend clockwise from the key: when one is down, only
    // its own clients move.
    for (std::size_t member : ring_.walk(key))
        if (std::find(candidates.begin(), candidates.end(), member) != candidates.end())
            return member;
    return candidates.front();
}

std::size_t RandomTwo::choose(std::vector<BackendState>& backends,
                              const std::vector<std::size_t>& candidates, std::uint64_t) {
    const std::size_t n = candidates.size();
    if (n == 1) return candidates.front();
    std::size_t a = random_.below(n);
    std::size_t b = random_.below(n - 1);
    if (b >= a) ++b;
    std::size_t ia = candidates[a], ib = candidates[b];
    return lighter(backends[ib].pending, backends[ib].effective_weight, backends[ia].pending,
                   backends[ia].effective_weight)
               ? ib
               : ia;
}

}  // namespace smtplb::core
