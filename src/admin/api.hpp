#pragma once
#include <functional>
#include <string>

#include "admin/run_info.hpp"
#include "io/balancer.hpp"

namespace smtplb::admin {

struct ApiResponse {
    int status = 200;
    std::string content_type = "application/json";
    std::string body;
};

struct ReloadOutcome {
    bool ok = false;
    std::string message;  // what changed, or every reason it was refused
};
using ReloadHook = std::function<ReloadOutcome()>;

// The admin API's routes, apart from HTTP: a method and a target in, a
// response out. The HTTP server and the tests share it.
//   GET  /metrics (Prometheus text format)
//   GET  /api/v1/status
//   GET  /api/v1/cluster (admin/cluster_api.hpp; 404 without [cluster])
//   GET  /api/v1/limits[?top=N|?key=K][&limit=NAME] (admin/limits_api.hpp)
//   POST /api/v1/backends/{pool}/{backend}/{drain|maintenance|enable}
//   POST /api/v1/reload
//   POST /api/v1/reopen-logs (the tracking log, after a rotation)
//   GET|POST /api/v1/queue... (admin/queue.hpp)
ApiResponse handle_request(io::Balancer& balancer, const std::string& method,
                           const std::string& target, const ReloadHook& reload = {},
                           const RunInfo* run = nullptr);

// The status document: the daemon (version, uptime, reloads, with `run`),
// listeners with their counters, pools, backends with health, the last
// probe and state change, admin state, weights, load and counters, the
// limits with their hits and the keys nearest them. Fields
// are only ever added.
std::string status_json(io::Balancer& balancer, const RunInfo* run = nullptr);

}  // namespace smtplb::admin
