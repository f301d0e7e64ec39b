#pragma once
#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
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
#include "core/shaping.hpp"

namespace smtplb::core {

// A named group of backends: priority tiers, a scheduler within a tier,
// optional persistence, and the passive view of which backends are usable.
//
// Sessions on every event loop share a pool, so each method takes its lock,
// and the load a scheduler reads (pending, active_connections) changes only
// through the methods below. Who reads backends() beyond the configuration
// and the counters (health, rates, load: the admin API) holds lock().
class Pool {
  public:
    Pool(const config::Pool& config, const base::Clock& clock, base::Random& random);

    // pick()'s per-destination shaping: the transaction's recipient
    // domains (each once, lower case); the hold receives the message and
    // concurrent transaction the chosen backend takes for them.
    struct ShapingPick {
        const std::vector<std::string>* domains = nullptr;
        ShapingHold* hold = nullptr;
        // Out: a backend was passed over at its limit for a domain (the
        // block that frees soonest), whether or not another was chosen.
        std::optional<ShapingBlock> blocked;
    };

    // A backend for a new attempt, never one in `tried`. Lower priority
    // numbers are preferred; a higher tier is used only when no backend of a
    // lower one is usable (MX preference semantics).
    // With `needs`, only backends whose last known capabilities may take
    // the transaction (core/pool_capabilities.hpp: unknown ones are tried).
    // With `shaping` (and destination limits), a backend at its limit for
    // one of the domains is passed over (counted), never tried.
    std::optional<std::size_t> pick(const std::optional<base::IpAddress>& client,
                                    const std::vector<std::size_t>& tried,
                                    const TransactionNeeds& needs = {},
                                    ShapingPick* shaping = nullptr);
    // The pool's [[pool.destination_limit]]s; null without any.
    const std::shared_ptr<Shaping>& shaping() const { return shaping_; }
    // A recipient domain added to a transaction open on `backend`: taken
    // into `hold`, or the block when the backend is at its limit for it.
    std::optional<ShapingBlock> shape_recipient(std::size_t backend, std::string_view domain,
                                                ShapingHold& hold);
    // Ends a hold (Shaping::settle): messages to the `delivered` domains stay counted.
    void settle_shaping(ShapingHold& hold, const std::vector<std::string>& delivered = {});
    // Transactions or recipients that found every backend at its limit for
    // a domain (refused with 451 4.7.1 or 452 4.5.3, or spooled).
    base::Counter shaping_full;

    // Passive health: how a live transaction step went on a backend.
    // `reply` is the backend's reply as text, when there was one.
    void report(std::size_t backend, LiveOutcome outcome, const std::string& reason,
                const std::string& reply = {});
    // Active health: one probe's result.
    void probe_result(std::size_t backend, const proto::ProbeResult& result);
    void set_admin(std::size_t backend, AdminState state);
    // What a backend's EHLO announced (a probe's, an opened connection's):
    // its last known capabilities until the next EHLO says otherwise.
    void learn_capabilities(std::size_t backend, const proto::Capabilities& caps);
    // The pool's capabilities from its backends' last known ones, and a
    // number that changes whenever they may have (listeners cache their
    // EHLO offer on it).
    PoolCapabilities capabilities() const;
    // The refusal for a transaction no backend of the pool can take
    // (pool_refusal), answered at MAIL; nothing when one may.
    std::optional<proto::Reply> refusal(const proto::MailParameters& params) const;
    std::uint64_t capabilities_epoch() const {
        return capabilities_epoch_.load(std::memory_order_acquire);
    }
    // May a new transaction start on this backend now?
    bool usable(std::size_t backend) const;
    // The load schedulers weigh: transactions in flight, connections open.
    void transaction_started(std::size_t backend);
    void transaction_ended(std::size_t backend);
    // connection_opened() counts a connection whatever the backend's
    // max_connections (a health probe's, one opened on a slot below);
    // connection_closed() gives one back, and then the slot-freed callback
    // hears of it when the backend has a max_connections.
    void connection_opened(std::size_t backend);
    void connection_closed(std::size_t backend);
    // A slot for a new connection to a backend, counted in its
    // active_connections at once (so that every event loop sees it) unless
    // that would pass its max_connections; connection_closed() gives it
    // back. Always true without a max_connections.
    bool try_open_connection(std::size_t backend);
    // A transaction waits for a slot (counted), and its wait ran out
    // (counted). Each returns true when the event log should say so: the
    // first time per backend in kCapLogInterval, so a backend that stays
    // at its cap does not flood the log.
    static constexpr std::chrono::seconds kCapLogInterval{60};
    bool connection_wait_started(std::size_t backend);
    bool connection_wait_timed_out(std::size_t backend);
    // Told (without the pool's lock) that a connection to a backend with a
    // max_connections was closed: a waiting transaction may take its slot.
    using SlotFreed = std::function<void(std::size_t backend)>;
    void set_slot_freed(SlotFreed callback) { slot_freed_ = std::move(callback); }
    // Told the same, for the spool (messages deferred at a backend's cap),
    // and when a transaction on such a backend ends or its connection goes
    // idle (room_for_spool).
    void set_spool_slot_freed(SlotFreed callback) { spool_slot_freed_ = std::move(callback); }
    void room_for_spool(std::size_t backend) const;
    // How long the backend took to answer the end of a message.
    void observe_reply_time(std::size_t backend, double seconds);
    // For a consistent read of backends()' health, rates and load.
    std::unique_lock<std::mutex> lock() const { return std::unique_lock(mutex_); }
    bool any_usable() const;
    std::optional<std::size_t> find(const std::string& backend_name) const;
    // After a reload: backends of `previous` with the same name keep their
    // counters and reply-time histogram; with the same address too, their
    // health, admin state and rates. Unchanged destination limits keep
    // their state (keyed by backend name).
    void adopt_state(const Pool& previous);

    // Receives every health transition, for the log. Called without the
    // pool's lock (decided under it, logged after), so it may take its time
    // or call back into the pool; it gets the backend's configuration only,
    // which never changes. Transitions of one backend decided on two threads
    // at once may be logged in either order; each line says from and to.
    using HealthLog = std::function<void(const Pool&, const config::Backend&, const HealthEvent&)>;
    void set_health_log(HealthLog log) { health_log_ = std::move(log); }
    const base::Clock& clock() const { return clock_; }

    // Shared source_ip persistence ([cluster], docs/cluster.md): told each
    // new stick (client address -> backend name) this pool makes, not the
    // ones it only keeps using. Called under the pool's lock from any event
    // loop: the hook must only hand the stick off (post it), never wait.
    using StickHook = std::function<void(const std::string& client, const std::string& backend)>;
    void set_stick_hook(StickHook hook);
    // A stick another node made: this pool's next pick for `client` goes
    // to that backend while it may take the transaction. False when the
    // pool has no source_ip persistence or no such backend.
    bool adopt_stick(const std::string& client, const std::string& backend);
    bool persistent() const { return persistence_.has_value(); }

    const config::Pool& config() const { return config_; }
    const std::string& name() const { return config_.name; }
    std::vector<BackendState>& backends() { return backends_; }
    const std::vector<BackendState>& backends() const { return backends_; }
    BackendState& backend(std::size_t i) { return backends_[i]; }

  private:
    void log(std::size_t backend, const std::optional<HealthEvent>& event) const;
    bool usable_locked(std::size_t backend) const;
    void learn_capabilities_locked(std::size_t backend, const proto::Capabilities& caps);

    mutable std::mutex mutex_;
    std::atomic<std::uint64_t> capabilities_epoch_ = 0;

    config::Pool config_;
    const base::Clock& clock_;
    std::vector<BackendState> backends_;
    std::vector<std::uint32_t> tiers_;  // distinct priorities, ascending
    std::unique_ptr<Scheduler> scheduler_;
    std::optional<PersistenceTable> persistence_;
    StickHook stick_hook_;
    HealthLog health_log_;
    SlotFreed slot_freed_;
    SlotFreed spool_slot_freed_;
    std::shared_ptr<Shaping> shaping_;
    // pick()'s working lists, kept so that choosing costs no allocation.
    std::vector<std::size_t> candidates_;
    std::vector<char> shaped_out_;  // by backend: at its limit for this pick's domains
};

}  // namespace smtplb::core
