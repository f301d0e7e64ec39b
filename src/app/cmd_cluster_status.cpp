#include <boost/json.hpp>

#include <cstdio>
#include <iostream>
#include <map>
#include <set>

#include "admin_call.hpp"
#include "commands.hpp"

// smtplb status --cluster (docs/cluster.md, "Nodes").
namespace smtplb::app {
namespace json = boost::json;

namespace {

std::string age_text(std::int64_t ms) {
    char text[32];
    std::snprintf(text, sizeof text, "%.1f s", double(ms) / 1000.0);
    return text;
}

// A backend as one node sees it: "up", "down", "up/drain".
std::string opinion_text(const json::object& b) {
    std::string text = text_of(b.if_contains("health"));
    std::string admin = text_of(b.if_contains("admin"));
    if (admin != "enabled") text += "/" + admin;
    return text;
}

void print_cluster(const json::object& root) {
    const auto& nodes = root.at("nodes").as_array();
    std::printf("%-16s %-6s %-10s %-18s %-9s %9s %8s %8s\n", "NODE", "STATE", "VERSION", "DIGEST",
                "CONFIG", "HEARTBEAT", "SESSIONS", "MSG/S");
    std::size_t differing = 0;
    for (const auto& nv : nodes) {
        const auto& n = nv.as_object();
        bool self = n.at("self").as_bool();
        bool alive = n.at("alive").as_bool();
        bool differs = n.at("digest_differs_from_majority").as_bool() ||
                       n.at("digest_differs_from_this_node").as_bool();
        if (differs && alive) ++differing;
        std::string name = text_of(n.if_contains("name")) + (self ? " *" : "");
        std::printf("%-16s %-6s %-10s %-18s %-9s %9s %8s %8.1f\n", name.c_str(),
                    alive ? "alive" : "gone", text_of(n.if_contains("version")).c_str(),
                    text_of(n.if_contains("digest")).c_str(), differs ? "DIFFERS" : "same",
                    (age_text(n.at("heartbeat_age_ms").to_number<std::int64_t>()) + " ago").c_str(),
                    text_of(n.if_contains("sessions")).c_str(),
                    n.at("messages_per_second").to_number<double>());
    }
    std::printf(
        "(* this node; %s alive of %zu; a gone node's key expired or its heartbeat is "
        "older than %s)\n",
        text_of(root.if_contains("live_nodes")).c_str(), nodes.size(),
        age_text(root.at("expiry_ms").to_number<std::int64_t>()).c_str());
    if (differing)
        std::printf(
            "%zu node(s) run a configuration whose digest differs from the majority's "
            "(%s) or this node's (%s)\n",
            differing, text_of(root.if_contains("majority_digest")).c_str(),
            text_of(root.if_contains("digest")).c_str());
    // Each node's view of each backend: one row per backend, one column per node.
    std::map<std::string, std::map<std::string, std::string>> opinions;  // backend -> node -> text
    std::vector<std::string> reasons;
    std::vector<std::string> names;
    for (const auto& nv : nodes) {
        const auto& n = nv.as_object();
        std::string node = text_of(n.if_contains("name"));
        names.push_back(node);
        for (const auto& bv : n.at("backends").as_array()) {
            const auto& b = bv.as_object();
            std::string key =
                text_of(b.if_contains("pool")) + "/" + text_of(b.if_contains("backend"));
            opinions[key][node] = opinion_text(b);
            if (text_of(b.if_contains("health")) != "up")
                if (const auto* r = b.if_contains("reason")) {
                    std::string reason = node;
                    reason += ": " + key;
                    reason += " " + text_of(b.if_contains("health"));
                    reason += ": " + text_of(r);
                    reasons.push_back(std::move(reason));
                }
        }
    }
    if (opinions.empty()) return;
    std::printf("\n%-28s", "POOL/BACKEND");
    for (const auto& name : names)
        std::printf(" %-16s", name.c_str());
    std::printf("\n");
    for (const auto& [backend, by_node] : opinions) {
        std::printf("%-28s", backend.c_str());
        for (const auto& name : names) {
            auto it = by_node.find(name);
            std::printf(" %-16s", it == by_node.end() ? "-" : it->second.c_str());
        }
        std::printf("\n");
    }
    if (!reasons.empty()) std::printf("\n");
    for (const auto& r : reasons)
        std::printf("%s\n", r.c_str());
}

}  // namespace

int run_cluster_status(const AdminOptions& options) {
    int status = 0;
    auto result = call(options, "status", "GET", "/api/v1/cluster", status);
    if (!result) return status;
    if (result->status == 404) {  // no [cluster]: not an error, a fact
        std::cout << "this daemon has no [cluster]: it runs on its own, there are no other nodes "
                     "to show\n";
        return 0;
    }
    return show_answer(*result, options, "status",
                       [](const json::value& v) { print_cluster(v.as_object()); });
}

}  // namespace smtplb::app
