#include "io/health_checker.hpp"

#include <algorithm>

#include "io/prober.hpp"

namespace smtplb::io {

HealthChecker::HealthChecker(asio::any_io_executor executor, BackendConnector& connector,
                             std::string hostname, base::Random& random)
    : executor_(std::move(executor)),
      connector_(connector),
      hostname_(std::move(hostname)),
      random_(random) {}

HealthChecker::~HealthChecker() {
    stop();
}

Millis HealthChecker::jittered(Millis base) {
    // ±10%: probes that started together drift apart.
    auto spread = std::max<std::int64_t>(1, base.count() / 5);
    return base - Millis(spread / 2) + Millis(static_cast<std::int64_t>(random_.below(spread)));
}

void HealthChecker::watch(core::Pool& pool) {
    if (!pool.config().health.enabled) return;
    for (std::size_t i = 0; i < pool.backends().size(); ++i) {
        auto target = std::make_unique<Target>(
            Target{&pool, i, std::make_unique<asio::steady_timer>(executor_)});
        auto& ref = *target;
        targets_.push_back(std::move(target));
        asio::co_spawn(executor_, loop(ref), asio::detached);
    }
}

void HealthChecker::probe_now(const core::Pool& pool, std::size_t backend) {
    for (auto& t : targets_)
        if (t->pool == &pool && t->backend == backend) t->timer->cancel();
}

void HealthChecker::stop() {
    if (*stopped_) return;
    *stopped_ = true;
    for (auto& t : targets_)
        t->timer->cancel();
}

awaitable<void> HealthChecker::loop(Target& target) {
    // The flag outlives the checker: a loop resumed after stop() must not
    // touch anything else.
    auto stopped = stopped_;
    auto& pool = *target.pool;
    const auto& health = pool.config().health;
    // The first probe soon after start, spread over up to a second.
    Millis delay(static_cast<std::int64_t>(random_.below(
        static_cast<std::uint64_t>(std::min<Millis>(health.interval, Millis(1000)).count()) + 1)));
    for (;;) {
        target.timer->expires_after(delay);
        auto [ec] = co_await target.timer->async_wait(use_nothrow);
        if (*stopped) co_return;
        delay = jittered(health.interval);
        auto& state = pool.backend(target.backend);
        if (!state.health.probing()) continue;  // maintenance
        proto::ProbePlan plan{health.depth, hostname_, health.mail_from, health.rcpt_to};
        auto report = co_await run_probe(connector_, state.config.address, std::nullopt, plan,
                                         health.timeout, false);
        if (*stopped) co_return;
        ++probes_run_;
        pool.probe_result(target.backend, report.result);
        if (state.health.state() != core::HealthState::Up)
            delay = jittered(std::min(health.down_interval, health.interval));
    }
}

}  // namespace smtplb::io
