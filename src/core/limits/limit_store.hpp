#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "base/clock.hpp"
#include "core/limits/gcra.hpp"

namespace smtplb::core {

enum class AcquireResult {
    Acquired,
    AtLimit,    // the key already holds its maximum
    TableFull,  // max_keys other keys are held: refused rather than untracked
};

// One key's state, for status, the dashboard and the API.
struct LimitKeyState {
    std::string key;
    std::uint64_t remaining = 0;           // rate: units that could pass now
    base::Clock::Duration reset_after{0};  // rate: until the whole burst is back
    std::uint32_t in_use = 0;              // concurrency: held now
};

struct LimitStoreStats {
    std::uint64_t tracked_keys = 0;  // rate keys remembered + concurrency keys held
    std::uint64_t evictions = 0;     // rate keys forgotten early because of max_keys
    std::uint64_t table_full = 0;    // acquisitions refused because of max_keys
};

// Where the state of the configured limits lives: one partition per limit
// (by its index in the configuration), keyed by strings such as
// "sender=a@example.net". The decisions themselves (Gcra, LimitSet) are
// pure; a store only remembers, so that a store shared by several balancers
// (Redis) can replace the in-process one. Implementations are thread-safe.
class LimitStore {
  public:
    using TimePoint = base::Clock::TimePoint;
    virtual ~LimitStore() = default;

    // A rate decision for `cost` units, recorded when it passes (Gcra::decide;
    // `max_wait`: how long the caller would hold the request to let it pass).
    virtual GcraDecision rate(std::size_t limit, std::string_view key, const Gcra& gcra,
                              TimePoint now, std::uint64_t cost,
                              Gcra::Duration max_wait = Gcra::Duration(0)) = 0;
    // The same decision, recording nothing (a check at MAIL for what is
    // counted at end of data; the API).
    virtual GcraDecision peek_rate(std::size_t limit, std::string_view key, const Gcra& gcra,
                                   TimePoint now, std::uint64_t cost,
                                   Gcra::Duration max_wait = Gcra::Duration(0)) = 0;
    // Gives back units recorded by rate().
    virtual void refund_rate(std::size_t limit, std::string_view key, const Gcra& gcra,
                             TimePoint now, std::uint64_t cost) = 0;

    // Concurrency: one more in use under `key` unless it holds `max` already.
    // Every Acquired is matched by exactly one release (LimitLease does it).
    virtual AcquireResult acquire(std::size_t limit, std::string_view key, std::uint32_t max) = 0;
    virtual void release(std::size_t limit, std::string_view key) = 0;
    virtual std::uint32_t in_use(std::size_t limit, std::string_view key) = 0;

    // Forgets rate keys that have recovered their whole burst (called now and
    // then; rate() also forgets a few as it goes).
    virtual void expire(TimePoint now) = 0;
    virtual LimitStoreStats stats(std::size_t limit) = 0;
    // The `n` keys nearest their limit: a rate's (`gcra` given) with the
    // least remaining, a concurrency's (`gcra` null) with the most in use.
    // A scan of the limit's keys (up to max_keys): for status, not per message.
    virtual std::vector<LimitKeyState> nearest(std::size_t limit, const Gcra* gcra, TimePoint now,
                                               std::size_t n) = 0;
    // Makes `from`'s limit `from_limit` this store's limit `limit`, state and
    // all, shared from now on (a reload that keeps that limit as it was).
    // False when the two stores cannot share (the limit then starts afresh).
    virtual bool adopt(std::size_t /*limit*/, LimitStore& /*from*/, std::size_t /*from_limit*/) {
        return false;
    }
};

// One unit of a concurrency limit held: released when the lease is reset or
// destroyed, so a connection or transaction that ends any way at all gives
// its place back exactly once. Keeps the store alive (a reload may replace
// the store while old connections still hold leases).
class LimitLease {
  public:
    LimitLease() = default;
    LimitLease(std::shared_ptr<LimitStore> store, std::size_t limit, std::string key)
        : store_(std::move(store)), limit_(limit), key_(std::move(key)) {}
    ~LimitLease() { reset(); }
    LimitLease(LimitLease&& other) noexcept { *this = std::move(other); }
    LimitLease& operator=(LimitLease&& other) noexcept {
        if (this != &other) {
            reset();
            store_ = std::move(other.store_);
            limit_ = other.limit_;
            key_ = std::move(other.key_);
        }
        return *this;
    }
    LimitLease(const LimitLease&) = delete;
    LimitLease& operator=(const LimitLease&) = delete;

    void reset() {
        if (store_) store_->release(limit_, key_);
        store_.reset();
    }
    bool held() const { return store_ != nullptr; }
    std::size_t limit() const { return limit_; }
    const std::string& key() const { return key_; }

  private:
    std::shared_ptr<LimitStore> store_;
    std::size_t limit_ = 0;
    std::string key_;
};

}  // namespace smtplb::core
