#include "core/auth_throttle.hpp"

namespace smtplb::core {

AuthThrottle::AuthThrottle(const base::Clock& clock, std::uint32_t max_failures,
                           base::Clock::Duration window, std::size_t max_keys)
    : clock_(clock), max_failures_(max_failures), window_(window), max_keys_(max_keys) {}

void AuthThrottle::forget_expired(Entry& entry) {
    auto horizon = clock_.now() - window_;
    while (!entry.failures.empty() && entry.failures.front() <= horizon)
        entry.failures.pop_front();
}

bool AuthThrottle::over(const std::string& key) {
    auto it = entries_.find(key);
    if (it == entries_.end()) return false;
    forget_expired(it->second);
    return it->second.failures.size() >= max_failures_;
}

bool AuthThrottle::blocked(const std::string& address, const std::string& user) {
    bool blocked = over("a:" + address) || over("u:" + user);
    if (blocked) ++refusals_;
    return blocked;
}

void AuthThrottle::add(const std::string& key) {
    auto [it, added] = entries_.try_emplace(key);
    if (added) {
        order_.push_back(key);
        while (entries_.size() > max_keys_ && !order_.empty()) {
            entries_.erase(order_.front());
            order_.pop_front();
        }
        it = entries_.find(key);
        if (it == entries_.end()) return;
    }
    forget_expired(it->second);
    it->second.failures.push_back(clock_.now());
    // Only the last max_failures matter.
    while (it->second.failures.size() > max_failures_)
        it->second.failures.pop_front();
}

void AuthThrottle::failed(const std::string& address, const std::string& user) {
    add("a:" + address);
    add("u:" + user);
}

void AuthThrottle::succeeded(const std::string& address) {
    auto it = entries_.find("a:" + address);
    if (it != entries_.end()) it->second.failures.clear();
}

}  // namespace smtplb::core
