#include "core/limits/limit_set.hpp"

#include <algorithm>

#include "base/text.hpp"
#include "core/limits/in_process_limit_store.hpp"

namespace smtplb::core {
namespace {

using config::LimitCounts;
using config::LimitKeyPart;

// Key values are joined with '|' and '='; a sender's local part may hold
// either, so they are escaped: no two subjects share a key by accident.
void append_escaped(std::string& out, std::string_view value, bool lower = false) {
    const std::size_t start = out.size();
    out += value;  // almost always as it is: copied at once
    if (lower)
        for (std::size_t i = start; i < out.size(); ++i)
            out[i] = base::ascii_lower(out[i]);
    bool special = false;  // a plain loop: find_first_of calls memchr per character
    for (char c : value)
        special |= c == '%' || c == '|' || c == '=';
    if (!special) return;
    const std::string plain = out.substr(start);
    out.resize(start);
    for (char c : plain) {
        if (c == '%' || c == '|' || c == '=') {
            static const char kHex[] = "0123456789ABCDEF";
            out += '%';
            out += kHex[static_cast<unsigned char>(c) >> 4];
            out += kHex[static_cast<unsigned char>(c) & 15];
        } else {
            out += c;
        }
    }
}

// The client's network under `limit`'s prefix, as "address/prefix".
void append_network(std::string& out, const base::IpAddress& client, const config::Limit& limit) {
    base::IpAddress a = client.unmapped();
    const std::uint32_t prefix = a.v6 ? limit.ipv6_prefix : limit.ipv4_prefix;
    const std::size_t bytes = a.v6 ? 16 : 4;
    for (std::size_t i = 0; i < bytes; ++i) {
        const std::uint32_t first_bit = static_cast<std::uint32_t>(i) * 8;
        if (first_bit >= prefix)
            a.bytes[i] = 0;
        else if (prefix - first_bit < 8)
            a.bytes[i] &= static_cast<std::uint8_t>(0xFF << (8 - (prefix - first_bit)));
    }
    a.append_to(out);
    out += '/';
    out += std::to_string(prefix);
}

const char* what_is_over(LimitCounts counts) {
    switch (counts) {
        case LimitCounts::Connections:
            return "Too many connections";
        case LimitCounts::Messages:
            return "Too many messages";
        case LimitCounts::Recipients:
            return "Too many recipients";
        case LimitCounts::Bytes:
            return "Too much mail";
        case LimitCounts::ConcurrentConnections:
            return "Too many concurrent connections";
        case LimitCounts::ConcurrentTransactions:
            return "Too many concurrent transactions";
    }
    return "Over a limit";
}

}  // namespace

LimitSet::LimitSet(std::vector<config::Limit> limits, std::shared_ptr<LimitStore> store,
                   bool clustered)
    : limits_(std::move(limits)), store_(std::move(store)), carried_(limits_.size()) {
    for (std::size_t i = 0; i < limits_.size(); ++i) {
        hits_.push_back(std::make_shared<Hits>());
        shared_.push_back(clustered && limits_[i].shared);
        shared_count_ += shared_.back() ? 1 : 0;
    }
    top_->scans.resize(limits_.size());
    for (const auto& l : limits_) {
        if (l.is_rate())
            rates_.emplace_back(
                Gcra(l.quantity, l.period, l.burst,
                     l.action == config::LimitAction::Delay ? l.delay : base::Clock::Duration(0)));
        else
            rates_.emplace_back(std::nullopt);
    }
}

std::shared_ptr<LimitStore> LimitSet::in_process_store(const std::vector<config::Limit>& limits) {
    std::vector<std::size_t> max_keys;
    max_keys.reserve(limits.size());
    for (const auto& l : limits)
        max_keys.push_back(l.max_keys);
    return std::make_shared<InProcessLimitStore>(max_keys);
}

LimitSet::Use LimitSet::use_at(const config::Limit& limit, LimitEvent event) {
    switch (limit.counts) {
        case LimitCounts::Connections:
            return event == LimitEvent::Connect ? Use::Consume : Use::None;
        case LimitCounts::ConcurrentConnections:
            return event == LimitEvent::Connect ? Use::Acquire : Use::None;
        case LimitCounts::ConcurrentTransactions:
            return event == LimitEvent::Mail ? Use::Acquire : Use::None;
        case LimitCounts::Recipients:
            if (event == LimitEvent::Rcpt) return Use::Consume;
            return event == LimitEvent::Mail ? Use::Peek : Use::None;
        case LimitCounts::Messages:
        case LimitCounts::Bytes:
            if (event == LimitEvent::EndOfData) return Use::Consume;
            // Looked at once before the body: at MAIL, or at each RCPT when
            // keyed by the recipient's domain (not known at MAIL).
            if (limit.keyed_by(LimitKeyPart::RecipientDomain))
                return event == LimitEvent::Rcpt ? Use::Peek : Use::None;
            return event == LimitEvent::Mail ? Use::Peek : Use::None;
    }
    return Use::None;
}

bool LimitSet::applies(const config::Limit& limit, const LimitSubject& subject) {
    if (!limit.listeners.empty() && std::find(limit.listeners.begin(), limit.listeners.end(),
                                              subject.listener) == limit.listeners.end())
        return false;
    if (subject.client)
        for (const auto& net : limit.exempt_networks)
            if (net.contains(subject.client->unmapped())) return false;
    return subject.auth_user.empty() ||
           std::find(limit.exempt_auth_users.begin(), limit.exempt_auth_users.end(),
                     subject.auth_user) == limit.exempt_auth_users.end();
}

template <typename OnKey>
void LimitSet::for_each_key(std::size_t index, LimitEvent event, const LimitSubject& subject,
                            std::string& key, OnKey&& on_key) const {
    const auto& limit = limits_[index];
    if (!applies(limit, subject)) return;
    // Built in `key`, the caller's, whose capacity is reused: this runs for
    // each limit at each event. One key, but one per distinct recipient
    // domain at end of data for a limit keyed by recipient_domain.
    auto build = [&](std::string_view domain) {
        key.clear();
        for (auto part : limit.key)
            if (!append_part(key, part, limit, subject, domain)) return false;  // not known yet
        return true;
    };
    if (!limit.keyed_by(LimitKeyPart::RecipientDomain)) {
        if (build({})) on_key(std::string_view(key));
        return;
    }
    if (event == LimitEvent::Rcpt && !subject.recipient.empty()) {
        auto at = subject.recipient.rfind('@');
        std::string domain = at == std::string::npos
                                 ? std::string()
                                 : base::to_lower(subject.recipient.substr(at + 1));
        if (build(domain)) on_key(std::string_view(key));
        return;
    }
    if (event != LimitEvent::EndOfData) return;  // not known at this event: the limit waits
    const auto& domains = subject.recipient_domains;
    for (std::size_t d = 0; d < domains.size(); ++d) {
        bool seen = false;  // each domain once; few recipients, so a scan
        for (std::size_t e = 0; e < d && !seen; ++e)
            seen = base::iequals(domains[e], domains[d]);
        if (!seen && build(base::to_lower(domains[d]))) on_key(std::string_view(key));
    }
}

std::vector<std::string> LimitSet::keys(std::size_t index, LimitEvent event,
                                        const LimitSubject& subject) const {
    std::vector<std::string> out;
    if (index >= limits_.size()) return out;
    std::string key;
    for_each_key(index, event, subject, key, [&](std::string_view k) { out.emplace_back(k); });
    return out;
}

std::optional<std::string> LimitSet::key_of(std::size_t index, const KeyValues& values) const {
    if (index >= limits_.size()) return std::nullopt;
    const auto& limit = limits_[index];
    if (values.size() != limit.key.size()) return std::nullopt;
    std::string key;
    for (auto part : limit.key) {
        auto it = std::find_if(values.begin(), values.end(),
                               [part](const auto& v) { return v.first == part; });
        if (it == values.end()) return std::nullopt;
        std::string value = it->second;
        switch (part) {
            case LimitKeyPart::ClientIp:
            case LimitKeyPart::ClientNetwork: {
                // An address, or for a network also address/prefix: the
                // limit's own prefix decides.
                auto address = base::IpAddress::parse(value.substr(0, value.find('/')));
                if (!address) return std::nullopt;
                value.clear();
                if (part == LimitKeyPart::ClientIp)
                    address->unmapped().append_to(value);
                else
                    append_network(value, *address, limit);
                break;
            }
            case LimitKeyPart::Sender:  // the null sender is "<>", as keys() has it
                value = value.empty() ? "<>" : base::to_lower(value);
                break;
            case LimitKeyPart::SenderDomain:
            case LimitKeyPart::RecipientDomain:
                value = base::to_lower(value);
                break;
            case LimitKeyPart::AuthUser:
            case LimitKeyPart::Listener:
                break;
        }
        if (!key.empty()) key += '|';
        key += config::to_string(part);
        key += '=';
        append_escaped(key, value);
    }
    return key;
}

bool LimitSet::append_part(std::string& key, LimitKeyPart part, const config::Limit& limit,
                           const LimitSubject& subject, std::string_view recipient_domain) {
    auto start = [&] {
        if (!key.empty()) key += '|';
        key += config::to_string(part);
        key += '=';
    };
    switch (part) {
        case LimitKeyPart::ClientIp:
            if (!subject.client) return false;
            start();
            subject.client->unmapped().append_to(key);  // nothing to escape
            return true;
        case LimitKeyPart::ClientNetwork:
            if (!subject.client) return false;
            start();
            append_network(key, *subject.client, limit);
            return true;
        case LimitKeyPart::Sender:
            if (!subject.sender) return false;
            start();
            append_escaped(key, subject.sender->empty() ? "<>" : *subject.sender, true);
            return true;
        case LimitKeyPart::SenderDomain: {
            if (!subject.sender) return false;
            start();
            auto at = subject.sender->rfind('@');
            if (at != std::string::npos)
                append_escaped(key, std::string_view(*subject.sender).substr(at + 1), true);
            return true;
        }
        case LimitKeyPart::AuthUser:
            if (subject.auth_user.empty()) return false;
            start();
            append_escaped(key, subject.auth_user);
            return true;
        case LimitKeyPart::Listener:
            start();
            append_escaped(key, subject.listener);
            return true;
        case LimitKeyPart::RecipientDomain:
            start();
            append_escaped(key, recipient_domain);
            return true;
    }
    return false;
}

std::uint64_t LimitSet::cost(std::size_t index, const LimitSubject& subject) const {
    const auto& limit = limits_[index];
    if (limit.counts != LimitCounts::Bytes) return 1;
    // A message larger than the whole burst passes when the burst is full
    // (and empties it), rather than being refused for ever.
    return std::clamp<std::uint64_t>(subject.bytes, 1, rates_[index]->burst());
}

proto::Reply LimitSet::refusal(std::size_t index, LimitEvent event,
                               base::Clock::Duration retry_after) const {
    const auto& limit = limits_[index];
    if (limit.reply) return *limit.reply;
    std::string text = std::string(what_is_over(limit.counts)) + " (limit \"" + limit.name + "\")";
    if (retry_after > base::Clock::Duration(0) && retry_after != Gcra::kNever) {
        auto seconds = std::chrono::ceil<std::chrono::seconds>(retry_after).count();
        text +=
            ", try again in " + std::to_string(seconds) + (seconds == 1 ? " second" : " seconds");
    } else {
        text += ", try again later";
    }
    if (event == LimitEvent::Connect) return proto::Reply::make(421, "4.7.0", text);
    return proto::Reply::make(451, "4.7.1", text);
}

LimitVerdict LimitSet::check(LimitEvent event, const LimitSubject& subject, TimePoint now) {
    LimitVerdict verdict;
    // Reused for every key: no allocation per check once it is large enough.
    thread_local std::string key;
    std::size_t refused = limits_.size();  // the limit that refused, if one did
    std::size_t refused_ordinal = 0;       // and which of its keys
    base::Clock::Duration retry{0};
    std::string refused_key;
    std::vector<std::size_t> delayed;  // rare: no allocation per check otherwise
    for (std::size_t i = 0; i < limits_.size() && refused == limits_.size(); ++i) {
        const auto& limit = limits_[i];
        const Use use = use_at(limit, event);
        if (use == Use::None || (shared_count_ > 0 && shared_[i])) continue;
        std::size_t ordinal = 0;
        for_each_key(i, event, subject, key, [&](std::string_view k) {
            if (refused != limits_.size()) return;
            const std::size_t this_key = ordinal++;
            if (use == Use::Acquire) {
                if (store_->acquire(i, k, limit.concurrency) != AcquireResult::Acquired) {
                    refused = i;
                    refused_key = k;
                    return;
                }
                verdict.leases.emplace_back(store_, i, std::string(k));
                return;
            }
            const Gcra& gcra = *rates_[i];
            const std::uint64_t c = cost(i, subject);
            // The tarpit: a request that would pass within `delay` passes
            // with its reply held that long, counted as of then.
            const auto max_wait = limit.action == config::LimitAction::Delay
                                      ? Gcra::Duration(limit.delay)
                                      : Gcra::Duration(0);
            auto d = use == Use::Consume ? store_->rate(i, k, gcra, now, c, max_wait)
                                         : store_->peek_rate(i, k, gcra, now, c, max_wait);
            if (!d.allowed) {
                refused = i;
                refused_ordinal = this_key;
                refused_key = k;
                retry = d.retry_after;
                return;
            }
            if (d.wait > Gcra::Duration(0)) {
                verdict.hold = std::max(verdict.hold, d.wait);
                if (verdict.limit.empty()) {
                    verdict.limit = limit.name;
                    verdict.key = k;
                }
                if (delayed.empty() || delayed.back() != i) delayed.push_back(i);
            }
        });
    }
    if (refused == limits_.size()) {
        for (auto i : delayed)
            ++hits_[i]->delay;
        if (verdict.hold > base::Clock::Duration(0)) verdict.kind = LimitVerdict::Kind::Delay;
        return verdict;
    }
    // Rare: what this event had counted before the refusal is given back
    // (keys are built again rather than kept on every check).
    for (std::size_t i = 0; i <= refused; ++i) {
        if (use_at(limits_[i], event) != Use::Consume || shared_[i]) continue;
        std::size_t ordinal = 0;
        for_each_key(i, event, subject, key, [&](std::string_view k) {
            if (i == refused && ordinal++ >= refused_ordinal) return;
            store_->refund_rate(i, k, *rates_[i], now, cost(i, subject));
        });
    }
    LimitVerdict out;  // the leases taken are released as `verdict` goes
    out.kind = LimitVerdict::Kind::Tempfail;
    const auto& limit = limits_[refused];
    // A tarpit holds even the refusal: the client is slowed down either way.
    if (limit.action == config::LimitAction::Delay) out.hold = limit.delay;
    // The wait named is counted from the refusal, after the hold.
    out.reply =
        refusal(refused, event, retry > out.hold ? retry - out.hold : base::Clock::Duration(0));
    out.limit = limit.name;
    out.key = std::move(refused_key);
    ++hits_[refused]->tempfail;
    return out;
}

void LimitSet::refund(LimitEvent event, const LimitSubject& subject, TimePoint now) {
    thread_local std::string key;
    for (std::size_t i = 0; i < limits_.size(); ++i) {
        if (use_at(limits_[i], event) != Use::Consume || shared_[i]) continue;
        for_each_key(i, event, subject, key, [&](std::string_view k) {
            store_->refund_rate(i, k, *rates_[i], now, cost(i, subject));
        });
    }
}

LimitBatch LimitSet::plan(LimitEvent event, const LimitSubject& subject) const {
    LimitBatch batch;
    if (shared_count_ == 0) return batch;
    std::string key;
    for (std::size_t i = 0; i < limits_.size(); ++i) {
        const auto& limit = limits_[i];
        const Use use = use_at(limit, event);
        if (use == Use::None || !shared_[i]) continue;
        for_each_key(i, event, subject, key, [&](std::string_view k) {
            LimitOp op;
            op.limit = i;
            op.key = std::string(k);
            if (use == Use::Acquire) {
                op.kind = LimitOp::Kind::Acquire;
                op.max = limit.concurrency;
            } else {
                op.kind = use == Use::Consume ? LimitOp::Kind::Consume : LimitOp::Kind::Peek;
                op.gcra = &*rates_[i];
                op.cost = cost(i, subject);
                if (limit.action == config::LimitAction::Delay) op.max_wait = limit.delay;
            }
            batch.ops.push_back(std::move(op));
        });
    }
    return batch;
}

LimitVerdict LimitSet::conclude(LimitEvent event, const LimitBatch& batch,
                                const LimitBatchResult& result,
                                const std::shared_ptr<LimitStore>& lease_store) {
    LimitVerdict verdict;
    if (result.refused < batch.ops.size()) {
        const auto& op = batch.ops[result.refused];
        const auto& limit = limits_[op.limit];
        verdict.kind = LimitVerdict::Kind::Tempfail;
        if (limit.action == config::LimitAction::Delay) verdict.hold = limit.delay;
        const auto retry = result.retry_after;
        verdict.reply =
            refusal(op.limit, event,
                    retry > verdict.hold ? retry - verdict.hold : base::Clock::Duration(0));
        verdict.limit = limit.name;
        verdict.key = op.key;
        ++hits_[op.limit]->tempfail;
        return verdict;
    }
    std::size_t last_delayed = limits_.size();
    for (std::size_t i = 0; i < batch.ops.size() && i < result.ops.size(); ++i) {
        const auto& op = batch.ops[i];
        if (op.kind == LimitOp::Kind::Acquire) {
            verdict.leases.emplace_back(lease_store, op.limit, result.ops[i].lease);
            continue;
        }
        if (result.ops[i].wait <= base::Clock::Duration(0)) continue;
        verdict.hold = std::max(verdict.hold, result.ops[i].wait);
        if (verdict.limit.empty()) {
            verdict.limit = limits_[op.limit].name;
            verdict.key = op.key;
        }
        if (last_delayed != op.limit) ++hits_[op.limit]->delay;
        last_delayed = op.limit;
    }
    if (verdict.hold > base::Clock::Duration(0)) verdict.kind = LimitVerdict::Kind::Delay;
    return verdict;
}

std::vector<config::Limit> LimitSet::local_share(std::size_t nodes) const {
    std::vector<config::Limit> out;
    const std::uint64_t n = std::max<std::size_t>(nodes, 1);
    auto share = [n](std::uint64_t v) {
        return v == 0 ? 0 : std::max<std::uint64_t>(1, (v + n - 1) / n);
    };
    for (std::size_t i = 0; i < limits_.size(); ++i) {
        if (!shared_[i]) continue;
        auto l = limits_[i];
        if (l.is_rate()) {
            l.quantity = share(l.quantity);
            l.burst = share(l.burst);
        } else {
            l.concurrency = static_cast<std::uint32_t>(share(l.concurrency));
        }
        out.push_back(std::move(l));
    }
    return out;
}

LimitKeyState LimitSet::inspect(std::size_t index, std::string_view key, TimePoint now) {
    LimitKeyState state;
    state.key = std::string(key);
    if (index >= limits_.size()) return state;
    if (!rates_[index]) {
        state.in_use = store_->in_use(index, key);
        return state;
    }
    auto d = store_->peek_rate(index, key, *rates_[index], now, 0);
    state.remaining = d.remaining;
    state.reset_after = d.reset_after;
    return state;
}

std::vector<LimitKeyState> LimitSet::nearest(std::size_t index, TimePoint now, std::size_t n) {
    if (index >= limits_.size()) return {};
    return store_->nearest(index, rates_[index] ? &*rates_[index] : nullptr, now, n);
}

LimitHits LimitSet::hits(std::size_t index) const {
    if (index >= limits_.size()) return {};
    return {hits_[index]->tempfail.load(), hits_[index]->delay.load()};
}

void LimitSet::carry_over(LimitSet& previous) {
    for (std::size_t i = 0; i < limits_.size(); ++i)
        for (std::size_t j = 0; j < previous.limits_.size(); ++j) {
            if (previous.limits_[j].name != limits_[i].name) continue;
            hits_[i] = previous.hits_[j];
            // Unchanged: its keys' state goes on too (shared with the old
            // store, whose sessions release their leases into it).
            if (config::describe_limits({previous.limits_[j]}) ==
                    config::describe_limits({limits_[i]}) &&
                store_->adopt(i, *previous.store_, j))
                break;
            // The old store is retired: what it counts from now on (its
            // remaining sessions') is not added.
            auto before = previous.stats(j);
            carried_[i].evictions = before.evictions;
            carried_[i].table_full = before.table_full;
            break;
        }
}

LimitStoreStats LimitSet::stats(std::size_t index) {
    if (index >= limits_.size()) return {};
    auto s = store_->stats(index);
    s.evictions += carried_[index].evictions;
    s.table_full += carried_[index].table_full;
    return s;
}

LimitSet::TopKeys LimitSet::top_keys(std::size_t index, TimePoint now) {
    if (index >= limits_.size()) return {now, {}};
    std::lock_guard lock(top_->mutex);  // one scan at a time; the others wait for it
    auto& scan = top_->scans[index];
    if (!scan || now < scan->scanned_at || now - scan->scanned_at >= kTopKeysMaxAge)
        scan = TopKeys{now, nearest(index, now, kTopKeys)};
    return *scan;
}

}  // namespace smtplb::core
