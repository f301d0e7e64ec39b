#pragma once
#include <atomic>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "base/clock.hpp"
#include "base/counter.hpp"

// The pure half of the node registry (docs/cluster.md, "Nodes"): what a
// node's heartbeat says, which nodes are alive, which configuration most of
// them run, and what is worth a log line. No Redis, no clock of its own:
// io/cluster/node_registry.hpp reads Redis and feeds a NodeTable.
namespace smtplb::core::cluster {

// A digest of the effective configuration (config::describe's text) that
// two nodes of one service should share: the keys that must differ from
// node to node are left out (kPerNodeKeys). 16 hex digits (FNV-1a, 64
// bits): it tells configurations apart, it protects nothing.
std::string config_digest(std::string_view effective);
// "section.key" as describe() writes them ("server.hostname",
// "listener.bind"): the keys config_digest leaves out.
const std::vector<std::string>& per_node_keys();

// One backend as a node sees it.
struct BackendOpinion {
    std::string pool;
    std::string backend;
    std::string health;  // up, down, ... (core::to_string(HealthState))
    std::string admin;   // enabled, drain, maintenance
    bool accepts_new = false;
    std::string reason;  // why it is in that state (the last change's reason)
};

// What a node writes into Redis every heartbeat.
struct Heartbeat {
    std::string node;
    std::string version;
    std::string digest;
    std::int64_t started_ms = 0;  // wall clock, ms since the epoch
    std::uint64_t sequence = 0;   // +1 per heartbeat: how readers tell a fresh one
    std::uint64_t sessions = 0;
    double messages_per_second = 0;
    std::vector<BackendOpinion> backends;
};

// A node as this node sees it now.
struct NodeView {
    Heartbeat last;  // its last heartbeat read
    bool alive = false;
    bool self = false;
    base::Clock::Duration age{};  // since its heartbeat last changed, as seen here
    bool differs_from_majority = false;
    bool differs_from_self = false;
};

// Something the log should say about the registry (event and its fields).
struct RegistryEvent {
    std::string event;  // cluster_node_joined, cluster_node_gone, cluster_node_config_differs
    std::vector<std::pair<std::string, std::string>> fields;
};

// The nodes this node has read from Redis. A node is alive while its key
// exists (Redis expires it) and its heartbeat changed within `expiry` by
// this node's clock (a node that hangs with its key refreshed by no one
// still ages out); gone nodes are listed as such until `forget_after`.
class NodeTable {
  public:
    NodeTable(std::string self, base::Clock::Duration expiry, base::Clock::Duration forget_after);

    // One read of Redis: every heartbeat found (a known node missing from
    // it has let its key expire). Returns what is worth logging.
    std::vector<RegistryEvent> observe(const std::vector<Heartbeat>& found,
                                       base::Clock::TimePoint now);
    // Sorted by name; gone nodes too, until forgotten.
    std::vector<NodeView> view(base::Clock::TimePoint now) const;
    // The digest most alive nodes run (ties: this node's, else the smallest).
    std::string majority_digest(base::Clock::TimePoint now) const;
    // Alive at the last successful read (at least 1, this node): shared
    // limits divide by it when Redis is away, so it keeps its last value.
    std::size_t live_at_last_read() const { return live_at_last_read_; }
    // Nodes gone longer than forget_after: dropped here, and to be dropped
    // from Redis's index by the caller.
    std::vector<std::string> forget(base::Clock::TimePoint now);
    bool empty() const { return nodes_.empty(); }

  private:
    struct Known {
        Heartbeat last;
        base::Clock::TimePoint changed_at{};
        bool key_present = false;
        bool logged_alive = false;
        std::string logged_digest;  // the digest last reported as differing
    };
    bool alive(const Known& k, base::Clock::TimePoint now) const;

    std::string self_;
    base::Clock::Duration expiry_;
    base::Clock::Duration forget_after_;
    std::map<std::string, Known> nodes_;
    std::size_t live_at_last_read_ = 1;
};

// What /metrics shows of the registry and the shared persistence.
struct RegistryStats {
    std::atomic<std::size_t> live_nodes{1};
    std::atomic<std::size_t> known_nodes{1};
    base::Counter heartbeats = 0;          // written and acknowledged
    base::Counter heartbeat_failures = 0;  // not written (Redis away, timeout, error)
    base::Counter reads_failed = 0;        // the nodes' heartbeats could not be read
    base::Counter sticks_shared = 0;       // source_ip sticks made here, written to Redis
    base::Counter sticks_applied = 0;      // made by another node, applied here
    base::Counter sticks_failed = 0;       // could not be written
};

}  // namespace smtplb::core::cluster
