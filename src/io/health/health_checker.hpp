#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <functional>
#include "base/counter.hpp"
#include "base/random.hpp"
#include "core/pool.hpp"
#include "io/asio.hpp"
#include "io/backend/backend_connector.hpp"
#include "io/runtime/task_group.hpp"
#include "io/runtime/tls.hpp"

namespace smtplb::io {

// Active health probes, in rounds: every `interval` (±10% jitter) a pool's
// up backends are probed together, and every `down_interval` its busy and
// down ones. Probes of one round share the event loop's wake-ups, which
// costs about a third of the CPU of probes spread out one by one (measured:
// bench/probe_cost.py). A backend whose previous probe is still running is
// skipped for that round. Results go to the pool, which applies rise/fall.
// Rounds and probes are tasks of the generation's group (`tasks`), which
// stops them with it; they refer to this checker, which its owner keeps
// until that group is empty.
class HealthChecker {
  public:
    HealthChecker(asio::any_io_executor executor, TaskGroup& tasks, BackendConnector& connector,
                  std::string hostname, base::Random& random);
    ~HealthChecker();

    // Starts probing every backend of a pool whose health checks are
    // enabled, as its traffic reaches them (config::probe_origin).
    void watch(core::Pool& pool, const config::ProbeOrigin& origin = {});
    // Probes this backend now instead of at its next round.
    void probe_now(const core::Pool& pool, std::size_t backend);
    void stop();
    std::uint64_t probes_run() const { return probes_run_->load(); }
    // After a reload: counts into the previous generation's total, so that
    // smtplb_health_probes_total never goes back.
    void share_probe_count(const HealthChecker& previous) { probes_run_ = previous.probes_run_; }
    // Probes of pools with backend TLS use these contexts (STARTTLS or
    // implicit TLS, as live traffic does).
    void use_backend_tls(const BackendTlsContexts* contexts) { backend_tls_ = contexts; }
    // Where a backend's new or cleared warning (certificate expiry) is told.
    using EventLog = std::function<void(const std::string& line)>;
    void set_warning_log(EventLog log) { warning_log_ = std::move(log); }
    std::size_t probes_in_flight() const { return in_flight_; }

  private:
    struct Watched {
        core::Pool* pool;
        std::vector<bool> probing;                 // a probe of this backend is in flight
        std::vector<TaskGroup::Canceller> cancel;  // ends that probe (stop())
        std::unique_ptr<asio::steady_timer> up_timer, out_timer;
        config::ProbeOrigin origin;
    };
    // One loop per pool and kind: `up` rounds probe up backends, the others
    // busy and down ones.
    awaitable<void> rounds(Watched& watched, bool up);
    void start_probe(Watched& watched, std::size_t backend);
    awaitable<void> probe_one(Watched& watched, std::size_t backend);
    Millis jittered(Millis base);

    asio::any_io_executor executor_;
    TaskGroup& tasks_;
    BackendConnector& connector_;
    std::string hostname_;
    const BackendTlsContexts* backend_tls_ = nullptr;
    EventLog warning_log_;
    base::Random& random_;
    std::vector<std::unique_ptr<Watched>> watched_;
    bool stopped_ = false;
    std::shared_ptr<base::Counter> probes_run_ = std::make_shared<base::Counter>();
    std::size_t in_flight_ = 0;
    TaskGroup::StopCallback stop_registration_;
};

}  // namespace smtplb::io
