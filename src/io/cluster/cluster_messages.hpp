#pragma once
#include <boost/json/array.hpp>
#include <cstddef>
#include <optional>
#include <string>
#include <vector>

#include "base/network.hpp"
#include "core/cluster/node_registry.hpp"
#include "core/limits/limit_batch.hpp"
#include "io/cluster/redis_client.hpp"

// What the nodes of a cluster read from Redis and from each other
// (docs/cluster.md): untrusted text and replies, read here and nowhere
// else, so that one fuzz target (tests/fuzz/fuzz_cluster_messages.cpp)
// covers every reader. No I/O.
namespace smtplb::io {

// A heartbeat as Redis holds it (JSON), and back; nullopt for text that is
// not one (another program's, a newer node's it cannot read).
std::string encode_heartbeat(const core::cluster::Heartbeat& heartbeat);
std::optional<core::cluster::Heartbeat> decode_heartbeat(const std::string& text);
// Each node's view of the backends as JSON: in its heartbeat and in
// GET /api/v1/cluster alike.
boost::json::array backend_opinions_json(
    const std::vector<core::cluster::BackendOpinion>& opinions);

// What a sentinel answers to SENTINEL get-master-addr-by-name: the
// master's address, or nothing (Nil: it does not know the name; anything
// malformed).
std::optional<base::HostPort> master_address(const RedisReply& reply);

// A +switch-master message: "NAME OLD-IP OLD-PORT NEW-IP NEW-PORT".
struct MasterSwitch {
    std::string name;
    base::HostPort from;
    base::HostPort to;
};
std::optional<MasterSwitch> parse_switch_master(const std::string& message);

// ROLE's first element: what a server says it is now.
enum class RedisRole { Master, Replica, Other, Unknown };
RedisRole role_of(const RedisReply& reply);

// An error that means the server is no master any more (a stale sentinel
// or a failover under way): READONLY from a replica.
bool is_demoted_error(const RedisReply& reply);

bool same_address(const base::HostPort& a, const base::HostPort& b);

// A stick shared by a node (docs/cluster.md, "Shared source_ip
// persistence"): NODE<TAB>POOL<TAB>ADDRESS<TAB>BACKEND, none empty (names
// and addresses hold no tab).
struct StickMessage {
    std::string node, pool, client, backend;
};
std::string encode_stick(const StickMessage& stick);
std::optional<StickMessage> parse_stick(const std::string& message);

// The shared limits' script answer (RedisLimitStore) for batches of
// `ops[i]` operations each: every batch's result, or nothing when the
// answer does not fit them exactly (then none is trusted).
std::optional<std::vector<core::LimitBatchResult>> parse_limit_reply(
    const RedisReply& reply, const std::vector<std::size_t>& ops);

}  // namespace smtplb::io
