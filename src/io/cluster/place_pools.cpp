#include "io/cluster/place_pools.hpp"

#include <algorithm>

namespace smtplb::io {

std::optional<std::string> PlacePools::take(const std::string& key, Time now) {
    // Few pools at a time (one per key and second, at most): a scan is cheap.
    for (auto& [member, pool] : pools_) {
        if (pool.key != key || now >= pool.taking_until || pool.in_use >= pool.places) continue;
        ++pool.in_use;
        ++open_[key];
        return kLeaseMark + member;
    }
    return std::nullopt;
}

std::string PlacePools::add(const std::string& key, std::string grant_key, std::string member,
                            std::uint32_t places, Time now) {
    Pool pool;
    pool.key = key;
    pool.grant_key = std::move(grant_key);
    pool.places = places;
    pool.in_use = 1;
    pool.taking_until = now + kTaking;
    ++open_[key];
    auto lease = kLeaseMark + member;
    pools_.emplace(std::move(member), std::move(pool));
    return lease;
}

bool PlacePools::release(std::string_view lease) {
    if (lease.empty() || lease.front() != kLeaseMark) return false;
    auto it = pools_.find(std::string(lease.substr(1)));
    if (it == pools_.end()) return true;  // already given back
    if (it->second.in_use > 0) --it->second.in_use;
    closed(it->second.key);
    return true;
}

std::vector<std::pair<std::string, std::string>> PlacePools::done(Time now) {
    std::vector<std::pair<std::string, std::string>> out;
    for (auto it = pools_.begin(); it != pools_.end();) {
        if (it->second.in_use == 0 && now >= it->second.taking_until) {
            out.emplace_back(it->second.grant_key, it->first);
            it = pools_.erase(it);
        } else {
            ++it;
        }
    }
    return out;
}

void PlacePools::stop_taking(Time now) {
    for (auto& [member, pool] : pools_)
        pool.taking_until = std::min(pool.taking_until, now);
}

std::uint32_t PlacePools::open(const std::string& key) const {
    auto it = open_.find(key);
    return it == open_.end() ? 0 : it->second;
}

void PlacePools::closed(const std::string& key) {
    auto it = open_.find(key);
    if (it == open_.end()) return;
    if (--it->second == 0) open_.erase(it);
}

}  // namespace smtplb::io
