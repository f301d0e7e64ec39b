#pragma once
#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

#include "base/clock.hpp"
#include "core/limits/gcra.hpp"

namespace smtplb::core {

// The rate keys one limit remembers, in least-recently-used order. Each key
// is one allocation (the node with its key bytes after it) chained in a
// power-of-two bucket array: about 120 bytes for a 32-byte key, where a
// std::unordered_map<std::string, ...> with its list costs about 190 (the
// million-key test: bench/limit_keys.cpp).
class RateTable {
  public:
    using TimePoint = base::Clock::TimePoint;
    struct Node {
        GcraState state;
        TimePoint last_used;
        Node* chain = nullptr;  // the next node in the same bucket
        Node* older = nullptr;  // towards oldest()
        Node* newer = nullptr;
        std::uint32_t hash = 0;
        std::uint32_t key_size = 0;
        std::string_view key() const { return {reinterpret_cast<const char*>(this + 1), key_size}; }
    };

    RateTable() = default;
    ~RateTable();
    RateTable(const RateTable&) = delete;
    RateTable& operator=(const RateTable&) = delete;

    Node* find(std::string_view key) const;
    // A new key, the newest; the caller has checked it is not there.
    Node* insert(std::string_view key, const GcraState& state, TimePoint now);
    void erase(Node* node);
    // Marks a node used now: it becomes the newest.
    void touch(Node* node, TimePoint now);

    Node* oldest() const { return oldest_; }
    Node* newest() const { return newest_; }
    std::size_t size() const { return size_; }

  private:
    static std::uint32_t hash_of(std::string_view key);
    Node*& bucket(std::uint32_t hash) const {
        return const_cast<Node*&>(buckets_[hash & (buckets_.size() - 1)]);
    }
    void unlink(Node* node);
    void push_newest(Node* node, TimePoint now);
    void grow();

    std::vector<Node*> buckets_;
    std::size_t size_ = 0;
    Node* newest_ = nullptr;
    Node* oldest_ = nullptr;
};

}  // namespace smtplb::core
