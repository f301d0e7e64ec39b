#include "core/limits/limit_batch.hpp"

namespace smtplb::core {

LimitBatchResult execute_batch(LimitStore& store, const LimitBatch& batch,
                               base::Clock::TimePoint now) {
    LimitBatchResult result;
    result.ops.resize(batch.ops.size());
    std::size_t i = 0;
    for (; i < batch.ops.size(); ++i) {
        const auto& op = batch.ops[i];
        if (op.kind == LimitOp::Kind::Acquire) {
            if (store.acquire(op.limit, op.key, op.max) != AcquireResult::Acquired) break;
            result.ops[i].lease = op.key;
            continue;
        }
        auto d = op.kind == LimitOp::Kind::Consume
                     ? store.rate(op.limit, op.key, *op.gcra, now, op.cost, op.max_wait)
                     : store.peek_rate(op.limit, op.key, *op.gcra, now, op.cost, op.max_wait);
        if (!d.allowed) {
            result.retry_after = d.retry_after;
            break;
        }
        result.ops[i].wait = d.wait;
    }
    result.refused = i;
    if (i == batch.ops.size()) return result;
    for (std::size_t j = 0; j < i; ++j) {  // all or nothing
        const auto& op = batch.ops[j];
        if (op.kind == LimitOp::Kind::Acquire)
            store.release(op.limit, op.key);
        else if (op.kind == LimitOp::Kind::Consume)
            store.refund_rate(op.limit, op.key, *op.gcra, now, op.cost);
    }
    result.ops.clear();
    return result;
}

}  // namespace smtplb::core
