#include "core/client_names.hpp"

#include <algorithm>
#include <cctype>

namespace smtplb::core {
namespace {

ClientNames both(std::string_view value) {
    return ClientNames{std::string(value), std::string(value)};
}

std::string_view failure(DnsStatus status) {
    return status == DnsStatus::TempFail ? kNameTempUnavailable : kNameUnavailable;
}

}  // namespace

DnsStatus answer_status(int rcode, bool truncated, bool records) {
    // A truncated answer is not retried over TCP: queries carry EDNS0 with
    // room for 1232 bytes, which a PTR or an address list fits unless
    // something is wrong, and the wait for a client's name stays short.
    if (truncated) return DnsStatus::TempFail;
    if (rcode == 3) return DnsStatus::NoName;    // NXDOMAIN
    if (rcode != 0) return DnsStatus::TempFail;  // SERVFAIL, REFUSED, NOTIMP, FORMERR...
    return records ? DnsStatus::Ok : DnsStatus::NoName;
}

std::string reverse_query_name(const base::IpAddress& address) {
    auto a = address.unmapped();
    std::string out;
    if (!a.v6) {
        for (int i = 3; i >= 0; --i)
            out += std::to_string(a.bytes[i]) + '.';
        return out + "in-addr.arpa";
    }
    static constexpr char hex[] = "0123456789abcdef";
    for (int i = 15; i >= 0; --i) {
        out += hex[a.bytes[i] & 0xf];
        out += '.';
        out += hex[a.bytes[i] >> 4];
        out += '.';
    }
    return out + "ip6.arpa";
}

bool valid_client_hostname(std::string_view name) {
    if (name.empty() || name.size() > 255) return false;
    bool numeric_only = true;
    std::size_t label = 0;
    char previous = '.';
    for (char c : name) {
        if (c == '.') {
            if (label == 0 || previous == '-') return false;
            label = 0;
        } else if (std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_') {
            if (c == '-' && label == 0) return false;
            if (++label > 63) return false;
            if (!std::isdigit(static_cast<unsigned char>(c))) numeric_only = false;
        } else {
            return false;
        }
        previous = c;
    }
    if (label == 0 || previous == '-') return false;  // ends in '.' or '-'
    return !numeric_only;
}

ReverseStep after_reverse(const DnsAnswer& ptr) {
    ReverseStep step;
    if (ptr.status != DnsStatus::Ok || ptr.names.empty()) {
        step.result = both(ptr.status == DnsStatus::Ok ? kNameUnavailable : failure(ptr.status));
        return step;
    }
    // Several PTR records: like getnameinfo(), the first one answered.
    const auto& name = ptr.names.front();
    if (!valid_client_hostname(name)) {
        step.result = both(kNameUnavailable);
        return step;
    }
    step.confirm = name;
    return step;
}

ClientNames after_forward(const std::string& reverse_name, const DnsAnswer& forward,
                          const base::IpAddress& client) {
    ClientNames out{reverse_name, reverse_name};
    if (forward.status != DnsStatus::Ok) {
        out.name = failure(forward.status);
        return out;
    }
    auto wanted = client.unmapped();
    bool listed = std::any_of(forward.addresses.begin(), forward.addresses.end(),
                              [&](const base::IpAddress& a) { return a.unmapped() == wanted; });
    if (!listed) out.name = kNameUnavailable;  // Postfix's "forged" name
    return out;
}

std::optional<std::chrono::seconds> cache_ttl(const ClientNames& result,
                                              const std::vector<const DnsAnswer*>& answers) {
    if (result.name == kNameTempUnavailable || result.reverse_name == kNameTempUnavailable)
        return std::nullopt;
    std::optional<std::uint32_t> ttl;
    auto consider = [&](std::uint32_t t) { ttl = ttl ? std::min(*ttl, t) : t; };
    for (const auto* a : answers) {
        if (!a) continue;
        if (a->status == DnsStatus::Ok && a->ttl) consider(*a->ttl);
        if (a->status == DnsStatus::NoName)
            consider(
                a->negative_ttl.value_or(static_cast<std::uint32_t>(kDefaultNegativeTtl.count())));
    }
    auto seconds = std::chrono::seconds(ttl.value_or(kDefaultNegativeTtl.count()));
    return std::clamp<std::chrono::seconds>(seconds, kMinCacheTtl, kMaxCacheTtl);
}

std::string ClientNameCache::key_of(const base::IpAddress& address) {
    auto a = address.unmapped();
    return std::string(reinterpret_cast<const char*>(a.bytes.data()), a.v6 ? 16 : 4);
}

std::optional<ClientNames> ClientNameCache::find(const base::IpAddress& address) {
    auto it = index_.find(key_of(address));
    if (it == index_.end()) return std::nullopt;
    if (it->second->expires <= clock_.now()) {
        entries_.erase(it->second);
        index_.erase(it);
        return std::nullopt;
    }
    entries_.splice(entries_.begin(), entries_, it->second);
    return it->second->names;
}

void ClientNameCache::store(const base::IpAddress& address, const ClientNames& names,
                            std::chrono::seconds ttl) {
    if (capacity_ == 0) return;
    auto key = key_of(address);
    auto expires = clock_.now() + ttl;
    if (auto it = index_.find(key); it != index_.end()) {
        it->second->names = names;
        it->second->expires = expires;
        entries_.splice(entries_.begin(), entries_, it->second);
        return;
    }
    while (entries_.size() >= capacity_) {
        index_.erase(entries_.back().key);
        entries_.pop_back();
    }
    entries_.push_front(Entry{key, names, expires});
    index_[key] = entries_.begin();
}

}  // namespace smtplb::core
