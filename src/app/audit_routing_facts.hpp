#pragma once
#include <vector>

#include "core/audit_routing.hpp"

namespace smtplb::app {

// The balancer host's policy rules, routes, the path towards each target
// and its netfilter rules, from `ip -j`, `nft` and `iptables-save` (the
// decision is core::audit_transparent_routing).
core::RoutingFacts gather_routing_facts(const std::vector<core::TransparentTarget>& targets);

}  // namespace smtplb::app
