#include "core/shaping.hpp"

#include <algorithm>
#include <chrono>

#include "base/text.hpp"
#include "core/limits/in_process_limit_store.hpp"

namespace smtplb::core {

bool ShapingHold::holds(std::string_view domain) const {
    return std::any_of(entries_.begin(), entries_.end(),
                       [&](const Entry& e) { return e.domain == domain; });
}

void ShapingHold::settle(const std::vector<std::string>& delivered, base::Clock::TimePoint now) {
    if (auto shaping = shaping_) shaping->settle(*this, delivered, now);
}

void add_domain(std::vector<std::string>& domains, std::string_view domain) {
    if (domain.empty()) return;
    auto lower = base::to_lower(domain);
    if (std::find(domains.begin(), domains.end(), lower) == domains.end())
        domains.push_back(std::move(lower));
}

Shaping::Shaping(std::vector<config::DestinationLimit> rules) : rules_(std::move(rules)) {
    std::vector<std::size_t> max_keys;
    for (std::size_t i = 0; i < rules_.size(); ++i) {
        const auto& r = rules_[i];
        if (r.messages > 0)
            rates_.emplace_back(Gcra(r.messages, r.period, r.burst));
        else
            rates_.emplace_back(std::nullopt);
        if (r.is_wildcard()) wildcard_ = i;
        max_keys.push_back(r.max_keys);
    }
    store_ = std::make_shared<InProcessLimitStore>(max_keys);
}

std::optional<std::size_t> Shaping::rule_for(std::string_view domain) const {
    for (std::size_t i = 0; i < rules_.size(); ++i)
        if (rules_[i].domain == domain) return i;
    return wildcard_;
}

std::string Shaping::key(std::string_view backend, std::string_view domain) const {
    // A domain never holds '|': the last one splits the key unambiguously.
    std::string k(backend);
    k += '|';
    k += domain;
    return k;
}

std::optional<ShapingBlock> Shaping::blocked(std::string_view backend,
                                             const std::vector<std::string>& domains,
                                             TimePoint now) {
    for (const auto& domain : domains) {
        auto rule = rule_for(domain);
        if (!rule) continue;
        const auto& r = rules_[*rule];
        auto k = key(backend, domain);
        if (r.concurrent_transactions > 0 && store_->in_use(*rule, k) >= r.concurrent_transactions)
            return ShapingBlock{domain, *rule, true, {}};
        if (!rates_[*rule]) continue;
        auto d = store_->peek_rate(*rule, k, *rates_[*rule], now, 1);
        if (!d.allowed) return ShapingBlock{domain, *rule, false, d.retry_after};
    }
    return std::nullopt;
}

std::optional<ShapingBlock> Shaping::reserve(std::string_view backend, std::size_t backend_index,
                                             const std::vector<std::string>& domains, TimePoint now,
                                             ShapingHold& hold) {
    if (!hold.empty() && (hold.backend_ != backend_index || hold.shaping_.get() != this))
        hold.settle({}, now);
    const std::size_t before = hold.entries_.size();
    // All or nothing: what this call took is given back at the first refusal.
    auto undo = [&](ShapingBlock block) {
        for (std::size_t i = hold.entries_.size(); i-- > before;) {
            auto& e = hold.entries_[i];
            if (e.counted) store_->refund_rate(e.rule, e.key, *rates_[e.rule], now, 1);
        }
        hold.entries_.resize(before);  // the leases go with them
        return block;
    };
    for (const auto& domain : domains) {
        if (hold.holds(domain)) continue;
        auto rule = rule_for(domain);
        if (!rule) continue;
        const auto& r = rules_[*rule];
        ShapingHold::Entry e{domain, *rule, key(backend, domain), false, {}};
        if (r.concurrent_transactions > 0) {
            if (store_->acquire(*rule, e.key, r.concurrent_transactions) != AcquireResult::Acquired)
                return undo({domain, *rule, true, {}});
            e.lease = LimitLease(store_, *rule, e.key);
        }
        if (rates_[*rule]) {
            auto d = store_->rate(*rule, e.key, *rates_[*rule], now, 1);
            if (!d.allowed) return undo({domain, *rule, false, d.retry_after});
            e.counted = true;
        }
        hold.entries_.push_back(std::move(e));
    }
    if (!hold.entries_.empty()) {
        hold.shaping_ = shared_from_this();
        hold.backend_ = backend_index;
    }
    return std::nullopt;
}

void Shaping::settle(ShapingHold& hold, const std::vector<std::string>& delivered, TimePoint now) {
    for (auto& e : hold.entries_)
        if (e.counted && std::find(delivered.begin(), delivered.end(), e.domain) == delivered.end())
            store_->refund_rate(e.rule, e.key, *rates_[e.rule], now, 1);
    hold.entries_.clear();  // releases the concurrent transactions
    hold.shaping_.reset();
}

std::string Shaping::name(const ShapingBlock& block, const std::string& pool) const {
    return "destination limit \"" + rules_.at(block.rule).domain + "\" of pool \"" + pool + "\"";
}

proto::Reply Shaping::refusal(const ShapingBlock& block, const std::string& pool) const {
    std::string text =
        std::string(block.concurrency ? "Too many concurrent transactions" : "Too many messages") +
        " to " + block.domain + " now (" + name(block, pool) + ")";
    if (block.retry_after > base::Clock::Duration(0) && block.retry_after != Gcra::kNever) {
        auto seconds = std::chrono::ceil<std::chrono::seconds>(block.retry_after).count();
        text +=
            ", try again in " + std::to_string(seconds) + (seconds == 1 ? " second" : " seconds");
    } else {
        text += ", try again later";
    }
    return proto::Reply::make(451, "4.7.1", text);
}

proto::Reply Shaping::separate(const ShapingBlock& block, const std::string& pool) const {
    return proto::Reply::make(452, "4.5.3",
                              "Too many recipients: send those at " + block.domain +
                                  " in another transaction (" + name(block, pool) + ")");
}

}  // namespace smtplb::core
