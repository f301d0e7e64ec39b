#include "core/limits/rate_grants.hpp"

#include <algorithm>

namespace smtplb::core {
namespace {

std::string map_key(const LimitOp& op) {
    return std::to_string(op.limit) + '\n' + op.key;
}

bool is_rate(const LimitOp& op) {
    return op.gcra != nullptr && op.kind != LimitOp::Kind::Acquire;
}

}  // namespace

base::Clock::Duration RateGrants::lifetime(const Gcra& gcra) {
    return std::min<base::Clock::Duration>(gcra.period() / 20, std::chrono::seconds(1));
}

std::size_t RateGrants::keys() const {
    std::lock_guard lock(mutex_);
    return held_.size();
}

void RateGrants::count_use(Held& held, const LimitOp& op, TimePoint now) {
    if (now - held.window_start >= lifetime(*op.gcra)) {
        // A window with no use in between forgets the older one too.
        held.used_before = now - held.window_start < 2 * lifetime(*op.gcra) ? held.used : 0;
        held.used = 0;
        held.window_start = now;
    }
    held.used += op.cost;
}

RateGrants::Held* RateGrants::find(const LimitOp& op, TimePoint now, bool create) {
    auto it = held_.find(map_key(op));
    if (it != held_.end()) return &it->second;
    if (!create) return nullptr;
    if (held_.size() >= max_keys_) {
        // Forget what holds nothing usable and was not used lately (its
        // recent use is what the next ask would follow); full still: no grant.
        std::erase_if(held_, [now](const auto& entry) {
            const Held& h = entry.second;
            return h.expires <= now && now - h.window_start >= 2 * h.lifetime;
        });
        if (held_.size() >= max_keys_) return nullptr;
    }
    Held fresh;
    fresh.window_start = now;
    fresh.lifetime = lifetime(*op.gcra);
    return &held_.emplace(map_key(op), fresh).first->second;
}

bool RateGrants::take(const LimitOp& op, TimePoint now) {
    if (!is_rate(op)) return false;
    std::lock_guard lock(mutex_);
    Held* held = find(op, now, false);
    if (!held) return false;
    if (held->expires <= now) held->units = 0;  // counted, unspent: stays counted
    if (held->units < op.cost) return false;
    if (op.kind == LimitOp::Kind::Consume) {
        held->units -= op.cost;
        count_use(*held, op, now);
    }
    return true;
}

void RateGrants::give_back(const LimitOp& op, TimePoint now) {
    if (!is_rate(op) || op.kind != LimitOp::Kind::Consume) return;
    std::lock_guard lock(mutex_);
    Held* held = find(op, now, false);
    if (!held || held->expires <= now) return;
    held->units += op.cost;
    held->used -= std::min(held->used, op.cost);
}

std::uint64_t RateGrants::extra(const LimitOp& op, std::size_t nodes, TimePoint now) {
    if (!is_rate(op) || op.kind != LimitOp::Kind::Consume) return 0;
    const std::uint64_t cap =
        op.gcra->burst() / (kShareDivisor * std::max<std::uint64_t>(1, nodes));
    if (cap == 0) return 0;
    std::lock_guard lock(mutex_);
    Held* held = find(op, now, true);
    if (!held) return 0;
    count_use(*held, op, now);
    // What the key used in the last lifetime, beyond this request.
    const std::uint64_t recent = std::max(held->used_before, held->used) - op.cost;
    return std::min(cap, recent);
}

void RateGrants::granted(const LimitOp& op, std::uint64_t extra, TimePoint now) {
    if (!is_rate(op) || extra == 0) return;
    std::lock_guard lock(mutex_);
    Held* held = find(op, now, true);
    if (!held) return;
    // What the previous grant still held is still counted in the store.
    if (held->expires <= now) held->units = 0;
    held->units += extra;
    held->expires = now + lifetime(*op.gcra);
}

RateGrants::Split RateGrants::split(LimitBatch& batch, std::size_t nodes, TimePoint now) {
    Split out;
    nodes = std::max<std::size_t>(1, nodes);
    for (std::size_t i = 0; i < batch.ops.size(); ++i) {
        auto& op = batch.ops[i];
        if (take(op, now)) {
            out.met.push_back(i);
            continue;
        }
        op.extra = op.kind == LimitOp::Kind::Acquire ? op.max / (kShareDivisor * nodes)
                                                     : extra(op, nodes, now);
        out.remote.ops.push_back(op);
        out.remote_index.push_back(i);
    }
    return out;
}

std::optional<LimitBatchResult> RateGrants::merge(const LimitBatch& batch, const Split& split,
                                                  std::optional<LimitBatchResult> remote,
                                                  TimePoint now) {
    const bool passed = remote && remote->refused >= split.remote.ops.size();
    if (!passed)
        for (auto i : split.met)
            give_back(batch.ops[i], now);
    if (!remote) return std::nullopt;
    LimitBatchResult all;
    if (!passed) {
        all.refused = split.remote_index[remote->refused];
        all.retry_after = remote->retry_after;
        return all;
    }
    all.refused = batch.ops.size();
    all.ops.resize(batch.ops.size());
    for (std::size_t j = 0; j < split.remote.ops.size() && j < remote->ops.size(); ++j) {
        granted(split.remote.ops[j], remote->ops[j].granted, now);
        all.ops[split.remote_index[j]] = std::move(remote->ops[j]);
    }
    return all;
}

}  // namespace smtplb::core
