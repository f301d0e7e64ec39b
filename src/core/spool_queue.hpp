#pragma once
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "base/clock.hpp"
#include "base/random.hpp"

namespace smtplb::core {

struct QueueSettings {
    std::chrono::milliseconds retry_initial{60000};
    std::chrono::milliseconds retry_max{1800000};
    std::chrono::milliseconds max_lifetime{5 * 86400000LL};
};

// The spool's index in memory: what is queued, held or being delivered, and
// when each message is next tried (exponential backoff with jitter). Pure:
// the files are the truth; this is rebuilt from them on start.
class SpoolQueue {
  public:
    enum class State { Ready, Busy, Held };
    // Why a deferred message waits. Its backoff is for a deferral about the
    // message (a recipient greylisted, a content check); one because its
    // pool had nothing to offer (every backend down or busy, or at its
    // max_connections) ends when the pool has something again: drain().
    enum class Wait { Backoff, PoolUnavailable, BackendLimits };
    // What ended a wait: a backend of the pool came back into service (its
    // health went up, or an administrator enabled it), or a connection
    // slot to a backend with max_connections freed up.
    enum class DrainCause { BackendReturned, SlotFreed };
    struct Entry {
        std::string id;
        std::int64_t arrival_ms = 0;
        std::uint64_t size = 0;
        std::uint32_t attempts = 0;
        base::Clock::TimePoint next_attempt{};
        State state = State::Ready;
        std::string last_error;
        std::string pool;    // known once the file was read (or written here)
        std::string client;  // the client connection it came from, likewise

        Wait wait = Wait::Backoff;      // why it waits, after a deferral
        std::uint64_t drains_seen = 0;  // the pool's drain count when taken
    };

    SpoolQueue(const base::Clock& clock, base::Random& random, QueueSettings settings)
        : clock_(clock), random_(random), settings_(settings) {}

    void set_settings(QueueSettings settings) { settings_ = settings; }
    void add(const std::string& id, std::int64_t arrival_ms, std::uint64_t size, bool held = false,
             const std::string& pool = {}, const std::string& client = {});
    void set_route(const std::string& id, const std::string& pool, const std::string& client);
    const Entry* find(const std::string& id) const;
    // Up to `max` messages due now, oldest first, that `ready` accepts
    // (e.g. their pool has a backend up); they become Busy.
    // Pools that `pool_ready` refuses are skipped as a whole (no look at
    // their messages), and only the oldest few hundred due messages of each
    // pool are looked at, so a call costs little however long the queue.
    using Filter = std::function<bool(const Entry&)>;
    using PoolFilter = std::function<bool(const std::string& pool)>;
    std::vector<std::string> take_due(std::size_t max, const Filter& ready = {},
                                      const PoolFilter& pool_ready = {});
    // The oldest message due now from this client connection, if `ready`
    // accepts it; it becomes Busy. For delivering one client's messages in
    // a row over the same backend connections.
    std::optional<std::string> take_next_for_client(const std::string& client,
                                                    const Filter& ready = {});
    // The attempt ended; the message is gone (delivered, bounced, moved away).
    void remove(const std::string& id);
    // The attempt ended with recipients left: next try after the backoff.
    // Deferred because the pool had nothing to offer (`why`), and the pool
    // was drained while the attempt ran: due again at once.
    void deferred(const std::string& id, const std::string& reason, Wait why = Wait::Backoff);
    // The pool has something to offer again: its messages waiting for that
    // (BackendReturned: PoolUnavailable and BackendLimits; SlotFreed:
    // BackendLimits) are due now; how many. The deliverer takes them at
    // its concurrency, like any due message.
    std::size_t drain(const std::string& pool, DrainCause cause);
    // Some message of `pool` waits for a connection slot (cheap: asked on
    // every slot freed).
    bool waits_for_slots(const std::string& pool) const { return slot_waiters_.count(pool) > 0; }
    bool any_slot_waiters() const { return !slot_waiters_.empty(); }
    // The attempt could not start (nothing could take it now): try again
    // soon without counting an attempt.
    void postpone(const std::string& id, std::chrono::milliseconds delay);
    bool expired(const std::string& id, std::int64_t now_ms) const;
    bool hold(const std::string& id);     // false when absent or busy
    bool release(const std::string& id);  // false when not held
    void flush();                         // every ready message is due now
    // The delay before attempt number `attempts` + 1, without jitter.
    std::chrono::milliseconds backoff(std::uint32_t attempts) const;

    std::size_t size() const { return entries_.size(); }
    std::uint64_t bytes() const { return bytes_; }
    std::size_t held() const;
    std::size_t busy() const { return busy_; }
    std::optional<std::int64_t> oldest_arrival_ms() const;
    std::vector<const Entry*> list() const;

  private:
    // A Ready entry is in exactly one of due_by_pool_ (per pool, by ID:
    // arrival order; "" for a pool not known yet) or waiting_ (by next
    // attempt), so taking the next message costs no scan of the messages
    // that wait out a backoff or belong to a pool that is down.
    void schedule(Entry& e);
    void unschedule(const Entry& e);
    void make_due(const Entry& e);
    void not_due(const Entry& e);
    void promote_waiting();
    void forget_slot_wait(const Entry& e);

    const base::Clock& clock_;
    base::Random& random_;
    QueueSettings settings_;
    std::map<std::string, Entry> entries_;  // by ID: arrival order
    std::map<std::string, std::set<std::string>> due_by_pool_;
    std::map<std::string, std::set<std::string>> due_by_client_;
    std::set<std::pair<base::Clock::TimePoint, std::string>> waiting_;
    // Of waiting_, those deferred for BackendLimits, by pool.
    std::map<std::string, std::set<std::string>> slot_waiters_;
    std::map<std::string, std::uint64_t> drains_;  // drain() calls per pool
    std::uint64_t drain_count(const std::string& pool) const;
    std::uint64_t bytes_ = 0;
    std::size_t busy_ = 0;
};

}  // namespace smtplb::core
