#include "core/spool_queue.hpp"

#include <algorithm>

namespace smtplb::core {

void SpoolQueue::add(const std::string& id, std::int64_t arrival_ms, std::uint64_t size,
                     bool held, const std::string& pool) {
    if (entries_.count(id)) return;
    Entry e;
    e.pool = pool;
    e.id = id;
    e.arrival_ms = arrival_ms;
    e.size = size;
    e.next_attempt = clock_.now();
    e.state = held ? State::Held : State::Ready;
    bytes_ += size;
    entries_.emplace(id, std::move(e));
}

const SpoolQueue::Entry* SpoolQueue::find(const std::string& id) const {
    auto it = entries_.find(id);
    return it == entries_.end() ? nullptr : &it->second;
}

void SpoolQueue::set_pool(const std::string& id, const std::string& pool) {
    auto it = entries_.find(id);
    if (it != entries_.end()) it->second.pool = pool;
}

std::vector<std::string> SpoolQueue::take_due(std::size_t max, const Filter& ready) {
    std::vector<std::string> due;
    auto now = clock_.now();
    for (auto& [id, e] : entries_) {
        if (due.size() >= max) break;
        if (e.state != State::Ready || e.next_attempt > now) continue;
        if (ready && !ready(e)) continue;
        e.state = State::Busy;
        ++busy_;
        due.push_back(id);
    }
    return due;
}

void SpoolQueue::remove(const std::string& id) {
    auto it = entries_.find(id);
    if (it == entries_.end()) return;
    if (it->second.state == State::Busy) --busy_;
    bytes_ -= it->second.size;
    entries_.erase(it);
}

std::chrono::milliseconds SpoolQueue::backoff(std::uint32_t attempts) const {
    auto delay = settings_.retry_initial;
    for (std::uint32_t i = 1; i < attempts && delay < settings_.retry_max; ++i)
        delay *= 2;
    return std::min(delay, settings_.retry_max);
}

void SpoolQueue::deferred(const std::string& id, const std::string& reason) {
    auto it = entries_.find(id);
    if (it == entries_.end()) return;
    auto& e = it->second;
    if (e.state == State::Busy) --busy_;
    ++e.attempts;
    e.last_error = reason;
    // ±20% jitter, so messages deferred together do not come back together.
    auto base = backoff(e.attempts);
    auto spread = static_cast<std::uint64_t>(base.count()) * 2 / 5 + 1;
    auto jittered = base - base / 5 + std::chrono::milliseconds(random_.below(spread));
    e.next_attempt = clock_.now() + jittered;
    if (e.state != State::Held) e.state = State::Ready;
}

void SpoolQueue::postpone(const std::string& id, std::chrono::milliseconds delay) {
    auto it = entries_.find(id);
    if (it == entries_.end()) return;
    auto& e = it->second;
    if (e.state == State::Busy) {
        --busy_;
        e.state = State::Ready;
    }
    e.next_attempt = clock_.now() + delay;
}

bool SpoolQueue::expired(const std::string& id, std::int64_t now_ms) const {
    auto* e = find(id);
    return e && now_ms - e->arrival_ms >= settings_.max_lifetime.count();
}

bool SpoolQueue::hold(const std::string& id) {
    auto it = entries_.find(id);
    if (it == entries_.end() || it->second.state == State::Busy) return false;
    it->second.state = State::Held;
    return true;
}

bool SpoolQueue::release(const std::string& id) {
    auto it = entries_.find(id);
    if (it == entries_.end() || it->second.state != State::Held) return false;
    it->second.state = State::Ready;
    it->second.next_attempt = clock_.now();
    return true;
}

void SpoolQueue::flush() {
    auto now = clock_.now();
    for (auto& [id, e] : entries_)
        if (e.state == State::Ready) e.next_attempt = now;
}

std::size_t SpoolQueue::held() const {
    return static_cast<std::size_t>(std::count_if(entries_.begin(), entries_.end(), [](const auto& p) {
        return p.second.state == State::Held;
    }));
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

std::optional<base::Clock::TimePoint> SpoolQueue::next_due() const {
    std::optional<base::Clock::TimePoint> next;
    for (const auto& [id, e] : entries_)
        if (e.state == State::Ready && (!next || e.next_attempt < *next)) next = e.next_attempt;
    return next;
}

}  // namespace smtplb::core
