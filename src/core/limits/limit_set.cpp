#include "core/limits/limit_set.hpp"

#include <algorithm>
#include <set>

#include "base/text.hpp"
#include "core/limits/in_process_limit_store.hpp"

namespace smtplb::core {
namespace {

using config::LimitCounts;
using config::LimitKeyPart;

// Key values are joined with '|' and '='; a sender's local part may hold
// either, so they are escaped: no two subjects share a key by accident.
void append_escaped(std::string& out, std::string_view value, bool lower = false) {
    for (char c : value) {
        if (lower) c = base::ascii_lower(c);
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

std::string network_of(const base::IpAddress& client, const config::Limit& limit) {
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
    return a.to_string() + "/" + std::to_string(prefix);
}

std::string domain_of(std::string_view address) {
    auto at = address.rfind('@');
    return at == std::string_view::npos ? std::string() : base::to_lower(address.substr(at + 1));
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

struct LimitSet::Counted {
    std::size_t index;
    std::string key;
    std::uint64_t cost;
};

LimitSet::LimitSet(std::vector<config::Limit> limits, std::shared_ptr<LimitStore> store)
    : limits_(std::move(limits)), store_(std::move(store)), carried_(limits_.size()) {
    for (std::size_t i = 0; i < limits_.size(); ++i)
        hits_.push_back(std::make_shared<Hits>());
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
            return event == LimitEvent::Connect ? Use::None : Use::Peek;
    }
    return Use::None;
}

std::vector<std::string> LimitSet::keys(std::size_t index, LimitEvent event,
                                        const LimitSubject& subject) const {
    const auto& limit = limits_.at(index);
    if (!limit.listeners.empty() && std::find(limit.listeners.begin(), limit.listeners.end(),
                                              subject.listener) == limit.listeners.end())
        return {};
    if (subject.client)
        for (const auto& net : limit.exempt_networks)
            if (net.contains(subject.client->unmapped())) return {};
    if (!subject.auth_user.empty() &&
        std::find(limit.exempt_auth_users.begin(), limit.exempt_auth_users.end(),
                  subject.auth_user) != limit.exempt_auth_users.end())
        return {};
    // One key, but for several recipient domains at end of data: built in
    // place, as this runs for each limit at each event.
    std::string domain;    // the recipients' domain, when keyed by it
    bool several = false;  // end of data, recipients in several domains
    if (limit.keyed_by(LimitKeyPart::RecipientDomain)) {
        if (event == LimitEvent::Rcpt && !subject.recipient.empty())
            domain = domain_of(subject.recipient);
        else if (event == LimitEvent::EndOfData && !subject.recipient_domains.empty())
            domain = base::to_lower(subject.recipient_domains.front());
        else
            return {};  // not known at this event: the limit waits
        for (const auto& d : subject.recipient_domains)
            several |= event == LimitEvent::EndOfData && !base::iequals(d, domain);
    }
    if (!several) {
        std::string key;
        for (auto part : limit.key) {
            if (!append_part(key, part, limit, subject, domain)) return {};  // not known yet
        }
        std::vector<std::string> one;
        one.push_back(std::move(key));
        return one;
    }
    // Recipient domains: one at Rcpt, each distinct one at end of data.
    std::set<std::string> domains;
    if (event == LimitEvent::Rcpt && !subject.recipient.empty())
        domains.insert(domain_of(subject.recipient));
    if (event == LimitEvent::EndOfData)
        for (const auto& d : subject.recipient_domains)
            domains.insert(base::to_lower(d));
    std::vector<std::string> out{std::string()};
    for (auto part : limit.key) {
        std::vector<std::string> values;
        switch (part) {
            case LimitKeyPart::ClientIp:
                if (subject.client) values.push_back(subject.client->unmapped().to_string());
                break;
            case LimitKeyPart::ClientNetwork:
                if (subject.client) values.push_back(network_of(*subject.client, limit));
                break;
            case LimitKeyPart::Sender:
                if (subject.sender)
                    values.push_back(subject.sender->empty() ? "<>"
                                                             : base::to_lower(*subject.sender));
                break;
            case LimitKeyPart::SenderDomain:
                if (subject.sender) values.push_back(domain_of(*subject.sender));
                break;
            case LimitKeyPart::AuthUser:
                if (!subject.auth_user.empty()) values.push_back(subject.auth_user);
                break;
            case LimitKeyPart::RecipientDomain:
                values.assign(domains.begin(), domains.end());
                break;
            case LimitKeyPart::Listener:
                values.push_back(subject.listener);
                break;
        }
        if (values.empty()) return {};  // not known at this event: the limit waits
        std::vector<std::string> next;
        for (const auto& prefix : out)
            for (const auto& value : values) {
                std::string key = prefix;
                if (!key.empty()) key += '|';
                key += config::to_string(part);
                key += '=';
                append_escaped(key, value);
                next.push_back(std::move(key));
            }
        out = std::move(next);
    }
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
                value = part == LimitKeyPart::ClientIp ? address->unmapped().to_string()
                                                       : network_of(*address, limit);
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
            append_escaped(key, subject.client->unmapped().to_string());
            return true;
        case LimitKeyPart::ClientNetwork:
            if (!subject.client) return false;
            start();
            append_escaped(key, network_of(*subject.client, limit));
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
    std::vector<Counted> counted;
    std::vector<std::size_t> delayed;  // rare: no allocation per check otherwise
    auto refuse = [&](std::size_t i, const std::string& key, base::Clock::Duration retry) {
        for (auto it = counted.rbegin(); it != counted.rend(); ++it)
            store_->refund_rate(it->index, it->key, *rates_[it->index], now, it->cost);
        LimitVerdict out;
        out.kind = LimitVerdict::Kind::Tempfail;
        const auto& limit = limits_[i];
        // A tarpit holds even the refusal: the client is slowed down either way.
        if (limit.action == config::LimitAction::Delay) out.hold = limit.delay;
        // The wait named is counted from the refusal, after the hold.
        out.reply =
            refusal(i, event, retry > out.hold ? retry - out.hold : base::Clock::Duration(0));
        out.limit = limit.name;
        out.key = key;
        ++hits_[i]->tempfail;
        return out;  // verdict's leases are released as it goes
    };
    for (std::size_t i = 0; i < limits_.size(); ++i) {
        const auto& limit = limits_[i];
        const Use use = use_at(limit, event);
        if (use == Use::None) continue;
        for (const auto& key : keys(i, event, subject)) {
            if (use == Use::Acquire) {
                if (store_->acquire(i, key, limit.concurrency) != AcquireResult::Acquired)
                    return refuse(i, key, base::Clock::Duration(0));
                verdict.leases.emplace_back(store_, i, key);
                continue;
            }
            const Gcra& gcra = *rates_[i];
            const std::uint64_t c = cost(i, subject);
            // The tarpit: a request that would pass within `delay` passes
            // with its reply held that long, counted as of then.
            const auto max_wait = limit.action == config::LimitAction::Delay
                                      ? Gcra::Duration(limit.delay)
                                      : Gcra::Duration(0);
            auto d = use == Use::Consume ? store_->rate(i, key, gcra, now, c, max_wait)
                                         : store_->peek_rate(i, key, gcra, now, c, max_wait);
            if (!d.allowed) return refuse(i, key, d.retry_after);
            if (d.wait > Gcra::Duration(0)) {
                verdict.hold = std::max(verdict.hold, d.wait);
                if (verdict.limit.empty()) {
                    verdict.limit = limit.name;
                    verdict.key = key;
                }
                if (delayed.empty() || delayed.back() != i) delayed.push_back(i);
            }
            if (use == Use::Consume) counted.push_back({i, key, c});
        }
    }
    for (auto i : delayed)
        ++hits_[i]->delay;
    if (verdict.hold > base::Clock::Duration(0)) verdict.kind = LimitVerdict::Kind::Delay;
    return verdict;
}

void LimitSet::refund(LimitEvent event, const LimitSubject& subject, TimePoint now) {
    for (std::size_t i = 0; i < limits_.size(); ++i) {
        if (use_at(limits_[i], event) != Use::Consume) continue;
        for (const auto& key : keys(i, event, subject))
            store_->refund_rate(i, key, *rates_[i], now, cost(i, subject));
    }
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
