#include "core/limits/in_process_limit_store.hpp"

#include <algorithm>
#include <functional>

#include "core/limits/rate_table.hpp"

namespace smtplb::core {
namespace {

// Lookups by string_view without building a std::string.
struct KeyHash {
    using is_transparent = void;
    std::size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};
struct KeyEqual {
    using is_transparent = void;
    bool operator()(std::string_view a, std::string_view b) const { return a == b; }
};

// Keys forgotten from the old end on each rate decision, so that expiry
// keeps pace with traffic without a scan.
constexpr int kExpiredPerDecision = 2;

}  // namespace

struct InProcessLimitStore::Partition {
    using Node = RateTable::Node;

    explicit Partition(std::size_t max) : max_keys(max == 0 ? 1 : max) {}

    std::mutex mutex;
    const std::size_t max_keys;
    RateTable rates;
    // Set by the rate decisions: a key last used longer ago than this has
    // recovered (each decision leaves its TAT at most this far ahead).
    Gcra::Duration max_idle{0};
    std::unordered_map<std::string, std::uint32_t, KeyHash, KeyEqual> held;
    std::uint64_t evictions = 0;
    std::uint64_t table_full = 0;

    bool recovered(const Node* n, TimePoint now) const { return n->last_used + max_idle <= now; }
    // Oldest first: once one has not recovered, none newer has.
    void expire_oldest(TimePoint now, std::size_t budget) {
        while (budget-- > 0 && rates.oldest() && recovered(rates.oldest(), now))
            rates.erase(rates.oldest());
    }
    void insert(std::string_view key, const GcraState& state, TimePoint now) {
        if (rates.size() >= max_keys && rates.oldest()) {
            if (!recovered(rates.oldest(), now)) ++evictions;
            rates.erase(rates.oldest());
        }
        rates.insert(key, state, now);
    }
};

InProcessLimitStore::InProcessLimitStore(const std::vector<std::size_t>& max_keys) {
    for (auto max : max_keys)
        partitions_.push_back(std::make_shared<Partition>(max));
}

bool InProcessLimitStore::adopt(std::size_t limit, LimitStore& from, std::size_t from_limit) {
    auto* other = dynamic_cast<InProcessLimitStore*>(&from);
    if (!other || limit >= partitions_.size() || from_limit >= other->partitions_.size())
        return false;
    // Called before this store is in use; `other`'s vector never changes
    // after its construction, so reading it races with nothing.
    partitions_[limit] = other->partitions_[from_limit];
    return true;
}

InProcessLimitStore::~InProcessLimitStore() = default;

InProcessLimitStore::Partition* InProcessLimitStore::partition(std::size_t limit) {
    // Out of range cannot happen (the store is built from the same limits);
    // such a call is answered as if nothing were remembered.
    return limit < partitions_.size() ? partitions_[limit].get() : nullptr;
}

GcraDecision InProcessLimitStore::rate(std::size_t limit, std::string_view key, const Gcra& gcra,
                                       TimePoint now, std::uint64_t cost, Gcra::Duration max_wait) {
    auto* p = partition(limit);
    if (!p) {
        GcraState scratch;
        return gcra.decide(scratch, now, cost, max_wait);
    }
    std::lock_guard lock(p->mutex);
    p->max_idle = gcra.max_idle();
    p->expire_oldest(now, kExpiredPerDecision);
    if (auto* n = p->rates.find(key)) {
        auto d = gcra.decide(n->state, now, cost, max_wait);
        p->rates.touch(n, now);
        return d;
    }
    GcraState state;
    auto d = gcra.decide(state, now, cost, max_wait);
    // Only a decision that leaves something to remember takes an entry.
    if (!gcra.idle(state, now)) p->insert(key, state, now);
    return d;
}

GcraDecision InProcessLimitStore::peek_rate(std::size_t limit, std::string_view key,
                                            const Gcra& gcra, TimePoint now, std::uint64_t cost,
                                            Gcra::Duration max_wait) {
    auto* p = partition(limit);
    GcraState state;
    if (p) {
        std::lock_guard lock(p->mutex);
        if (auto* n = p->rates.find(key)) state = n->state;
    }
    return gcra.peek(state, now, cost, max_wait);
}

void InProcessLimitStore::refund_rate(std::size_t limit, std::string_view key, const Gcra& gcra,
                                      TimePoint now, std::uint64_t cost) {
    auto* p = partition(limit);
    if (!p) return;
    std::lock_guard lock(p->mutex);
    auto* n = p->rates.find(key);
    if (!n) return;  // forgotten or evicted meanwhile: nothing to give back
    gcra.refund(n->state, now, cost);
    if (gcra.idle(n->state, now)) p->rates.erase(n);
}

AcquireResult InProcessLimitStore::acquire(std::size_t limit, std::string_view key,
                                           std::uint32_t max) {
    auto* p = partition(limit);
    if (!p) return AcquireResult::AtLimit;
    std::lock_guard lock(p->mutex);
    auto it = p->held.find(key);
    if (it == p->held.end()) {
        if (max == 0) return AcquireResult::AtLimit;
        if (p->held.size() >= p->max_keys) {
            ++p->table_full;
            return AcquireResult::TableFull;
        }
        p->held.emplace(std::string(key), 1);
        return AcquireResult::Acquired;
    }
    if (it->second >= max) return AcquireResult::AtLimit;
    ++it->second;
    return AcquireResult::Acquired;
}

void InProcessLimitStore::release(std::size_t limit, std::string_view key) {
    auto* p = partition(limit);
    if (!p) return;
    std::lock_guard lock(p->mutex);
    auto it = p->held.find(key);
    if (it == p->held.end()) return;
    // The last one out removes the key: nothing held, nothing remembered.
    if (--it->second == 0) p->held.erase(it);
}

std::uint32_t InProcessLimitStore::in_use(std::size_t limit, std::string_view key) {
    auto* p = partition(limit);
    if (!p) return 0;
    std::lock_guard lock(p->mutex);
    auto it = p->held.find(key);
    return it == p->held.end() ? 0 : it->second;
}

void InProcessLimitStore::expire(TimePoint now) {
    for (auto& p : partitions_) {
        std::lock_guard lock(p->mutex);
        p->expire_oldest(now, p->rates.size());
    }
}

LimitStoreStats InProcessLimitStore::stats(std::size_t limit) {
    auto* p = partition(limit);
    if (!p) return {};
    std::lock_guard lock(p->mutex);
    return {p->rates.size() + p->held.size(), p->evictions, p->table_full};
}

std::vector<LimitKeyState> InProcessLimitStore::nearest(std::size_t limit, const Gcra* gcra,
                                                        TimePoint now, std::size_t n) {
    std::vector<LimitKeyState> out;
    auto* p = partition(limit);
    if (!p || n == 0) return out;
    // Nearest first: least remaining (then the longest to recover), or most in use.
    auto nearer = [](const LimitKeyState& a, const LimitKeyState& b) {
        if (a.in_use != b.in_use) return a.in_use > b.in_use;
        if (a.remaining != b.remaining) return a.remaining < b.remaining;
        return a.reset_after > b.reset_after;
    };
    // A heap of the n nearest so far, the farthest of them on top. The key
    // is copied only for a state that is kept: the scan holds the lock.
    auto keep = [&](std::string_view key, LimitKeyState s) {
        if (out.size() < n) {
            s.key = std::string(key);
            out.push_back(std::move(s));
            std::push_heap(out.begin(), out.end(), nearer);
        } else if (nearer(s, out.front())) {
            std::pop_heap(out.begin(), out.end(), nearer);
            s.key = std::string(key);
            out.back() = std::move(s);
            std::push_heap(out.begin(), out.end(), nearer);
        }
    };
    std::lock_guard lock(p->mutex);
    if (gcra) {
        for (auto* node = p->rates.newest(); node; node = node->older) {
            if (gcra->idle(node->state, now)) continue;
            auto d = gcra->peek(node->state, now, 0);
            keep(node->key(), {{}, d.remaining, d.reset_after, 0});
        }
    } else {
        for (const auto& [key, count] : p->held)
            keep(key, {{}, 0, Gcra::Duration(0), count});
    }
    std::sort_heap(out.begin(), out.end(), nearer);
    return out;
}

}  // namespace smtplb::core
