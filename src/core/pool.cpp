#include "core/pool.hpp"

#include <algorithm>

namespace smtplb::core {

Pool::Pool(const config::Pool& config, const base::Clock& clock, base::Random& random)
    : config_(config), clock_(clock) {
    for (const auto& b : config_.backends) {
        BackendState state;
        state.config = b;
        backends_.push_back(std::move(state));
        tiers_.push_back(b.priority);
    }
    std::sort(tiers_.begin(), tiers_.end());
    tiers_.erase(std::unique(tiers_.begin(), tiers_.end()), tiers_.end());
    scheduler_ = make_scheduler(config_.algorithm, backends_, random);
    if (config_.persistence == config::Persistence::SourceIp)
        persistence_.emplace(clock_, config_.persistence_ttl);
}

bool Pool::usable(std::size_t i) const {
    const auto& b = backends_[i];
    // A down backend gets one trial attempt after its retry time (half-open).
    return !b.down || clock_.now() >= b.retry_at;
}

std::optional<std::size_t> Pool::pick(const std::optional<base::IpAddress>& client,
                                      const std::vector<std::size_t>& tried) {
    auto open = [&](std::size_t i) {
        return usable(i) && std::find(tried.begin(), tried.end(), i) == tried.end();
    };
    // The client's key matters only to persistence and source hashing.
    const bool keyed =
        client && (persistence_ || config_.algorithm == config::Algorithm::SourceHash);
    std::string client_key = keyed ? client->to_string() : std::string();
    if (persistence_ && client) {
        if (auto remembered = persistence_->lookup(client_key); remembered && open(*remembered)) {
            // Stay only while no better tier has become usable again.
            bool better_tier = false;
            for (std::size_t i = 0; i < backends_.size(); ++i)
                if (open(i) &&
                    backends_[i].config.priority < backends_[*remembered].config.priority)
                    better_tier = true;
            if (!better_tier) {
                persistence_->remember(client_key, *remembered);
                return remembered;
            }
        }
    }
    std::uint64_t key = keyed ? stable_hash(client_key) : 0;
    std::vector<std::size_t> candidates;
    for (std::uint32_t tier : tiers_) {
        candidates.clear();
        for (std::size_t i = 0; i < backends_.size(); ++i)
            if (backends_[i].config.priority == tier && open(i)) candidates.push_back(i);
        if (candidates.empty()) continue;
        std::size_t chosen = scheduler_->choose(backends_, candidates, key);
        if (persistence_ && client) persistence_->remember(client_key, chosen);
        return chosen;
    }
    return std::nullopt;
}

void Pool::report_success(std::size_t i) {
    auto& b = backends_[i];
    b.down = false;
    b.consecutive_failures = 0;
}

void Pool::report_failure(std::size_t i) {
    auto& b = backends_[i];
    ++b.consecutive_failures;
    b.down = true;
    b.retry_at = clock_.now() + config_.down_retry;
}

}  // namespace smtplb::core
