#pragma once
#include <cstdint>
#include <string_view>
#include <utility>
#include <vector>

namespace smtplb::core {

std::uint64_t stable_hash(std::string_view bytes);

// Consistent hashing (Karger et al.): each backend owns points on a ring in
// proportion to its weight, so adding one of N backends moves about 1/(N+1)
// of the keys and removing one moves only its own keys.
class HashRing {
  public:
    static constexpr int kPointsPerWeight = 160;
    struct Member {
        std::string_view name;
        std::uint32_t weight;
    };
    explicit HashRing(const std::vector<Member>& members);
    // Members in ring order starting at the key's position (each once).
    std::vector<std::size_t> walk(std::uint64_t key) const;
    // First member at or after the key's position.
    std::size_t owner(std::uint64_t key) const;

  private:
    std::vector<std::pair<std::uint64_t, std::size_t>> points_;
    std::size_t members_ = 0;
};

}  // namespace smtplb::core
