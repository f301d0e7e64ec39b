#include "admin/cluster_api.hpp"

#include <boost/json.hpp>

#include "io/cluster/node_registry.hpp"

#ifndef SMTPLB_VERSION
#define SMTPLB_VERSION "unknown"
#endif

namespace smtplb::admin {
namespace json = boost::json;

const char* smtplb_version() {
    return SMTPLB_VERSION;
}

std::string cluster_json(const io::NodeRegistry& registry) {
    json::object root;
    root["node"] = registry.node_name();
    root["digest"] = registry.digest();
    root["majority_digest"] = registry.majority_digest();
    root["expiry_ms"] = registry.expiry().count();
    root["live_nodes"] = registry.live_nodes();
    root["read_ok"] = registry.last_read_ok();
    json::array nodes;
    for (const auto& v : registry.nodes()) {
        const auto& h = v.last;
        json::object n;
        n["name"] = h.node;
        n["self"] = v.self;
        n["alive"] = v.alive;
        n["version"] = h.version;
        n["digest"] = h.digest;
        n["digest_differs_from_majority"] = v.differs_from_majority;
        n["digest_differs_from_this_node"] = v.differs_from_self;
        n["heartbeat_age_ms"] =
            std::chrono::duration_cast<std::chrono::milliseconds>(v.age).count();
        n["started_ms"] = h.started_ms;
        n["sessions"] = h.sessions;
        n["messages_per_second"] = h.messages_per_second;
        n["backends"] = io::backend_opinions_json(h.backends);
        nodes.push_back(std::move(n));
    }
    root["nodes"] = std::move(nodes);
    return json::serialize(root) + "\n";
}

ApiResponse cluster_request(const io::Balancer& balancer, const std::string& method) {
    if (method != "GET") {
        json::object o;
        o["error"] = "use GET";
        return {405, "application/json", json::serialize(o) + "\n"};
    }
    const auto* registry = balancer.node_registry();
    if (!registry) {
        json::object o;
        o["error"] = "no [cluster] is configured: this node is on its own";
        return {404, "application/json", json::serialize(o) + "\n"};
    }
    return {200, "application/json", cluster_json(*registry)};
}

std::string registry_metrics_text(const io::NodeRegistry& registry) {
    const auto& s = *registry.stats();
    std::string out;
    auto family = [&out](const char* name, const char* type, const char* help) {
        out += std::string("# HELP ") + name + " " + help + "\n# TYPE " + name + " " + type + "\n";
    };
    auto sample = [&out](const std::string& name, double value) {
        char text[64];
        std::snprintf(text, sizeof text, " %.17g\n", value);
        out += name + text;
    };
    family("smtplb_cluster_nodes_live", "gauge",
           "Nodes whose heartbeat was fresh at the last read of Redis (this one included; at "
           "least 1).");
    sample("smtplb_cluster_nodes_live", double(s.live_nodes.load()));
    family("smtplb_cluster_nodes_known", "gauge",
           "Nodes in the registry as this node sees it, alive or gone (until forgotten).");
    sample("smtplb_cluster_nodes_known", double(s.known_nodes.load()));
    family("smtplb_cluster_heartbeats_total", "counter",
           "This node's heartbeats, by result: ok (written) or failed (Redis away, timeout, "
           "error).");
    sample("smtplb_cluster_heartbeats_total{result=\"ok\"}", double(s.heartbeats.load()));
    sample("smtplb_cluster_heartbeats_total{result=\"failed\"}",
           double(s.heartbeat_failures.load()));
    family("smtplb_cluster_node_reads_failed_total", "counter",
           "Reads of the other nodes' heartbeats that failed (the view is then older).");
    sample("smtplb_cluster_node_reads_failed_total", double(s.reads_failed.load()));
    family("smtplb_cluster_sticks_total", "counter",
           "Shared source_ip persistence: shared (made here, written to Redis), applied (made "
           "by another node), failed (made here, not written).");
    sample("smtplb_cluster_sticks_total{result=\"shared\"}", double(s.sticks_shared.load()));
    sample("smtplb_cluster_sticks_total{result=\"applied\"}", double(s.sticks_applied.load()));
    sample("smtplb_cluster_sticks_total{result=\"failed\"}", double(s.sticks_failed.load()));
    return out;
}

}  // namespace smtplb::admin
