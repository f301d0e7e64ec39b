#pragma once
#include <cstddef>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "core/limits/limit_store.hpp"

namespace smtplb::core {

// The limits' state in this process's memory, bounded per limit by
// max_keys. Rate keys are kept in least-recently-used order: a key is
// forgotten once it has recovered its whole burst (its state then equals a
// key never seen), or, when max_keys keys are remembered, the least recently
// used one is evicted (and counted) to make room: a flood of distinct
// senders costs at most max_keys entries. Concurrency keys are remembered
// only while held (bounded by the connections and transactions in
// progress); when max_keys are held a new key is refused, never untracked.
class InProcessLimitStore final : public LimitStore {
  public:
    // One partition per limit, each with its max_keys.
    explicit InProcessLimitStore(const std::vector<std::size_t>& max_keys);
    ~InProcessLimitStore() override;

    GcraDecision rate(std::size_t limit, std::string_view key, const Gcra& gcra, TimePoint now,
                      std::uint64_t cost, Gcra::Duration max_wait = Gcra::Duration(0)) override;
    GcraDecision peek_rate(std::size_t limit, std::string_view key, const Gcra& gcra, TimePoint now,
                           std::uint64_t cost,
                           Gcra::Duration max_wait = Gcra::Duration(0)) override;
    void refund_rate(std::size_t limit, std::string_view key, const Gcra& gcra, TimePoint now,
                     std::uint64_t cost) override;
    AcquireResult acquire(std::size_t limit, std::string_view key, std::uint32_t max) override;
    void release(std::size_t limit, std::string_view key) override;
    std::uint32_t in_use(std::size_t limit, std::string_view key) override;
    void expire(TimePoint now) override;
    LimitStoreStats stats(std::size_t limit) override;
    std::vector<LimitKeyState> nearest(std::size_t limit, const Gcra* gcra, TimePoint now,
                                       std::size_t n) override;
    bool adopt(std::size_t limit, LimitStore& from, std::size_t from_limit) override;

  private:
    struct Partition;
    Partition* partition(std::size_t limit);

    // Shared: a reload's new store adopts the partitions of unchanged limits.
    std::vector<std::shared_ptr<Partition>> partitions_;
};

}  // namespace smtplb::core
