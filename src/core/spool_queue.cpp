#include "core/spool_queue.hpp"

#include <algorithm>

namespace smtplb::core {

void SpoolQueue::make_due(const Entry& e) {
    due_by_pool_[e.pool].insert(e.id);
    if (!e.client.empty()) due_by_client_[e.client].insert(e.id);
}

void SpoolQueue::not_due(const Entry& e) {
    if (auto p = due_by_pool_.find(e.pool); p != due_by_pool_.end()) {
        p->second.erase(e.id);
        if (p->second.empty()) due_by_pool_.erase(p);
    }
    auto it = due_by_client_.find(e.client);
    if (it == due_by_client_.end()) return;
    it->second.erase(e.id);
    if (it->second.empty()) due_by_client_.erase(it);
}

void SpoolQueue::schedule(Entry& e) {
    if (e.next_attempt <= clock_.now()) {
        make_due(e);
        return;
    }
    waiting_.emplace(e.next_attempt, e.id);
    if (e.wait == Wait::BackendLimits) slot_waiters_[e.pool].insert(e.id);
}

void SpoolQueue::forget_slot_wait(const Entry& e) {
    auto it = slot_waiters_.find(e.pool);
    if (it == slot_waiters_.end()) return;
    it->second.erase(e.id);
    if (it->second.empty()) slot_waiters_.erase(it);
}

void SpoolQueue::unschedule(const Entry& e) {
    not_due(e);
    waiting_.erase({e.next_attempt, e.id});
    forget_slot_wait(e);
}

void SpoolQueue::promote_waiting() {
    auto now = clock_.now();
    while (!waiting_.empty() && waiting_.begin()->first <= now) {
        const auto& e = entries_.at(waiting_.begin()->second);
        forget_slot_wait(e);
        make_due(e);
        waiting_.erase(waiting_.begin());
    }
}

std::uint64_t SpoolQueue::drain_count(const std::string& pool) const {
    auto it = drains_.find(pool);
    return it == drains_.end() ? 0 : it->second;
}

void SpoolQueue::add(const std::string& id, std::int64_t arrival_ms, std::uint64_t size, bool held,
                     const std::string& pool, const std::string& client) {
    if (entries_.count(id)) return;
    Entry e;
    e.pool = pool;
    e.client = client;
    e.id = id;
    e.arrival_ms = arrival_ms;
    e.size = size;
    e.next_attempt = clock_.now();
    e.state = held ? State::Held : State::Ready;
    bytes_ += size;
    auto& stored = entries_.emplace(id, std::move(e)).first->second;
    if (!held) schedule(stored);
}

void SpoolQueue::set_route(const std::string& id, const std::string& pool,
                           const std::string& client) {
    auto it = entries_.find(id);
    if (it == entries_.end()) return;
    auto& e = it->second;
    bool ready = e.state == State::Ready;
    if (ready) unschedule(e);
    e.pool = pool;
    e.client = client;
    if (e.state == State::Busy) e.drains_seen = drain_count(pool);
    if (ready) schedule(e);
}

const SpoolQueue::Entry* SpoolQueue::find(const std::string& id) const {
    auto it = entries_.find(id);
    return it == entries_.end() ? nullptr : &it->second;
}

std::vector<std::string> SpoolQueue::take_due(std::size_t max, const Filter& ready,
                                              const PoolFilter& pool_ready) {
    promote_waiting();
    const std::size_t budget = 4 * max + 256;
    std::vector<Entry*> candidates;
    for (const auto& [pool, ids] : due_by_pool_) {
        if (!pool.empty() && pool_ready && !pool_ready(pool)) continue;
        std::size_t looked = 0;
        for (auto it = ids.begin(); it != ids.end() && looked < budget; ++it, ++looked)
            candidates.push_back(&entries_.at(*it));
    }
    // Oldest first across pools.
    std::sort(candidates.begin(), candidates.end(),
              [](const Entry* a, const Entry* b) { return a->id < b->id; });
    std::vector<std::string> taken;
    for (auto* e : candidates) {
        if (taken.size() >= max) break;
        if (ready && !ready(*e)) continue;
        not_due(*e);
        e->state = State::Busy;
        e->drains_seen = drain_count(e->pool);
        ++busy_;
        taken.push_back(e->id);
    }
    return taken;
}

std::optional<std::string> SpoolQueue::take_next_for_client(const std::string& client,
                                                            const Filter& ready) {
    promote_waiting();
    auto it = due_by_client_.find(client);
    if (it == due_by_client_.end()) return std::nullopt;
    for (const auto& id : it->second) {
        auto& e = entries_.at(id);
        if (ready && !ready(e)) continue;
        not_due(e);  // may erase `it`: return at once
        e.state = State::Busy;
        e.drains_seen = drain_count(e.pool);
        ++busy_;
        return e.id;
    }
    return std::nullopt;
}

void SpoolQueue::remove(const std::string& id) {
    auto it = entries_.find(id);
    if (it == entries_.end()) return;
    if (it->second.state == State::Busy) --busy_;
    if (it->second.state == State::Ready) unschedule(it->second);
    bytes_ -= it->second.size;
    entries_.erase(it);
}

std::chrono::milliseconds SpoolQueue::backoff(std::uint32_t attempts) const {
    auto delay = settings_.retry_initial;
    for (std::uint32_t i = 1; i < attempts && delay < settings_.retry_max; ++i)
        delay *= 2;
    return std::min(delay, settings_.retry_max);
}

void SpoolQueue::deferred(const std::string& id, const std::string& reason, Wait why) {
    auto it = entries_.find(id);
    if (it == entries_.end()) return;
    auto& e = it->second;
    ++e.attempts;
    e.last_error = reason;
    e.wait = why;
    // The pool came back while this attempt ran on what it knew before:
    // the wait it would start is already over.
    if (why != Wait::Backoff && drain_count(e.pool) != e.drains_seen) {
        postpone(id, std::chrono::milliseconds(0));
        return;
    }
    // ±20% jitter, so messages deferred together do not come back together.
    auto base = backoff(e.attempts);
    auto spread = static_cast<std::uint64_t>(base.count()) * 2 / 5 + 1;
    auto jittered = base - base / 5 + std::chrono::milliseconds(random_.below(spread));
    postpone(id, std::chrono::duration_cast<std::chrono::milliseconds>(jittered));
}

void SpoolQueue::postpone(const std::string& id, std::chrono::milliseconds delay) {
    auto it = entries_.find(id);
    if (it == entries_.end()) return;
    auto& e = it->second;
    if (e.state == State::Held) {
        e.next_attempt = clock_.now() + delay;
        return;
    }
    if (e.state == State::Busy) --busy_;
    if (e.state == State::Ready) unschedule(e);
    e.state = State::Ready;
    e.next_attempt = clock_.now() + delay;
    schedule(e);
}

bool SpoolQueue::expired(const std::string& id, std::int64_t now_ms) const {
    auto* e = find(id);
    return e && now_ms - e->arrival_ms >= settings_.max_lifetime.count();
}

bool SpoolQueue::hold(const std::string& id) {
    auto it = entries_.find(id);
    if (it == entries_.end() || it->second.state == State::Busy) return false;
    if (it->second.state == State::Ready) unschedule(it->second);
    it->second.state = State::Held;
    return true;
}

bool SpoolQueue::release(const std::string& id) {
    auto it = entries_.find(id);
    if (it == entries_.end() || it->second.state != State::Held) return false;
    it->second.state = State::Ready;
    it->second.next_attempt = clock_.now();
    schedule(it->second);
    return true;
}

void SpoolQueue::flush() {
    auto now = clock_.now();
    for (const auto& [when, id] : waiting_) {
        auto& e = entries_.at(id);
        e.next_attempt = now;
        make_due(e);
    }
    waiting_.clear();
    slot_waiters_.clear();
}

std::size_t SpoolQueue::drain(const std::string& pool, DrainCause cause) {
    ++drains_[pool];
    std::vector<Entry*> ended;
    if (cause == DrainCause::SlotFreed) {
        if (auto it = slot_waiters_.find(pool); it != slot_waiters_.end())
            for (const auto& id : it->second)
                ended.push_back(&entries_.at(id));
    } else {
        for (const auto& [when, id] : waiting_) {
            auto& e = entries_.at(id);
            if (e.pool == pool && e.wait != Wait::Backoff) ended.push_back(&e);
        }
    }
    auto now = clock_.now();
    for (auto* e : ended) {
        unschedule(*e);
        e->next_attempt = now;
        make_due(*e);
    }
    return ended.size();
}

std::size_t SpoolQueue::held() const {
    return static_cast<std::size_t>(
        std::count_if(entries_.begin(), entries_.end(),
                      [](const auto& p) { return p.second.state == State::Held; }));
}

std::optional<std::int64_t> SpoolQueue::oldest_arrival_ms() const {
    if (entries_.empty()) return std::nullopt;
    return entries_.begin()->second.arrival_ms;
}

std::vector<const SpoolQueue::Entry*> SpoolQueue::list() const {
    std::vector<const Entry*> out;
    out.reserve(entries_.size());
    for (const auto& [id, e] : entries_)
        out.push_back(&e);
    return out;
}

}  // namespace smtplb::core
