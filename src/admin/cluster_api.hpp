#pragma once
#include <string>

#include "admin/api.hpp"
#include "io/balancer.hpp"

namespace smtplb::admin {

// GET /api/v1/cluster (docs/cluster.md, "Nodes"): every node of the
// registry with its version, configuration digest (and whether it differs
// from the majority's or this node's), heartbeat age, sessions, rate and
// its view of every backend. 404 without [cluster].
ApiResponse cluster_request(const io::Balancer& balancer, const std::string& method);
std::string cluster_json(const io::NodeRegistry& registry);
// The registry's /metrics families (smtplb_cluster_nodes..., heartbeats).
std::string registry_metrics_text(const io::NodeRegistry& registry);
// This build's version ("0.1.0"), which each node's heartbeat carries.
const char* smtplb_version();

}  // namespace smtplb::admin
