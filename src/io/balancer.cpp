#include "io/balancer.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "base/log_line.hpp"
#include "io/front/listener.hpp"
#include "io/front/session_limits.hpp"

namespace smtplb::io {

Balancer::Balancer(asio::io_context& io, const config::Config& config,
                   std::unique_ptr<BackendConnector> connector, const Balancer* previous,
                   EventLoops* loops)
    : io_(io),
      own_loops_(loops ? nullptr : std::make_unique<EventLoops>(io)),
      loops_(loops ? loops : own_loops_.get()),
      config_(config),
      slots_(std::make_shared<ConnectionSlots>([this](const std::string& line) { log(line); })),
      router_(config_.routes),
      connector_(connector ? std::move(connector) : std::make_unique<TcpConnector>()),
      tracking_(previous && previous->tracking_->path() == config_.server.tracking_log
                    ? previous->tracking_
                    : std::make_shared<TrackingLog>(config_.server.tracking_log)),
      run_stats_(previous ? previous->run_stats_ : std::make_shared<RunStats>()),
      health_(io.get_executor(), tasks_, *connector_, config_.server.hostname, random_),
      event_log_([](const std::string& line) { base::log_line(line); }) {
    if (previous && previous->spool_ &&
        previous->config_.server.state_dir == config_.server.state_dir) {
        spool_ = previous->spool_;
        spool_->configure(config_.spool);
    } else {
        // Also without a spooling pool, when a spool is left on disk: what
        // it holds was acknowledged and must still be delivered.
        struct stat st {};
        auto dir = config_.server.state_dir + "/spool/queue";
        if (config_.uses_spool() || ::stat(dir.c_str(), &st) == 0)
            spool_ = std::make_shared<Spool>(io_, config_);
        // Another state_dir: its own spool, but smtplb_spool_events_total
        // goes on from the old one's (a counter that goes back reads as a restart).
        if (spool_ && previous && previous->spool_)
            spool_->counters() = previous->spool_->counters();
    }
    if (spool_) spool_->set_event_log(event_log_);
    if (previous) cluster_stats_ = previous->cluster_stats_;
    if (previous &&
        config::describe_limits(previous->config_.limits) ==
            config::describe_limits(config_.limits) &&
        previous->config_.cluster.enabled == config_.cluster.enabled) {
        limits_ = previous->limits_;
    } else {
        limits_ = std::make_shared<core::LimitSet>(config_.limits,
                                                   core::LimitSet::in_process_store(config_.limits),
                                                   config_.cluster.enabled);
        if (previous) limits_->carry_over(*previous->limits_);  // counters go on
    }
    if (limits_->has_shared()) {
        shared_limits_ =
            std::make_shared<SharedLimits>(limits_, config_.cluster.node_name,
                                           [](const std::string& line) { base::log_line(line); });
        if (previous && previous->shared_limits_)
            shared_limits_->carry_over(*previous->shared_limits_);
    }
    // Both generations count into the same total while the old one still probes.
    if (previous) health_.share_probe_count(previous->health_);
    for (std::size_t i = 0; i < loops_->size(); ++i) {
        caches_.push_back(
            std::make_shared<ConnectionCache>(loops_->loop(i).get_executor(), tasks_));
        caches_.back()->use_slots(slots_);
        slots_->add_cache(caches_.back());
    }
    // The nameservers are read now: at start and on every reload. The cache
    // bound is over all loops, each of which has its own share.
    ClientNameSettings names{
        client_name_servers(config_.server), config_.server.dns_timeout,
        (config_.server.client_name_cache_size + loops_->size() - 1) / loops_->size()};
    for (std::size_t i = 0; i < loops_->size(); ++i)
        client_names_.push_back(make_client_name_resolver(loops_->loop(i).get_executor(), names));
    for (const auto& p : config_.pools) {
        pools_.push_back(std::make_unique<core::Pool>(p, clock_, random_));
        if (previous) {
            if (const auto* old = previous->pool(p.name)) pools_.back()->adopt_state(*old);
        }
        slots_->watch(*pools_.back());
        // The spool's messages that waited for this pool are due once it
        // has something to offer again (docs/esmtp.md, the spool drains).
        std::weak_ptr<Spool> spool = spool_;
        pools_.back()->set_health_log([this, spool](const core::Pool& pool,
                                                    const config::Backend& b,
                                                    const core::HealthEvent& e) {
            if (event_log_) event_log_(core::health_log_line(pool.name(), b.name, e));
            if (!core::returns_to_service(e)) return;
            if (auto s = spool.lock())
                s->drain_soon(pool.name(), core::SpoolQueue::DrainCause::BackendReturned, b.name);
        });
        pools_.back()->set_spool_slot_freed([spool, p = pools_.back().get()](std::size_t b) {
            if (auto s = spool.lock())
                s->drain_soon(p->name(), core::SpoolQueue::DrainCause::SlotFreed,
                              p->backend(b).config.name);
        });
    }
}

Balancer::~Balancer() {
    tasks_.close();
    deliverer_.reset();
    health_.stop();
    // A cache may outlive this generation (a sweep holds it), but its idle
    // connections refer to the pools: they go now, each on its own loop.
    for (std::size_t i = 0; i < caches_.size(); ++i)
        loops_->run_on(i, [cache = caches_[i]] {
            cache->set_closing();  // closed at once, without QUIT
            cache->close_all();
        });
}

void Balancer::on_each_cache(const std::function<void(ConnectionCache&)>& task) {
    // Each cache belongs to its loop's thread: the work goes there.
    for (std::size_t i = 0; i < caches_.size(); ++i) {
        if (i == 0) {
            task(*caches_[0]);
            continue;
        }
        // Counted: `task` may refer to this generation (a pool).
        auto work = tasks_.hold();
        if (!work) return;
        asio::post(loops_->loop(i),
                   [cache = caches_[i], task, work = std::move(work)] { task(*cache); });
    }
}

void Balancer::set_event_log(EventLog log) {
    event_log_ = std::move(log);
    if (spool_) spool_->set_event_log(event_log_);
}

core::Pool* Balancer::pool(const std::string& name) {
    for (auto& p : pools_)
        if (p->name() == name) return p.get();
    return nullptr;
}

const core::Pool* Balancer::pool(const std::string& name) const {
    for (const auto& p : pools_)
        if (p->name() == name) return p.get();
    return nullptr;
}

bool Balancer::start(std::string& error, Balancer* previous) {
    if (!tracking_->error().empty()) {
        error = tracking_->error();
        return false;
    }
    // Messages past spill_threshold are buffered there: find out now, not
    // when the first large message gets a 451.
    const auto& dir = config_.server.state_dir;
    int fd = ::open(dir.c_str(), O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
    if (fd < 0) {
        error =
            "server.state_dir \"" + dir + "\" cannot hold temporary files: " + std::strerror(errno);
        return false;
    }
    ::close(fd);
    if (!backend_tls_.build(config_, error)) return false;
    health_.use_backend_tls(&backend_tls_);
    health_.set_warning_log([this](const std::string& line) { log(line); });
    bool new_spool = spool_ && !(previous && previous->spool_ == spool_);
    if (new_spool && !spool_->open(error)) return false;
    std::vector<std::unique_ptr<Listener>> bound;
    for (const auto& l : config_.listeners) {
        Listener* same_address = nullptr;
        if (previous)
            for (const auto& old : previous->listeners_)
                if (old->config().bind.to_string() == l.bind.to_string()) same_address = old.get();
        auto listener = std::make_unique<Listener>(*this, l);
        if (!listener->bind(error, same_address)) return false;  // nothing started yet
        if (previous)
            for (const auto& old : previous->listeners_)
                if (old->config().name == l.name) listener->counters = old->counters;
        bound.push_back(std::move(listener));
    }
    listeners_ = std::move(bound);
    for (auto& l : listeners_)
        l->begin();
    if (!config_.limits.empty()) {  // idle keys forgotten, until the generation stops
        auto cancel =
            tasks_.spawn_cancellable(io_.get_executor(), expire_limit_keys(limits_, clock_));
        stop_expiry_ = tasks_.on_stop([cancel] { cancel(); });
    }
    for (auto& p : pools_)
        health_.watch(*p, config::probe_origin(config_, p->name()));
    if (spool_) {
        if (previous && previous->deliverer_) previous->deliverer_->stop();
        deliverer_ = std::make_unique<SpoolDeliverer>(*this, *spool_);
        deliverer_->start();
    }
    return true;
}

bool Balancer::set_backend_state(const std::string& pool_name, const std::string& backend,
                                 core::AdminState state, std::string& error, AdminOrigin origin) {
    auto* p = pool(pool_name);
    if (!p) {
        error = "no pool named \"" + pool_name + "\"";
        return false;
    }
    auto index = p->find(backend);
    if (!index) {
        error = "pool \"" + pool_name + "\" has no backend named \"" + backend + "\"";
        return false;
    }
    auto before = p->backend(*index).health.admin();
    p->set_admin(*index, state);
    // Transactions in flight finish; idle connections have nothing to finish.
    if (state != core::AdminState::Enabled)
        on_each_cache([p, backend = *index](ConnectionCache& c) { c.close_idle(*p, backend); });
    if (before == core::AdminState::Maintenance && state != before) health_.probe_now(*p, *index);
    // Applied here first: mail never waits for the other nodes to hear of it.
    if (origin == AdminOrigin::Here && admin_hook_) admin_hook_(pool_name, backend, state);
    return true;
}

void Balancer::retire() {
    if (deliverer_) deliverer_->stop();
    for (auto& l : listeners_)
        l->stop_accepting();
}

void Balancer::stop() {
    if (stopped_) return;
    stopped_ = true;
    // The listeners, the health checker and the spool deliverer each
    // registered how they stop.
    tasks_.request_stop();
    on_each_cache([](ConnectionCache& c) { c.close_all(); });
    tracking_->flush();
}

void Balancer::abort_sessions() {
    for (auto& cache : caches_)
        cache->set_closing();  // relays give up instead of trying more backends
    slots_->wake_all();        // and those waiting for a connection slot now
    for (auto& l : listeners_)
        l->close_sessions();
    on_each_cache([](ConnectionCache& c) {
        for (auto* conn : c.in_use())
            conn->close();
    });
}

std::size_t Balancer::active_sessions() const {
    std::size_t n = 0;
    for (const auto& l : listeners_)
        n += l->sessions();
    return n;
}

std::vector<std::uint16_t> Balancer::bound_ports() const {
    std::vector<std::uint16_t> ports;
    for (const auto& l : listeners_)
        ports.push_back(l->port());
    return ports;
}

}  // namespace smtplb::io
