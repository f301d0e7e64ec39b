#pragma once
#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "base/clock.hpp"
#include "base/random.hpp"
#include "config/config.hpp"
#include "core/cluster/shared_admin.hpp"
#include "core/limits/limit_set.hpp"
#include "core/pool.hpp"
#include "core/router.hpp"
#include "io/asio.hpp"
#include "io/backend/backend_connector.hpp"
#include "io/backend/connection_cache.hpp"
#include "io/backend/connection_slots.hpp"
#include "io/cluster/shared_limits.hpp"
#include "io/front/client_names.hpp"
#include "io/health/health_checker.hpp"
#include "io/run_stats.hpp"
#include "io/runtime/event_loops.hpp"
#include "io/runtime/task_group.hpp"
#include "io/runtime/tls.hpp"
#include "io/spool/spool.hpp"
#include "io/spool/spool_deliverer.hpp"
#include "io/tracking_log.hpp"

namespace smtplb::io {

class Listener;
class Discoverer;
class NodeRegistry;

// Everything one running configuration needs: pools, routes, listeners,
// backend connections, the tracking log. Its own work (accepting, probes,
// the spool, the admin API) runs on `io`; client sessions run on the event
// loops, of which `io` is the first (EventLoops).
//
// One configuration generation: everything it runs is a task of its group
// (tasks()), and refers to it without owning it. So it may be destroyed only
// once that group is empty: its owner stops it, closes the group and awaits
// tasks().wait() first (app/cmd_run.cpp), never a timer.
class Balancer {
  public:
    // With `previous` (the running generation, on reload): the tracking log
    // is shared when its path is unchanged, and each backend that keeps its
    // pool, name and address keeps its health, admin state and counters.
    // Without `loops`, sessions run on `io` alone.
    Balancer(asio::io_context& io, const config::Config& config,
             std::unique_ptr<BackendConnector> connector = nullptr,
             const Balancer* previous = nullptr, EventLoops* loops = nullptr);
    ~Balancer();

    // Binds every listener (taking over the sockets of `previous`'s
    // listeners on the same address) and starts; false with a message when
    // one cannot be bound, and then nothing has started.
    bool start(std::string& error, Balancer* previous = nullptr);
    // Asks its tasks to stop (tasks().request_stop(): what each part
    // registered): no more accepting, probes or spool deliveries; sessions
    // hear 421 4.3.2 when they are between transactions. Closes idle
    // backend connections.
    void stop();
    // Replaced by a reload: no new connections, while the sessions it has
    // go on with this configuration (and its probes) until they end.
    void retire();
    bool stopped() const { return stopped_; }
    // Ends every client session and every backend attempt now (after the
    // grace period of a stop); run the loop afterwards to let them unwind.
    void abort_sessions();

    core::Pool* pool(const std::string& name);
    const core::Pool* pool(const std::string& name) const;
    // drain | maintenance | enable one backend; false with a reason when
    // the pool or backend does not exist. A change made here (the admin
    // API) is told to the admin hook, one that came from the cluster is not.
    enum class AdminOrigin { Here, Cluster };
    bool set_backend_state(const std::string& pool, const std::string& backend,
                           core::AdminState state, std::string& error,
                           AdminOrigin origin = AdminOrigin::Here);
    // Who shares admin changes made here with the other nodes ([cluster]).
    using AdminHook = std::function<void(const std::string& pool, const std::string& backend,
                                         core::AdminState state)>;
    void set_admin_hook(AdminHook hook) { admin_hook_ = std::move(hook); }
    // The cluster link's counters for /metrics; null without [cluster].
    void set_cluster_stats(std::shared_ptr<core::cluster::ClusterStats> stats) {
        cluster_stats_ = std::move(stats);
    }
    const std::shared_ptr<core::cluster::ClusterStats>& cluster_stats() const {
        return cluster_stats_;
    }
    // The node registry ([cluster], docs/cluster.md "Nodes"), for the API
    // and /metrics; null without [cluster]. Owned by the daemon.
    void set_node_registry(const NodeRegistry* registry) { node_registry_ = registry; }
    const NodeRegistry* node_registry() const { return node_registry_; }
    // Where health transitions and other events go; stderr by default.
    using EventLog = std::function<void(const std::string& line)>;
    void set_event_log(EventLog log);
    void log(const std::string& line) const {
        if (event_log_) event_log_(line);
    }
    // The durable spool, when a pool spools or a spool is left from before;
    // shared with the next generation on reload.
    Spool* spool() { return spool_.get(); }
    // Tests: a spool over another file layer (fault injection), before start().
    void use_spool(std::shared_ptr<Spool> spool) {
        spool_ = std::move(spool);
        spool_->set_event_log(event_log_);
    }
    SpoolDeliverer* deliverer() { return deliverer_.get(); }
    HealthChecker& health() { return health_; }
    const std::vector<std::unique_ptr<core::Pool>>& pools() const { return pools_; }
    const config::Config& config() const { return config_; }
    const core::Router& router() const { return router_; }
    // The [[limit]]s and their state (shared: a session's leases keep it).
    // A reload that leaves them as they were hands the same set on, so that
    // nobody's rate or concurrency starts afresh.
    core::LimitSet& limits() { return *limits_; }
    const std::shared_ptr<core::LimitSet>& limit_set() const { return limits_; }
    // With [cluster] and a shared [[limit]]: where those are decided (else null).
    const std::shared_ptr<SharedLimits>& shared_limits() const { return shared_limits_; }
    BackendConnector& connector() { return *connector_; }
    // Idle backend connections of the sessions on event loop `loop`.
    ConnectionCache& cache(std::size_t loop = 0) { return *caches_[loop]; }
    // Backends' connection slots (max_connections), shared by the loops.
    ConnectionSlots& slots() { return *slots_; }
    EventLoops& loops() { return *loops_; }
    // Who looks up client host names for the sessions on event loop `loop`.
    const std::shared_ptr<ClientNameResolver>& client_names(std::size_t loop = 0) {
        return client_names_[loop];
    }
    // Tests: one resolver for every loop, before start().
    void use_client_names(const std::shared_ptr<ClientNameResolver>& resolver) {
        for (auto& r : client_names_)
            r = resolver;
    }
    // What finds pools' backends in DNS (it outlives generations; each
    // gets it from the daemon), for status and metrics; null without.
    void set_discoverer(const Discoverer* discoverer) { discoverer_ = discoverer; }
    const Discoverer* discoverer() const { return discoverer_; }
    const BackendTlsContexts& backend_tls() const { return backend_tls_; }
    TrackingLog& tracking() { return *tracking_; }
    // The daemon's start time and reloads: handed on from `previous`.
    RunStats& run_stats() { return *run_stats_; }
    // What this generation runs: client and tcp sessions, accept loops,
    // probes, spool deliveries, backend connections ending with QUIT, work
    // posted to another loop's cache. Empty and closed, nothing of it runs.
    TaskGroup& tasks() { return tasks_; }
    // Its client and tcp sessions (counted in tasks() too): the old
    // generation of a reload goes on probing until these have ended.
    TaskGroup& sessions() { return sessions_; }
    // Nothing of it runs (no task left).
    bool finished() const { return tasks_.size() == 0; }
    const base::Clock& clock() const { return clock_; }
    std::uint64_t next_session_id() { return ++session_ids_; }
    asio::io_context& io() { return io_; }
    // Ports actually bound, in listener order (for port 0 in tests and the demo).
    std::vector<std::uint16_t> bound_ports() const;
    std::size_t active_sessions() const;
    const std::vector<std::unique_ptr<Listener>>& listeners() const { return listeners_; }

  private:
    // Runs `task` on every loop's cache, each on its own thread (later, for
    // the loops other than this one, counted in tasks(); not at all there
    // once tasks() is closed: the destructor closes those caches).
    void on_each_cache(const std::function<void(ConnectionCache&)>& task);

    asio::io_context& io_;
    std::unique_ptr<EventLoops> own_loops_;  // when not given any: `io` alone
    EventLoops* loops_;
    // Before everything its tasks use, so destroyed after them.
    TaskGroup tasks_;
    TaskGroup sessions_{tasks_};
    config::Config config_;
    base::SystemClock clock_;
    base::DefaultRandom random_;
    // Before pools_ and caches_, which refer to it (shared: a wait in
    // progress keeps it).
    std::shared_ptr<ConnectionSlots> slots_;
    std::vector<std::unique_ptr<core::Pool>> pools_;
    core::Router router_;
    std::shared_ptr<core::LimitSet> limits_;
    std::shared_ptr<SharedLimits> shared_limits_;
    TaskGroup::StopCallback stop_expiry_;  // of the limits' expiry task
    std::unique_ptr<BackendConnector> connector_;
    // One per event loop (shared: a sweep in progress keeps its cache).
    std::vector<std::shared_ptr<ConnectionCache>> caches_;
    // One per event loop (shared: a lookup in flight keeps its resolver).
    std::vector<std::shared_ptr<ClientNameResolver>> client_names_;
    BackendTlsContexts backend_tls_;
    std::shared_ptr<TrackingLog> tracking_;
    std::shared_ptr<RunStats> run_stats_;
    std::vector<std::unique_ptr<Listener>> listeners_;
    std::shared_ptr<Spool> spool_;
    std::unique_ptr<SpoolDeliverer> deliverer_;
    HealthChecker health_;
    EventLog event_log_;
    const Discoverer* discoverer_ = nullptr;
    AdminHook admin_hook_;
    std::shared_ptr<core::cluster::ClusterStats> cluster_stats_;
    const NodeRegistry* node_registry_ = nullptr;
    bool stopped_ = false;
    std::atomic<std::uint64_t> session_ids_ = 0;
};

}  // namespace smtplb::io
