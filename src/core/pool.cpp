#include "core/pool.hpp"

#include <algorithm>

namespace smtplb::core {

Pool::Pool(const config::Pool& config, const base::Clock& clock, base::Random& random)
    : config_(config), clock_(clock) {
    for (const auto& b : config_.backends) {
        backends_.emplace_back(b, config_);
        backends_.back().health.started(clock_.now());
        tiers_.push_back(b.priority);
    }
    std::sort(tiers_.begin(), tiers_.end());
    tiers_.erase(std::unique(tiers_.begin(), tiers_.end()), tiers_.end());
    scheduler_ = make_scheduler(config_.algorithm, backends_, random);
    if (config_.persistence == config::Persistence::SourceIp)
        persistence_.emplace(clock_, config_.persistence_ttl);
    if (!config_.destination_limits.empty())
        shaping_ = std::make_shared<Shaping>(config_.destination_limits);
}

bool Pool::usable_locked(std::size_t i) const {
    return backends_[i].health.accepts_new(clock_.now());
}

bool Pool::usable(std::size_t i) const {
    std::lock_guard guard(mutex_);
    return usable_locked(i);
}

bool Pool::any_usable() const {
    std::lock_guard guard(mutex_);
    for (std::size_t i = 0; i < backends_.size(); ++i)
        if (usable_locked(i)) return true;
    return false;
}

void Pool::transaction_started(std::size_t i) {
    std::lock_guard guard(mutex_);
    ++backends_[i].pending;
}

void Pool::transaction_ended(std::size_t i) {
    {
        std::lock_guard guard(mutex_);
        if (backends_[i].pending > 0) --backends_[i].pending;
    }
    // At its cap, the backend's connection may now serve another (an idle
    // one is closed to make room for a waiter): the spool may try again.
    room_for_spool(i);
}

void Pool::room_for_spool(std::size_t i) const {
    if (backends_[i].config.max_connections > 0 && spool_slot_freed_) spool_slot_freed_(i);
}

void Pool::connection_opened(std::size_t i) {
    std::lock_guard guard(mutex_);
    ++backends_[i].active_connections;
}

void Pool::connection_closed(std::size_t i) {
    {
        std::lock_guard guard(mutex_);
        if (backends_[i].active_connections > 0) --backends_[i].active_connections;
    }
    // The configuration never changes: read without the lock.
    if (backends_[i].config.max_connections == 0) return;
    if (slot_freed_) slot_freed_(i);
    room_for_spool(i);
}

bool Pool::try_open_connection(std::size_t i) {
    std::lock_guard guard(mutex_);
    auto& b = backends_[i];
    if (b.config.max_connections > 0 && b.active_connections >= b.config.max_connections)
        return false;
    ++b.active_connections;
    return true;
}

namespace {
// Whether a line may go to the log now: the first one, or kCapLogInterval
// after the last one logged.
bool log_due(std::optional<base::Clock::TimePoint>& last, base::Clock::TimePoint now) {
    if (last && now - *last < Pool::kCapLogInterval) return false;
    last = now;
    return true;
}
}  // namespace

bool Pool::connection_wait_started(std::size_t i) {
    std::lock_guard guard(mutex_);
    ++backends_[i].counters.connection_waits;
    return log_due(backends_[i].cap_logged, clock_.now());
}

bool Pool::connection_wait_timed_out(std::size_t i) {
    std::lock_guard guard(mutex_);
    ++backends_[i].counters.connection_wait_timeouts;
    return log_due(backends_[i].wait_timeout_logged, clock_.now());
}

void Pool::observe_reply_time(std::size_t i, double seconds) {
    std::lock_guard guard(mutex_);
    backends_[i].reply_seconds.observe(seconds);
}

std::optional<std::size_t> Pool::find(const std::string& name) const {
    for (std::size_t i = 0; i < backends_.size(); ++i)
        if (backends_[i].config.name == name) return i;
    return std::nullopt;
}

namespace {
// Of two reasons to pass a backend over, the one to tell the client: a
// concurrency may free at any moment, a rate at its retry_after.
bool sooner(const ShapingBlock& a, const ShapingBlock& b) {
    if (a.concurrency != b.concurrency) return a.concurrency;
    return a.retry_after < b.retry_after;
}
}  // namespace

std::optional<std::size_t> Pool::pick(const std::optional<base::IpAddress>& client,
                                      const std::vector<std::size_t>& tried,
                                      const TransactionNeeds& needs, ShapingPick* shaping) {
    std::lock_guard guard(mutex_);
    const bool verified_tls = config_.tls.verifies();
    auto now = clock_.now();
    auto eligible = [&](std::size_t i) {
        return usable_locked(i) && std::find(tried.begin(), tried.end(), i) == tried.end() &&
               (!needs.any() || may_take(backends_[i].capabilities, needs, verified_tls));
    };
    // Per-destination shaping: a backend at its limit for one of the
    // domains is out of this pick, before the scheduler weighs the others.
    const bool shaped = shaping_ && shaping && shaping->domains && !shaping->domains->empty();
    auto pass_over = [&](std::size_t i, const ShapingBlock& block) {
        shaped_out_[i] = 1;
        ++backends_[i].counters.shaping_skips;
        if (!shaping->blocked || sooner(block, *shaping->blocked)) shaping->blocked = block;
    };
    if (shaped) {
        shaped_out_.assign(backends_.size(), 0);
        for (std::size_t i = 0; i < backends_.size(); ++i)
            if (eligible(i))
                if (auto block =
                        shaping_->blocked(backends_[i].config.name, *shaping->domains, now))
                    pass_over(i, *block);
    }
    auto open = [&](std::size_t i) { return eligible(i) && !(shaped && shaped_out_[i]); };
    // Takes the chosen backend's share of the domains' limits; another
    // event loop (or the previous generation's pool, over a reload) may
    // have taken the last of it since the look above.
    auto take = [&](std::size_t i) {
        if (!shaped || !shaping->hold) return true;
        auto block =
            shaping_->reserve(backends_[i].config.name, i, *shaping->domains, now, *shaping->hold);
        if (block) pass_over(i, *block);
        return !block;
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
            if (!better_tier && take(*remembered)) {
                persistence_->remember(client_key, *remembered);
                return remembered;
            }
        }
    }
    std::uint64_t key = keyed ? stable_hash(client_key) : 0;
    for (auto& b : backends_)
        b.effective_weight = b.config.weight * b.health.weight_permille(now);
    for (std::uint32_t tier : tiers_) {
        for (;;) {
            candidates_.clear();
            for (std::size_t i = 0; i < backends_.size(); ++i)
                if (backends_[i].config.priority == tier && open(i)) candidates_.push_back(i);
            if (candidates_.empty()) break;
            std::size_t chosen = scheduler_->choose(backends_, candidates_, key);
            if (!take(chosen)) continue;  // passed over now: the others of the tier
            if (persistence_ && client) {
                persistence_->remember(client_key, chosen);
                if (stick_hook_) stick_hook_(client_key, backends_[chosen].config.name);
            }
            return chosen;
        }
    }
    return std::nullopt;
}

void Pool::set_stick_hook(StickHook hook) {
    std::lock_guard guard(mutex_);
    stick_hook_ = std::move(hook);
}

bool Pool::adopt_stick(const std::string& client, const std::string& backend) {
    std::lock_guard guard(mutex_);
    if (!persistence_) return false;
    for (std::size_t i = 0; i < backends_.size(); ++i)
        if (backends_[i].config.name == backend) {
            persistence_->remember(client, i);
            return true;
        }
    return false;
}

std::optional<ShapingBlock> Pool::shape_recipient(std::size_t backend, std::string_view domain,
                                                  ShapingHold& hold) {
    if (!shaping_) return std::nullopt;
    const std::vector<std::string> domains{std::string(domain)};
    return shaping_->reserve(backends_[backend].config.name, backend, domains, clock_.now(), hold);
}

void Pool::settle_shaping(ShapingHold& hold, const std::vector<std::string>& delivered) {
    if (hold.empty()) return;
    // The hold's own Shaping: the one it was taken from, even after a reload.
    hold.settle(delivered, clock_.now());
}

void Pool::adopt_state(const Pool& previous) {
    std::scoped_lock guard(mutex_, previous.mutex_);
    // Unchanged rules: the same counts go on (a changed rate would read the
    // old state in another unit, so it starts afresh).
    if (shaping_ && previous.shaping_ && previous.shaping_->rules() == shaping_->rules())
        shaping_ = previous.shaping_;
    shaping_full = previous.shaping_full;
    for (auto& b : backends_) {
        auto old = previous.find(b.config.name);
        if (!old) continue;
        const auto& o = previous.backends_[*old];
        // Counters go on by pool and name (a Prometheus counter that goes
        // back reads as a restart); health only when it is the same server.
        b.counters = o.counters;
        b.reply_seconds = o.reply_seconds;
        if (o.config.address.to_string() != b.config.address.to_string()) continue;
        b.health.adopt(o.health);
        b.rates = o.rates;
        b.capabilities = o.capabilities;
    }
}

// Called after the lock is released: the transition was decided under it,
// the line is written without it, so no event loop's pick() waits on a log.
// What the callback reads (the backend's configuration) never changes.
void Pool::log(std::size_t i, const std::optional<HealthEvent>& event) const {
    if (event && health_log_) health_log_(*this, backends_[i].config, *event);
}

void Pool::report(std::size_t i, LiveOutcome outcome, const std::string& reason,
                  const std::string& reply) {
    std::optional<HealthEvent> event;
    {
        std::lock_guard guard(mutex_);
        auto& b = backends_[i];
        auto now = clock_.now();
        static constexpr ReplyRates::Class kClass[] = {
            ReplyRates::Positive,  ReplyRates::Permanent, ReplyRates::Transient,
            ReplyRates::Transient, ReplyRates::Failure,   ReplyRates::Permanent};
        b.rates.record(kClass[static_cast<int>(outcome)], now);
        event = b.health.live(outcome, reason, reply, now);
    }
    log(i, event);
}

void Pool::learn_capabilities_locked(std::size_t i, const proto::Capabilities& caps) {
    auto learnt = BackendCapabilities::from(caps);
    if (learnt == backends_[i].capabilities) return;
    backends_[i].capabilities = learnt;
    capabilities_epoch_.fetch_add(1, std::memory_order_release);
}

void Pool::learn_capabilities(std::size_t i, const proto::Capabilities& caps) {
    std::lock_guard guard(mutex_);
    learn_capabilities_locked(i, caps);
}

PoolCapabilities Pool::capabilities() const {
    std::lock_guard guard(mutex_);
    PoolCapabilities pool;
    pool.verified_tls = config_.tls.verifies();
    for (const auto& b : backends_)
        pool.add(b.capabilities);
    return pool;
}

std::optional<proto::Reply> Pool::refusal(const proto::MailParameters& params) const {
    auto needs = TransactionNeeds::of(params);
    if (!needs.any()) return std::nullopt;  // the common case takes no lock
    return pool_refusal(capabilities(), needs);
}

void Pool::probe_result(std::size_t i, const proto::ProbeResult& result) {
    std::optional<HealthEvent> event;
    {
        std::lock_guard guard(mutex_);
        if (result.capabilities) learn_capabilities_locked(i, *result.capabilities);
        event = backends_[i].health.probe(result, clock_.now());
    }
    log(i, event);
}

void Pool::set_admin(std::size_t i, AdminState state) {
    std::optional<HealthEvent> event;
    {
        std::lock_guard guard(mutex_);
        event = backends_[i].health.set_admin(state, clock_.now());
    }
    log(i, event);
}

}  // namespace smtplb::core
