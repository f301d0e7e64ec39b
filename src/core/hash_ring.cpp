#include "core/hash_ring.hpp"

#include <algorithm>
#include <string>

namespace smtplb::core {

std::uint64_t stable_hash(std::string_view bytes) {
    // FNV-1a, then a 64-bit finaliser so nearby inputs spread over the ring.
    std::uint64_t h = 1469598103934665603ull;
    for (unsigned char c : bytes) {
        h ^= c;
        h *= 1099511628211ull;
    }
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ull;
    h ^= h >> 33;
    return h;
}

HashRing::HashRing(const std::vector<Member>& members) : members_(members.size()) {
    for (std::size_t i = 0; i < members.size(); ++i) {
        int points = kPointsPerWeight * static_cast<int>(members[i].weight);
        for (int p = 0; p < points; ++p) {
            std::string label = std::string(members[i].name) + "#" + std::to_string(p);
            points_.emplace_back(stable_hash(label), i);
        }
    }
    std::sort(points_.begin(), points_.end());
}

std::size_t HashRing::owner(std::uint64_t key) const {
    auto it = std::lower_bound(points_.begin(), points_.end(), std::make_pair(key, std::size_t{0}));
    if (it == points_.end()) it = points_.begin();
    return it->second;
}

std::vector<std::size_t> HashRing::walk(std::uint64_t key) const {
    std::vector<std::size_t> order;
    if (points_.empty()) return order;
    std::vector<bool> seen(members_, false);
    auto start =
        std::lower_bound(points_.begin(), points_.end(), std::make_pair(key, std::size_t{0}));
    std::size_t offset = static_cast<std::size_t>(start - points_.begin());
    for (std::size_t n = 0; n < points_.size() && order.size() < members_; ++n) {
        std::size_t member = points_[(offset + n) % points_.size()].second;
        if (!seen[member]) {
            seen[member] = true;
            order.push_back(member);
        }
    }
    return order;
}

}  // namespace smtplb::core
