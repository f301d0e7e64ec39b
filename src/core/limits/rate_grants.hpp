#pragma once
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "base/clock.hpp"
#include "core/limits/limit_batch.hpp"

namespace smtplb::core {

// Units of shared rates this node took from the shared store ahead of use
// (docs/cluster.md, "Grants"): when a rate is counted in the store, the
// node may ask for `extra` units more, granted only if they pass at once
// (no hold); it then spends them here without a round trip until they are
// used up or `lifetime` old. The store never grants beyond the limit, so
// the cluster stays within it; what a node holds unspent (at most
// 1/kShareDivisor of the burst over all nodes) can only make another node
// refuse a little early, and what expires unspent stays counted.
//
// The extra asked for follows the key's own recent use (what it consumed
// here in the last lifetime), so a key used once takes nothing ahead, and a
// limit whose burst is small against the nodes (burst < kShareDivisor x
// nodes) is always asked exactly. Pure: time comes in as an argument.
// Thread-safe.
class RateGrants {
  public:
    using TimePoint = base::Clock::TimePoint;
    static constexpr std::uint64_t kShareDivisor = 20;
    static constexpr std::size_t kDefaultMaxKeys = 10000;

    explicit RateGrants(std::size_t max_keys = kDefaultMaxKeys) : max_keys_(max_keys) {}

    // A rate operation (Consume or Peek) met from what this node holds:
    // Consume spends op.cost units, Peek only looks. False: ask the store.
    bool take(const LimitOp& op, TimePoint now);
    // Gives back what take() spent for an event refused after all.
    void give_back(const LimitOp& op, TimePoint now);
    // The units to ask for beyond op.cost when the store counts `op` (0
    // for a peek, an acquisition, or a limit too small to share ahead).
    std::uint64_t extra(const LimitOp& op, std::size_t nodes, TimePoint now);
    // The store counted op.cost + `extra` at `now`: the extra is held here.
    void granted(const LimitOp& op, std::uint64_t extra, TimePoint now);

    // An event's batch split: what the units held here met (taken now),
    // and the rest for the store, each asking ahead as extra() says (a
    // place: a share of the limit, bounded by the store by this node's use).
    struct Split {
        LimitBatch remote;
        std::vector<std::size_t> remote_index;  // each remote op's index in the event's batch
        std::vector<std::size_t> met;           // indexes met here
    };
    Split split(LimitBatch& batch, std::size_t nodes, TimePoint now);
    // The event's result from the store's answer to split.remote (nothing:
    // no answer), the grants it made kept; what was met here is given back
    // unless the whole event passed.
    std::optional<LimitBatchResult> merge(const LimitBatch& batch, const Split& split,
                                          std::optional<LimitBatchResult> remote, TimePoint now);

    // How long a grant stays usable: a twentieth of the rate's period, at
    // most a second, so that units are spent close to when they were counted.
    static base::Clock::Duration lifetime(const Gcra& gcra);
    std::size_t keys() const;

  private:
    struct Held {
        std::uint64_t units = 0;
        TimePoint expires{};
        // Use of the key here, by lifetime-long windows.
        TimePoint window_start{};
        std::uint64_t used = 0;
        std::uint64_t used_before = 0;  // in the previous window
        base::Clock::Duration lifetime{};
    };
    Held* find(const LimitOp& op, TimePoint now, bool create);
    static void count_use(Held& held, const LimitOp& op, TimePoint now);

    mutable std::mutex mutex_;
    std::unordered_map<std::string, Held> held_;  // limit index + '\n' + key
    std::size_t max_keys_;
};

}  // namespace smtplb::core
