#pragma once
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "base/network.hpp"
#include "proto/reply.hpp"

namespace smtplb::config {

// What a [[limit]] is keyed by; several together make a combined key.
enum class LimitKeyPart {
    ClientIp,
    ClientNetwork,  // the client's address cut to ipv4_prefix / ipv6_prefix
    Sender,         // the MAIL FROM address, lower case ("" for <>)
    SenderDomain,
    AuthUser,  // only authenticated sessions are counted
    RecipientDomain,
    Listener,
};

// What a [[limit]] counts: a rate (connections, messages at end of data,
// accepted recipients, message bytes at end of data) or a concurrency.
enum class LimitCounts {
    Connections,
    Messages,
    Recipients,
    Bytes,
    ConcurrentConnections,
    ConcurrentTransactions,
};

enum class LimitAction {
    Tempfail,  // refuse with the reply (421 4.7.0 at connect, 451 4.7.1 later)
    Delay,     // hold the reply up to `delay` (a tarpit), then carry on or refuse
};

// The bounds the GCRA arithmetic takes without overflow (core::Gcra).
constexpr std::uint64_t kMaxRateQuantity = 1ull << 40;

struct Limit {
    std::string name;  // in replies, metrics and the tracking log
    std::vector<LimitKeyPart> key;
    std::uint32_t ipv4_prefix = 24;  // for client_network
    std::uint32_t ipv6_prefix = 64;
    LimitCounts counts = LimitCounts::Messages;
    // A rate: `quantity` per `period`, at most `burst` at one instant
    // (KumoMTA's max_burst; default: the whole quantity).
    std::uint64_t quantity = 0;
    std::chrono::milliseconds period{0};
    std::uint64_t burst = 0;
    // A concurrency: at most this many at once per key.
    std::uint32_t concurrency = 0;
    LimitAction action = LimitAction::Tempfail;
    std::chrono::milliseconds delay{0};  // action = "delay": the longest hold
    std::optional<proto::Reply> reply;   // unset: the default reply
    std::vector<std::string> listeners;  // where it applies; empty = every listener
    std::vector<base::Cidr> exempt_networks;
    std::vector<std::string> exempt_networks_text;
    std::vector<std::string> exempt_auth_users;
    std::uint32_t max_keys = 100000;  // keys remembered at most
    // With [cluster]: kept in Redis for all the nodes together (docs/cluster.md,
    // "Shared limits"); false keeps it this node's own. Without [cluster]: no effect.
    bool shared = true;
    int line = 0;

    bool is_rate() const {
        return counts != LimitCounts::ConcurrentConnections &&
               counts != LimitCounts::ConcurrentTransactions;
    }
    // Counted when a client connects (and refused with 421 in the greeting).
    bool at_connect() const {
        return counts == LimitCounts::Connections || counts == LimitCounts::ConcurrentConnections;
    }
    bool keyed_by(LimitKeyPart part) const;
};

// The [[limit]] tables as `smtplb check` prints the effective configuration.
std::string describe_limits(const std::vector<Limit>& limits);

const char* to_string(LimitKeyPart v);
const char* to_string(LimitCounts v);
const char* to_string(LimitAction v);

}  // namespace smtplb::config
