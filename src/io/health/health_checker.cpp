#include "io/health/health_checker.hpp"

#include <algorithm>

#include "io/health/prober.hpp"
#include "proto/identity.hpp"

namespace smtplb::io {

HealthChecker::HealthChecker(asio::any_io_executor executor, TaskGroup& tasks,
                             BackendConnector& connector, std::string hostname,
                             base::Random& random)
    : executor_(std::move(executor)),
      tasks_(tasks),
      connector_(connector),
      hostname_(std::move(hostname)),
      random_(random),
      stop_registration_(tasks.on_stop([this] { stop(); })) {}

HealthChecker::~HealthChecker() {
    try {
        stop();
    } catch (const std::exception&) {
        // A timer's cancel() throws only if epoll does; nothing to do then.
    }
}

Millis HealthChecker::jittered(Millis base) {
    // ±10%: several balancers probing the same backends drift apart.
    auto spread = std::max<std::int64_t>(1, base.count() / 5);
    return base - Millis(spread / 2) + Millis(static_cast<std::int64_t>(random_.below(spread)));
}

void HealthChecker::watch(core::Pool& pool, const config::ProbeOrigin& origin) {
    if (!pool.config().health.enabled) return;
    const auto n = pool.backends().size();
    auto w = std::make_unique<Watched>(
        Watched{&pool, std::vector<bool>(n, false), std::vector<TaskGroup::Canceller>(n),
                std::make_unique<asio::steady_timer>(executor_),
                std::make_unique<asio::steady_timer>(executor_), origin});
    auto& ref = *w;
    watched_.push_back(std::move(w));
    // Refused once the group is closed: then there is nothing to probe for.
    tasks_.spawn(executor_, rounds(ref, true));
    tasks_.spawn(executor_, rounds(ref, false));
}

void HealthChecker::probe_now(const core::Pool& pool, std::size_t backend) {
    if (stopped_) return;
    for (auto& w : watched_)
        if (w->pool == &pool) start_probe(*w, backend);
}

void HealthChecker::stop() {
    if (stopped_) return;
    stopped_ = true;
    for (auto& w : watched_) {
        w->up_timer->cancel();
        w->out_timer->cancel();
        // A probe in flight ends now: its result would change nothing, and
        // a backend that does not answer must not hold up a reload's
        // release or the daemon's exit for its timeout.
        for (std::size_t i = 0; i < w->probing.size(); ++i)
            if (w->probing[i]) w->cancel[i]();
    }
}

void HealthChecker::start_probe(Watched& w, std::size_t backend) {
    if (w.probing[backend]) return;
    {
        auto guard = w.pool->lock();
        if (!w.pool->backend(backend).health.probing()) return;
    }
    w.probing[backend] = true;
    ++in_flight_;
    w.cancel[backend] = tasks_.spawn_cancellable(executor_, probe_one(w, backend));
    if (!w.cancel[backend]) {
        w.probing[backend] = false;
        --in_flight_;
    }
}

// A task of the generation's group: the checker, `w` and the pool outlive it.
awaitable<void> HealthChecker::probe_one(Watched& w, std::size_t backend) {
    // Cancelled by stop(): the step in progress fails and the probe ends
    // by its usual path, without an exception.
    co_await asio::this_coro::throw_if_cancelled(false);
    auto& pool = *w.pool;
    const auto& health = pool.config().health;
    proto::ProbePlan plan{health.depth, hostname_, health.mail_from, health.rcpt_to};
    plan_tls_for(pool.config(), plan);
    if (const auto& auth = pool.backend(backend).config.auth) {
        plan.auth = auth->credentials;
        plan.auth_plaintext = auth->allow_plaintext;
    }
    if (w.origin.identity == config::IdentityMode::ProxyV1) {
        // v1 has no LOCAL that Postfix takes ("PROXY UNKNOWN" gets 421): the
        // probe names its own source (0.0.0.0 when listeners differ).
        proto::ClientIdentity self;
        const auto& to = pool.backend(backend).config.address;
        auto backend_ip = base::IpAddress::parse(to.host);
        if (backend_ip) self.local_address = *backend_ip;
        self.local_port = to.port;
        self.address = w.origin.source.value_or(
            *base::IpAddress::parse(self.local_address.v6 ? "::" : "0.0.0.0"));
        plan.preamble = proto::proxy_v1_header(self);
    } else if (w.origin.identity == config::IdentityMode::ProxyV2)
        plan.preamble = proto::proxy_v2_local_header();
    auto tls = probe_tls_for(pool.config(), backend,
                             backend_tls_ ? backend_tls_->for_pool(pool.name()) : nullptr);
    auto report = co_await run_probe(connector_, pool.backend(backend).config.address,
                                     w.origin.source, plan, health.timeout, false, tls);
    --in_flight_;
    if (stopped_) co_return;  // a result after stop() changes nothing
    w.probing[backend] = false;
    ++*probes_run_;
    auto& state = pool.backend(backend);
    const auto& warning = report.result.warning;
    if (report.result.verdict == proto::ProbeVerdict::Healthy && warning != state.warning) {
        if (warning_log_)
            warning_log_("event=backend_warning pool=" + pool.name() +
                         " backend=" + state.config.name + " warning=\"" +
                         (warning.empty() ? "cleared" : warning) + "\"");
        state.warning = warning;
    }
    pool.probe_result(backend, report.result);
}

awaitable<void> HealthChecker::rounds(Watched& w, bool up) {
    auto& timer = up ? *w.up_timer : *w.out_timer;
    const auto& health = w.pool->config().health;
    const Millis period = up ? health.interval : std::min(health.down_interval, health.interval);
    // The first round soon after start, at a random point of up to a second.
    Millis delay(static_cast<std::int64_t>(
        random_.below(static_cast<std::uint64_t>(std::min(period, Millis(1000)).count()) + 1)));
    for (;;) {
        timer.expires_after(delay);
        // Cancelled early (stop) or not: the flag says which.
        [[maybe_unused]] auto [ec] = co_await timer.async_wait(use_nothrow);
        if (stopped_) co_return;
        delay = jittered(period);
        for (std::size_t i = 0; i < w.pool->backends().size(); ++i) {
            bool is_up = false;
            {
                auto guard = w.pool->lock();
                is_up = w.pool->backend(i).health.state() == core::HealthState::Up;
            }
            if (is_up == up) start_probe(w, i);
        }
    }
}

}  // namespace smtplb::io
