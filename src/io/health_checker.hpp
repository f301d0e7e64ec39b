#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "base/random.hpp"
#include "core/pool.hpp"
#include "io/asio.hpp"
#include "io/backend_connector.hpp"

namespace smtplb::io {

// Active health probes: one loop per probed backend, each on its own timer
// with jitter, so probes of many backends spread out instead of firing
// together. A backend that is busy or down is probed at the pool's faster
// down_interval. Results go to the pool, which applies rise/fall.
class HealthChecker {
  public:
    HealthChecker(asio::any_io_executor executor, BackendConnector& connector, std::string hostname,
                  base::Random& random);
    ~HealthChecker();

    // Starts probing every backend of a pool whose health checks are enabled.
    void watch(core::Pool& pool);
    // Probes this backend now instead of at its next turn.
    void probe_now(const core::Pool& pool, std::size_t backend);
    void stop();
    std::uint64_t probes_run() const { return probes_run_; }

  private:
    struct Target {
        core::Pool* pool;
        std::size_t backend;
        std::unique_ptr<asio::steady_timer> timer;
    };
    awaitable<void> loop(Target& target);
    Millis jittered(Millis base);

    asio::any_io_executor executor_;
    BackendConnector& connector_;
    std::string hostname_;
    base::Random& random_;
    std::vector<std::unique_ptr<Target>> targets_;
    std::shared_ptr<bool> stopped_ = std::make_shared<bool>(false);
    std::uint64_t probes_run_ = 0;
};

}  // namespace smtplb::io
