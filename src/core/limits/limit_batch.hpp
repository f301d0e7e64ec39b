#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "base/clock.hpp"
#include "core/limits/gcra.hpp"
#include "core/limits/limit_store.hpp"

namespace smtplb::core {

// What one event asks of a shared store, all at once (docs/cluster.md,
// "Shared limits"): LimitSet::plan() lists an operation per applicable
// limit and key, a store runs the whole batch atomically (one Lua script in
// Redis) and LimitSet::conclude() turns the results into a verdict. The
// store records nothing unless every operation passes: a refusal leaves no
// refund to make.
struct LimitOp {
    enum class Kind { Consume, Peek, Acquire };
    Kind kind = Kind::Consume;
    std::size_t limit = 0;  // index in the LimitSet
    std::string key;        // as LimitSet::keys() builds it
    // Rates: `cost` units of `gcra`, held at most `max_wait` (a tarpit).
    std::uint64_t cost = 1;
    const Gcra* gcra = nullptr;
    base::Clock::Duration max_wait{0};
    // Concurrencies: at most this many held per key.
    std::uint32_t max = 0;
    // Consume: units to count beyond `cost` if they pass at once, held by
    // this node for later (RateGrants); a store may ignore it.
    std::uint64_t extra = 0;
};

struct LimitBatch {
    std::vector<LimitOp> ops;
    bool empty() const { return ops.empty(); }
};

struct LimitOpResult {
    base::Clock::Duration wait{0};  // allowed after this hold (a tarpit)
    std::string lease;              // Acquire: what the store's release() takes back
    std::uint64_t granted = 0;      // Consume: of `extra`, what was counted too
};

struct LimitBatchResult {
    // The first operation that did not pass (nothing was recorded), or
    // ops.size() when all passed (all recorded).
    std::size_t refused = 0;
    base::Clock::Duration retry_after{0};  // refused rate: until it would pass
    std::vector<LimitOpResult> ops;        // when all passed: one per operation
};

// Runs `batch` on a store of this process, all or nothing: what the
// operations before a refusal recorded is given back (the reference
// semantics of a shared store, and its stand-in in tests).
LimitBatchResult execute_batch(LimitStore& store, const LimitBatch& batch,
                               base::Clock::TimePoint now);

}  // namespace smtplb::core
