#pragma once
#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "base/clock.hpp"
#include "base/network.hpp"
#include "config/limits.hpp"
#include "core/limits/gcra.hpp"
#include "core/limits/limit_batch.hpp"
#include "core/limits/limit_store.hpp"
#include "proto/reply.hpp"

namespace smtplb::core {

// The moments a limit is looked at. Connections are counted at Connect;
// transactions from Mail; recipients at Rcpt (each one accepted: give back
// the ones a backend refuses after all); messages and bytes at EndOfData,
// with an early look (nothing counted) at Mail, or at Rcpt for a limit
// keyed by recipient_domain, so that a sender over its rate is refused
// before it sends the message. One look per transaction is enough: a rate
// checked at each RCPT too would cost every recipient a store access.
enum class LimitEvent { Connect, Mail, Rcpt, EndOfData };

// Who and what an event is about; what is not known yet stays empty, and a
// limit keyed by something not known is not applied at that event.
struct LimitSubject {
    std::string listener;
    std::optional<base::IpAddress> client;
    std::string auth_user;                       // "" = not authenticated
    std::optional<std::string> sender;           // from Mail on; "" = the null sender <>
    std::string recipient;                       // Rcpt: this recipient
    std::vector<std::string> recipient_domains;  // EndOfData: the accepted recipients' domains
    std::uint64_t bytes = 0;  // EndOfData: the message's size; Mail: its SIZE=, when given
};

struct LimitVerdict {
    enum class Kind {
        Allow,
        Delay,     // hold the reply for `hold`, then go on as allowed
        Tempfail,  // hold the reply for `hold` (a tarpit, may be 0), then refuse with `reply`
    };
    Kind kind = Kind::Allow;
    base::Clock::Duration hold{0};
    proto::Reply reply;  // Tempfail
    std::string limit;   // the limit that refused or delayed (the first one)
    std::string key;     // and its key, for the tracking log
    // Concurrency taken by this event (Connect: the connection's, Mail: the
    // transaction's): kept until it ends, released when dropped.
    std::vector<LimitLease> leases;
};

struct LimitHits {
    std::uint64_t tempfail = 0;
    std::uint64_t delay = 0;
};

// The configured [[limit]]s applied to one event at a time, their state in
// a LimitStore. Pure: time comes in as an argument. Thread-safe.
class LimitSet {
  public:
    using TimePoint = base::Clock::TimePoint;

    // `clustered`: with [cluster], the limits not marked `shared = false`
    // are left to plan()/conclude() and a shared store; check() skips them.
    LimitSet(std::vector<config::Limit> limits, std::shared_ptr<LimitStore> store,
             bool clustered = false);
    // The in-process store sized for these limits.
    static std::shared_ptr<LimitStore> in_process_store(const std::vector<config::Limit>& limits);

    // Counts the event against every limit that applies to it and decides.
    // A refusal takes back what this event had counted under other limits.
    LimitVerdict check(LimitEvent event, const LimitSubject& subject, TimePoint now);
    // The shared limits' side of an event: the operations a shared store
    // is to run at once (none when no shared limit applies), then the
    // verdict from its results (hits counted as check() counts them; the
    // leases taken are released into `lease_store`).
    LimitBatch plan(LimitEvent event, const LimitSubject& subject) const;
    LimitVerdict conclude(LimitEvent event, const LimitBatch& batch, const LimitBatchResult& result,
                          const std::shared_ptr<LimitStore>& lease_store);
    bool has_shared() const { return shared_count_ > 0; }
    bool shared(std::size_t index) const { return index < shared_.size() && shared_[index]; }
    // The shared limits as this node applies them alone while the shared
    // store does not answer: each rate (quantity and burst) and
    // concurrency divided by the `nodes` that share it, rounded up.
    std::vector<config::Limit> local_share(std::size_t nodes) const;

    // Gives back what check() counted at this event (a recipient the
    // backend refused after all).
    void refund(LimitEvent event, const LimitSubject& subject, TimePoint now);

    // The keys `subject` has under limit `index` at `event` (several at end
    // of data for a limit keyed by recipient_domain); none when the limit
    // does not apply (another listener, exempt, a key part not known yet).
    std::vector<std::string> keys(std::size_t index, LimitEvent event,
                                  const LimitSubject& subject) const;

    // The key a subject with these part values (unescaped, in any order)
    // has under limit `index`, built as keys() builds it: escaped, lower
    // case where keys() lowers it, an address cut to the limit's prefix for
    // client_network. None when the limit is keyed by other parts or an
    // address does not parse.
    using KeyValues = std::vector<std::pair<config::LimitKeyPart, std::string>>;
    std::optional<std::string> key_of(std::size_t index, const KeyValues& values) const;
    // One key's state under limit `index` (the API's /limits?key=...).
    LimitKeyState inspect(std::size_t index, std::string_view key, TimePoint now);
    // The `n` keys nearest limit `index` (status, the dashboard).
    std::vector<LimitKeyState> nearest(std::size_t index, TimePoint now, std::size_t n);

    const std::vector<config::Limit>& limits() const { return limits_; }
    LimitStore& store() { return *store_; }
    LimitHits hits(std::size_t index) const;

    // A reload that changed the limits: each limit named as one of
    // `previous`'s shares its hit counters (the old generation's sessions
    // go on counting into them) and carries its evictions and table_full
    // on, so that no counter on /metrics goes back. One that is exactly as
    // it was keeps its keys' state as well (the store adopts it).
    void carry_over(LimitSet& previous);
    // store().stats(index), with what carry_over() brought.
    LimitStoreStats stats(std::size_t index);

    // The keys nearest limit `index`, nearest first, at most kTopKeys, from
    // a scan at most kTopKeysMaxAge old: a scan holds the limit's lock
    // (~20 ms per million keys), so however often status, the dashboard and
    // the API ask, it runs at most that often per limit.
    struct TopKeys {
        TimePoint scanned_at;
        std::vector<LimitKeyState> keys;
    };
    static constexpr std::size_t kTopKeys = 100;
    static constexpr base::Clock::Duration kTopKeysMaxAge = std::chrono::seconds(2);
    TopKeys top_keys(std::size_t index, TimePoint now);

  private:
    struct Counted;
    struct Hits {
        std::atomic<std::uint64_t> tempfail{0};
        std::atomic<std::uint64_t> delay{0};
    };
    enum class Use { None, Consume, Peek, Acquire };
    static Use use_at(const config::Limit& limit, LimitEvent event);
    // Not another listener's limit, nor one the client or user is exempt from.
    static bool applies(const config::Limit& limit, const LimitSubject& subject);
    // Calls on_key(std::string_view) for each key `subject` has under limit
    // `index` at `event`, each built in `key` (the caller's scratch space).
    template <typename OnKey>
    void for_each_key(std::size_t index, LimitEvent event, const LimitSubject& subject,
                      std::string& key, OnKey&& on_key) const;
    // Appends "part=value" (after a '|') for a key part known at this
    // event; false when it is not known (the limit waits).
    static bool append_part(std::string& key, config::LimitKeyPart part, const config::Limit& limit,
                            const LimitSubject& subject, std::string_view recipient_domain);
    std::uint64_t cost(std::size_t index, const LimitSubject& subject) const;
    proto::Reply refusal(std::size_t index, LimitEvent event,
                         base::Clock::Duration retry_after) const;

    std::vector<config::Limit> limits_;
    std::vector<std::optional<Gcra>> rates_;  // by index; nullopt for concurrencies
    std::vector<bool> shared_;                // by index: left to a shared store
    std::size_t shared_count_ = 0;
    std::shared_ptr<LimitStore> store_;
    std::vector<std::shared_ptr<Hits>> hits_;  // by index; shared by carry_over()
    std::vector<LimitStoreStats> carried_;     // by index; evictions, table_full before
    struct TopCache {
        std::mutex mutex;
        std::vector<std::optional<TopKeys>> scans;  // by index
    };
    std::unique_ptr<TopCache> top_ = std::make_unique<TopCache>();
};

}  // namespace smtplb::core
