#pragma once
#include <cstddef>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/clock.hpp"
#include "config/shaping.hpp"
#include "core/limits/gcra.hpp"
#include "core/limits/limit_store.hpp"
#include "proto/reply.hpp"

namespace smtplb::core {

// Why a backend cannot take a transaction to a recipient domain now.
struct ShapingBlock {
    std::string domain;
    std::size_t rule = 0;      // which destination_limit of the pool
    bool concurrency = false;  // its concurrent_transactions (else its message rate)
    // A rate: how long until one more message may go; 0 for a concurrency.
    base::Clock::Duration retry_after{0};
};

class Shaping;

// What one transaction holds on its backend under the pool's shaping: per
// shaped recipient domain, a message counted (given back unless the
// backend takes the message for that domain) and a concurrent transaction
// (given back when the transaction lets the backend go). Settled by the
// Shaping that filled it (Pool::settle_shaping); destroyed unsettled, it
// releases the concurrency and leaves the messages counted.
class ShapingHold {
  public:
    bool empty() const { return entries_.empty(); }
    bool holds(std::string_view domain) const;
    std::size_t backend() const { return backend_; }
    // Ends the hold with the Shaping that filled it (Shaping::settle).
    void settle(const std::vector<std::string>& delivered, base::Clock::TimePoint now);

  private:
    friend class Shaping;
    struct Entry {
        std::string domain;
        std::size_t rule = 0;
        std::string key;
        bool counted = false;
        LimitLease lease;
    };
    std::shared_ptr<Shaping> shaping_;  // alive while held, over a reload
    std::size_t backend_ = 0;
    std::vector<Entry> entries_;
};

// One pool's [[pool.destination_limit]]s and their state: keys
// "BACKEND|DOMAIN" (backend names, so that a reload that adds or reorders
// backends keeps them), one store partition per destination limit. Pure:
// time comes in as an argument. Thread-safe (several event loops share a
// pool); a reload that keeps the rules keeps the object.
class Shaping : public std::enable_shared_from_this<Shaping> {
  public:
    using TimePoint = base::Clock::TimePoint;

    explicit Shaping(std::vector<config::DestinationLimit> rules);

    // The rule that shapes mail to `domain` (lower case): its own, else "*".
    std::optional<std::size_t> rule_for(std::string_view domain) const;
    // The first of `domains` that `backend` could not take a transaction
    // to now (at its concurrency, or no message left in its rate); nothing
    // when it can take them all. Counts nothing.
    std::optional<ShapingBlock> blocked(std::string_view backend,
                                        const std::vector<std::string>& domains, TimePoint now);
    // Counts a message and takes a concurrent transaction on `backend` for
    // each of `domains` that `hold` does not hold yet: all of them, or
    // (at a limit) none, and the block says which. `hold` is for one
    // backend: one it held on another is settled first.
    std::optional<ShapingBlock> reserve(std::string_view backend, std::size_t backend_index,
                                        const std::vector<std::string>& domains, TimePoint now,
                                        ShapingHold& hold);
    // Ends `hold`: the messages counted for domains not in `delivered` are
    // given back, the concurrent transactions released.
    void settle(ShapingHold& hold, const std::vector<std::string>& delivered, TimePoint now);

    // The client's 451 4.7.1 when every backend is at its limit for a domain.
    proto::Reply refusal(const ShapingBlock& block, const std::string& pool) const;
    // The 452 4.5.3 for a later recipient whose domain the transaction's
    // backend cannot take now: the client sends it in another transaction.
    proto::Reply separate(const ShapingBlock& block, const std::string& pool) const;

    const std::vector<config::DestinationLimit>& rules() const { return rules_; }
    LimitStore& store() { return *store_; }

  private:
    std::string key(std::string_view backend, std::string_view domain) const;
    std::string name(const ShapingBlock& block, const std::string& pool) const;

    std::vector<config::DestinationLimit> rules_;
    std::vector<std::optional<Gcra>> rates_;  // by rule; nullopt without a message rate
    std::optional<std::size_t> wildcard_;
    std::shared_ptr<LimitStore> store_;
};

// Adds `domain` to `domains` in lower case, unless it is there already or empty.
void add_domain(std::vector<std::string>& domains, std::string_view domain);

}  // namespace smtplb::core
