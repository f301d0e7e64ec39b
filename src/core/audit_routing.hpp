#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "config/config.hpp"
#include "core/audit.hpp"

namespace smtplb::core {

// The routing facts of the balancer host that decide whether the replies
// to a transparent connection (sent by a backend to the client's address)
// reach the balancer's socket: what `ip -j rule`, `ip -j route show table
// all`, `ip -j route get BACKEND` and the netfilter rule sets say, both
// families. Gathered by the app (docs/transparent-routing.md).
struct PolicyRule {
    bool v6 = false;
    std::string iif;                      // "" = any interface
    std::optional<std::uint32_t> fwmark;  // the rule matches this mark only
    std::string table;
};
struct TableRoute {
    bool v6 = false;
    std::string table;  // "main" where ip printed none
    std::string type;   // "local", "unicast", ...
    std::string dst;    // "default", "0.0.0.0/0", a prefix
};
// The interface this host reaches one backend through.
struct BackendPath {
    std::string address;  // the backend's address, as `ip route get` was asked
    std::string dev;      // "" when the lookup failed
    std::string source;   // this host's address on that path (prefsrc)
    std::string error;
};
struct RoutingFacts {
    std::string error;  // set when nothing could be gathered (no `ip`)
    std::vector<PolicyRule> rules;
    std::vector<TableRoute> routes;
    std::vector<BackendPath> paths;
    // `nft list ruleset` and `iptables-save -t mangle` output, or nullopt
    // when neither could be asked (a fwmark rule then cannot be confirmed).
    std::optional<std::string> netfilter;
};

// A backend a transparent listener's connections reach.
struct TransparentTarget {
    std::string listener;
    std::string backend;  // pool/name
    std::string address;  // numeric address; "" when the backend is given by name
};
std::vector<TransparentTarget> transparent_targets(const config::Config& config);

// The routing table (by number) the suggested commands use when no local
// default route exists yet.
inline constexpr const char* kTransparentTable = "100";

// For each interface facing a transparent listener's backends: is there a
// policy rule (by incoming interface, or by a mark set for transparent
// sockets) leading to a table with a local default route? If not, exactly
// what to run.
std::vector<Finding> audit_transparent_routing(const config::Config& config,
                                               const RoutingFacts& facts);

// The mark a netfilter rule sets for packets of transparent sockets
// (`socket transparent 1 ... mark set M`, `-m socket --transparent ... MARK
// --set-mark M`), one per such rule found in the text.
std::vector<std::uint32_t> transparent_socket_marks(const std::string& netfilter);

}  // namespace smtplb::core
