#pragma once
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "base/clock.hpp"
#include "base/network.hpp"
#include "base/random.hpp"
#include "config/config.hpp"
#include "core/backend_state.hpp"
#include "core/persistence.hpp"
#include "core/scheduler.hpp"

namespace smtplb::core {

// A named group of backends: priority tiers, a scheduler within a tier,
// optional persistence, and the passive view of which backends are usable.
class Pool {
  public:
    Pool(const config::Pool& config, const base::Clock& clock, base::Random& random);

    // A backend for a new attempt, never one in `tried`. Lower priority
    // numbers are preferred; a higher tier is used only when no backend of a
    // lower one is usable (MX preference semantics).
    std::optional<std::size_t> pick(const std::optional<base::IpAddress>& client,
                                    const std::vector<std::size_t>& tried);

    // Passive health from live traffic.
    void report_success(std::size_t backend);
    void report_failure(std::size_t backend);  // connection refused, timeout, protocol garbage
    bool usable(std::size_t backend) const;

    const config::Pool& config() const { return config_; }
    const std::string& name() const { return config_.name; }
    std::vector<BackendState>& backends() { return backends_; }
    const std::vector<BackendState>& backends() const { return backends_; }
    BackendState& backend(std::size_t i) { return backends_[i]; }

  private:
    config::Pool config_;
    const base::Clock& clock_;
    std::vector<BackendState> backends_;
    std::vector<std::uint32_t> tiers_;  // distinct priorities, ascending
    std::unique_ptr<Scheduler> scheduler_;
    std::optional<PersistenceTable> persistence_;
};

}  // namespace smtplb::core
