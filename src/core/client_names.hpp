#pragma once
#include <chrono>
#include <cstdint>
#include <list>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "base/clock.hpp"
#include "base/network.hpp"

namespace smtplb::core {

// The client's host name as Postfix's smtpd finds it (smtpd_peer.c, and
// XCLIENT_README's NAME and REVERSE_NAME): the pure half of the lookup.
// The DNS I/O is io's (io/client_names.hpp); what an answer means, what
// comes of the two lookups and how long it is kept are decided here.

inline constexpr std::string_view kNameUnavailable = "[UNAVAILABLE]";
inline constexpr std::string_view kNameTempUnavailable = "[TEMPUNAVAIL]";

struct ClientNames {
    // Verified: the reverse (PTR) name, when its forward lookup lists the
    // client's address. Else [UNAVAILABLE] or [TEMPUNAVAIL].
    std::string name;
    // The reverse name alone (not verified), or [UNAVAILABLE]/[TEMPUNAVAIL].
    std::string reverse_name;
    bool operator==(const ClientNames&) const = default;
};

// How one DNS question was answered.
enum class DnsStatus {
    Ok,        // records of the type asked for
    NoName,    // NXDOMAIN, or no record of that type (NODATA): permanent
    TempFail,  // timeout, SERVFAIL, REFUSED, a truncated or unusable answer
};

// An MX (priority = its preference, port 25) or SRV record's data.
struct ServiceRecord {
    std::uint16_t priority = 0;
    std::uint16_t weight = 0;
    std::uint16_t port = 25;
    std::string host;  // without the trailing dot; "" for the root (a null MX)
};

// One DNS answer as the lookup needs it; io fills it from the packet.
struct DnsAnswer {
    DnsStatus status = DnsStatus::TempFail;
    std::vector<std::string> names;             // PTR targets, without the trailing dot
    std::vector<ServiceRecord> services;        // MX or SRV (pool discovery)
    std::vector<base::IpAddress> addresses;     // A or AAAA
    std::optional<std::uint32_t> ttl;           // the smallest TTL of those records
    std::optional<std::uint32_t> negative_ttl;  // from the SOA of a negative answer (RFC 2308)
};

// The status an answer has: `rcode` is the DNS RCODE (0 NOERROR, 3
// NXDOMAIN, ...); `records` whether it holds records of the type asked for.
DnsStatus answer_status(int rcode, bool truncated, bool records);

// The reverse lookup's question: "4.3.2.1.in-addr.arpa" or the nibbles under
// "ip6.arpa". An IPv4-mapped IPv6 address is asked for as IPv4.
std::string reverse_query_name(const base::IpAddress& address);

// Postfix's test of a name a PTR record gives (valid_hostname() and the
// refusal of numeric names in sockaddr_to_hostname()): labels of letters,
// digits, '-' and '_', neither starting nor ending with '-', at most 63
// characters each and 255 in all, and not all-numeric (which could pass
// for an address). No trailing dot.
bool valid_client_hostname(std::string_view name);

// After the PTR lookup: either the result is known (no usable name, or a
// temporary failure), or `confirm` is the name whose addresses must list
// the client's.
struct ReverseStep {
    std::optional<ClientNames> result;
    std::string confirm;
};
ReverseStep after_reverse(const DnsAnswer& ptr);

// After the forward (A for IPv4, AAAA for IPv6) lookup of `reverse_name`.
ClientNames after_forward(const std::string& reverse_name, const DnsAnswer& forward,
                          const base::IpAddress& client);

// How long a result may be cached: the smallest TTL of the records used
// (a negative answer's SOA TTL, else 60 s), clamped to [kMinCacheTtl,
// kMaxCacheTtl]; nothing for a temporary failure, which is not cached.
inline constexpr std::chrono::seconds kMinCacheTtl{1};
inline constexpr std::chrono::seconds kMaxCacheTtl{3600};
inline constexpr std::chrono::seconds kDefaultNegativeTtl{60};
std::optional<std::chrono::seconds> cache_ttl(const ClientNames& result,
                                              const std::vector<const DnsAnswer*>& answers);

// Results by address, each until its TTL, at most `capacity` of them: the
// least recently used goes first. Not thread-safe: one per event loop.
class ClientNameCache {
  public:
    ClientNameCache(const base::Clock& clock, std::size_t capacity)
        : clock_(clock), capacity_(capacity) {}
    std::optional<ClientNames> find(const base::IpAddress& address);
    void store(const base::IpAddress& address, const ClientNames& names, std::chrono::seconds ttl);
    std::size_t size() const { return entries_.size(); }

  private:
    struct Entry {
        std::string key;
        ClientNames names;
        base::Clock::TimePoint expires;
    };
    static std::string key_of(const base::IpAddress& address);

    const base::Clock& clock_;
    std::size_t capacity_;
    std::list<Entry> entries_;  // most recently used first
    std::unordered_map<std::string, std::list<Entry>::iterator> index_;
};

}  // namespace smtplb::core
