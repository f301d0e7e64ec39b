#include "admin/api.hpp"

#include "admin/assets.hpp"
#include "admin/cluster_api.hpp"
#include "admin/limits_api.hpp"
#include "admin/metrics.hpp"
#include "admin/queue.hpp"
#include "base/text.hpp"
#include "core/tracking.hpp"
#include "io/discovery/discoverer.hpp"
#include "io/front/listener.hpp"

#include <algorithm>
#include <boost/json.hpp>
#include <chrono>
#include <ctime>
#include <vector>

#ifndef SMTPLB_VERSION
#define SMTPLB_VERSION "unknown"
#endif

namespace smtplb::admin {
namespace json = boost::json;

namespace {

ApiResponse error_response(int status, const std::string& message) {
    json::object o;
    o["error"] = message;
    return {status, "application/json", json::serialize(o) + "\n"};
}

std::vector<std::string> split_path(const std::string& target) {
    std::vector<std::string> parts;
    std::string path = target.substr(0, target.find('?'));
    std::size_t i = 0;
    while (i < path.size()) {
        auto slash = path.find('/', i);
        if (slash == std::string::npos) slash = path.size();
        if (slash > i) parts.push_back(path.substr(i, slash - i));
        i = slash + 1;
    }
    return parts;
}

// Its last known EHLO (docs/esmtp.md, "What a listener offers").
json::object capabilities_json(const core::BackendCapabilities& c) {
    json::object o;
    o["size"] = c.size_limit;
    o["smtputf8"] = c.smtputf8;
    o["8bitmime"] = c.eightbitmime;
    o["dsn"] = c.dsn;
    o["chunking"] = c.chunking;
    o["requiretls"] = c.requiretls;
    return o;
}

// Per extension, how many backends are known to have it, of how many known.
json::object capabilities_json(const core::PoolCapabilities& c) {
    json::object o;
    o["size"] = c.size_limit;
    o["backends"] = c.backends;
    o["known"] = c.known;
    o["smtputf8"] = c.smtputf8;
    o["8bitmime"] = c.eightbitmime;
    o["dsn"] = c.dsn;
    o["chunking"] = c.chunking;
    o["requiretls"] = c.requiretls;
    o["verified_tls"] = c.verified_tls;
    return o;
}

json::object backend_json(const core::Pool& pool, const core::BackendState& b) {
    auto now = pool.clock().now();
    json::object o;
    o["name"] = b.config.name;
    o["address"] = b.config.address.to_string();
    o["priority"] = b.config.priority;
    o["weight"] = b.config.weight;
    if (!b.config.discovered_from.empty()) o["discovered_from"] = b.config.discovered_from;
    o["effective_weight"] = b.config.weight * b.health.weight_permille(now) / 1000.0;
    o["health"] = core::to_string(b.health.state());
    o["admin"] = core::to_string(b.health.admin());
    if (!b.warning.empty()) o["warning"] = b.warning;
    if (b.capabilities.known) o["capabilities"] = capabilities_json(b.capabilities);
    o["accepts_new"] = b.health.accepts_new(now);
    o["state_age_ms"] =
        std::chrono::duration_cast<std::chrono::milliseconds>(now - b.health.changed_at()).count();
    auto age_ms = [now](base::Clock::TimePoint t) {
        return std::chrono::duration_cast<std::chrono::milliseconds>(now - t).count();
    };
    if (const auto& change = b.health.last_change()) {
        json::object c;
        c["from"] = change->from;
        c["to"] = change->to;
        c["source"] = change->source;
        c["reason"] = change->reason;
        if (!change->reply.empty()) c["reply"] = change->reply;
        c["age_ms"] = age_ms(b.health.last_change_at());
        o["last_change"] = std::move(c);
    }
    if (const auto& p = b.health.last_probe()) {
        json::object probe;
        probe["age_ms"] = age_ms(b.health.last_probe_at());
        probe["verdict"] = proto::to_string(p->verdict);
        probe["step"] = p->step;
        probe["reason"] = p->reason;
        if (p->reply) {
            probe["reply"] = p->reply->summary();
            probe["enhanced"] = p->reply->enhanced;
        }
        o["last_probe"] = std::move(probe);
    }
    o["in_flight"] = b.pending;
    o["connections"] = b.active_connections;
    o["max_connections"] = b.config.max_connections;  // 0: no limit
    json::object counters;
    counters["attempts"] = b.counters.attempts;
    counters["delivered"] = b.counters.delivered;
    counters["rejected"] = b.counters.rejected;
    counters["deferred"] = b.counters.deferred;
    counters["failed"] = b.counters.failed;
    counters["recipients"] = b.counters.recipients;
    counters["connection_waits"] = b.counters.connection_waits;
    counters["connection_wait_timeouts"] = b.counters.connection_wait_timeouts;
    counters["shaping_skips"] = b.counters.shaping_skips.load();  // [[pool.destination_limit]]
    o["counters"] = std::move(counters);
    auto minute = b.rates.last_minute(now);
    json::object rates;
    rates["2xx"] = minute[core::ReplyRates::Positive];
    rates["4xx"] = minute[core::ReplyRates::Transient];
    rates["5xx"] = minute[core::ReplyRates::Permanent];
    rates["failures"] = minute[core::ReplyRates::Failure];
    o["replies_last_minute"] = std::move(rates);
    return o;
}

}  // namespace

namespace {

std::string rfc3339(std::chrono::system_clock::time_point t) {
    auto seconds = std::chrono::system_clock::to_time_t(t);
    std::tm utc{};
    gmtime_r(&seconds, &utc);
    char text[32];
    std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%SZ", &utc);
    return text;
}

json::object listener_json(const io::Listener& listener, std::uint16_t port) {
    const auto& c = listener.config();
    json::object l;
    l["name"] = c.name;
    l["address"] = base::HostPort{c.bind.host, port}.to_string();
    l["mode"] = config::to_string(c.mode);
    l["role"] = config::to_string(c.role);
    l["pool"] = c.pool;
    l["tls"] = config::to_string(c.tls.mode);
    l["port"] = port;
    l["sessions"] = listener.sessions();
    const auto& n = listener.counters;
    // Clients turned away before any transaction: over a connection limit,
    // or without an acceptable PROXY header.
    l["refusals"] = n.refused + n.proxy_refused;
    json::object counters;
    counters["connections"] = n.connections;
    counters["refused"] = n.refused;
    counters["proxy_refused"] = n.proxy_refused;
    counters["tls_failures"] = n.tls_failures;
    counters["auth_failed"] = n.auth_failed;
    counters["relayed"] = n.relayed;
    counters["rejected"] = n.rejected;
    counters["tempfailed"] = n.tempfailed;
    counters["spooled"] = n.spooled;
    counters["aborted"] = n.aborted;
    l["counters"] = std::move(counters);
    return l;
}

json::object run_json(const io::RunStats& stats, const RunInfo& run) {
    json::object o;
    o["version"] = SMTPLB_VERSION;
    o["started_at"] = rfc3339(stats.started);
    auto up = std::chrono::steady_clock::now() - stats.started_steady;
    o["uptime_ms"] = std::chrono::duration_cast<std::chrono::milliseconds>(up).count();
    json::object reloads;
    reloads["ok"] = stats.reloads_ok.load();
    reloads["failed"] = stats.reloads_failed.load();
    if (run.last_reload) {
        json::object last;
        last["at"] = rfc3339(run.last_reload->at);
        last["ok"] = run.last_reload->ok;
        last["message"] = run.last_reload->message;
        reloads["last"] = std::move(last);
    }
    o["reloads"] = std::move(reloads);
    return o;
}

}  // namespace

const core::PoolDiscovery* discovery_of(const io::Balancer& balancer, const std::string& pool) {
    const auto* discoverer = balancer.discoverer();
    return discoverer ? discoverer->find(pool) : nullptr;
}

// A pool's `discover`: what it asks, what it found, when it asks again.
json::object discover_json(const core::PoolDiscovery& d, base::Clock::TimePoint now) {
    json::object o;
    o["kind"] = config::to_string(d.discover().kind);
    o["name"] = d.discover().name;
    o["answered"] = d.answered();
    o["backends"] = d.backends().size();
    o["next_refresh_ms"] = std::max<std::int64_t>(
        0, std::chrono::duration_cast<std::chrono::milliseconds>(d.next_refresh() - now).count());
    o["failures"] = d.failures();
    o["failing"] = d.failing();
    if (!d.last_error().empty()) o["last_error"] = d.last_error();
    return o;
}

std::string status_json(io::Balancer& balancer, const RunInfo* run) {
    json::object root;
    if (run) {
        for (auto& [key, value] : run_json(balancer.run_stats(), *run))
            root[key] = value;
    }
    json::array listeners;
    auto ports = balancer.bound_ports();
    const auto& running = balancer.listeners();
    for (std::size_t i = 0; i < running.size(); ++i)
        listeners.push_back(listener_json(*running[i], i < ports.size() ? ports[i] : 0));
    root["listeners"] = std::move(listeners);
    root["sessions"] = balancer.active_sessions();
    json::array pools;
    for (const auto& p : balancer.pools()) {
        json::object o;
        o["name"] = p->name();
        o["algorithm"] = config::to_string(p->config().algorithm);
        o["on_unavailable"] = config::to_string(p->config().on_unavailable);
        o["probes"] = p->config().health.enabled
                          ? json::value(proto::to_string(p->config().health.depth))
                          : json::value(false);
        o["capabilities"] = capabilities_json(p->capabilities());
        json::array backends;
        auto guard = p->lock();  // sessions on other event loops change them
        for (const auto& b : p->backends())
            backends.push_back(backend_json(*p, b));
        o["backends"] = std::move(backends);
        if (const auto* found = p->config().discover ? discovery_of(balancer, p->name()) : nullptr)
            o["discover"] = discover_json(*found, balancer.clock().now());
        pools.push_back(std::move(o));
    }
    root["pools"] = std::move(pools);
    root["probes_run"] = balancer.health().probes_run();
    if (auto* spool = balancer.spool()) root["spool"] = spool_summary(*spool);
    root["limits"] = limits_json(balancer.limits(), balancer.clock().now(), kStatusTop);
    if (const auto& stats = balancer.cluster_stats()) {  // [cluster] (docs/cluster.md)
        json::object cluster;
        cluster["node"] = balancer.config().cluster.node_name;
        cluster["redis"] = balancer.config().cluster.redis_description();
        if (balancer.config().cluster.uses_sentinels()) {  // Redis Sentinel: where it is now
            cluster["master"] = stats->master();
            cluster["master_changes"] = stats->master_changes.load();
        }
        cluster["redis_up"] = stats->redis_up.load();
        cluster["admin_changes_from_redis"] = stats->admin_applied.load();
        cluster["admin_changes_local_only"] = stats->admin_local_only.load();
        root["cluster"] = std::move(cluster);
    }
    return json::serialize(root) + "\n";
}

ApiResponse handle_request(io::Balancer& balancer, const std::string& method,
                           const std::string& target, const ReloadHook& reload,
                           const RunInfo* run) {
    auto parts = split_path(target);
    if (const auto* asset = find_asset(target.substr(0, target.find('?')))) {
        if (method != "GET") return error_response(405, "use GET");
        return {200, std::string(asset->content_type), std::string(asset->body)};
    }
    if (parts.size() == 1 && parts[0] == "metrics") {
        if (method != "GET") return error_response(405, "use GET");
        return {200, "text/plain; version=0.0.4", metrics_text(balancer)};
    }
    bool api = parts.size() >= 2 && parts[0] == "api" && parts[1] == "v1";
    if (api && parts.size() == 3 && parts[2] == "status") {
        if (method != "GET") return error_response(405, "use GET");
        return {200, "application/json", status_json(balancer, run)};
    }
    if (api && parts.size() == 3 && parts[2] == "cluster")  // the node registry
        return cluster_request(balancer, method);
    if (api && parts.size() == 3 && parts[2] == "limits") {
        auto q = target.find('?');
        return limits_request(balancer.limits(), method,
                              q == std::string::npos ? "" : std::string_view(target).substr(q + 1),
                              balancer.clock().now());
    }
    if (api && parts.size() == 3 && parts[2] == "reload") {
        if (method != "POST") return error_response(405, "use POST");
        if (!reload) return error_response(501, "reload is not available here");
        auto outcome = reload();
        json::object o;
        o["reloaded"] = outcome.ok;
        o["message"] = outcome.message;
        return {outcome.ok ? 200 : 422, "application/json", json::serialize(o) + "\n"};
    }
    if (api && parts.size() == 3 && parts[2] == "reopen-logs") {
        if (method != "POST") return error_response(405, "use POST");
        auto& log = balancer.tracking();
        std::string error;
        bool ok = log.reopen(error);
        balancer.log(ok ? "event=logs_reopened by=api tracking_log=" +
                              base::logfmt_value(log.path())
                        : "event=logs_reopen_failed by=api reason=" + base::logfmt_value(error));
        json::object o;
        o["reopened"] = ok;
        o["message"] = ok ? "reopened the tracking log " + log.path() : error;
        return {ok ? 200 : 500, "application/json", json::serialize(o) + "\n"};
    }
    if (api && parts.size() >= 3 && parts[2] == "queue") {
        auto q = target.find('?');
        auto query = q == std::string::npos ? "" : target.substr(q + 1);
        // `smtplb queue` says so (by=cli); anything else is an API client.
        std::string by = query.find("by=cli") != std::string::npos ? "cli" : "api";
        return handle_queue_request(
            balancer.spool(), method, std::vector<std::string>(parts.begin() + 3, parts.end()),
            query, [&](const core::SpoolQueue::Entry& message, const std::string& done) {
                balancer.tracking().write(queue_action_line(message, done, by));
            });
    }
    if (api && parts.size() == 6 && parts[2] == "backends") {
        if (method != "POST") return error_response(405, "use POST");
        auto state = core::parse_admin_state(parts[5]);
        if (!state) return error_response(400, "the action must be drain, maintenance or enable");
        std::string error;
        if (!balancer.set_backend_state(parts[3], parts[4], *state, error))
            return error_response(404, error);
        auto* pool = balancer.pool(parts[3]);
        auto guard = pool->lock();
        const auto& b = pool->backend(*pool->find(parts[4]));
        json::object o = backend_json(*pool, b);
        o["pool"] = parts[3];
        return {200, "application/json", json::serialize(o) + "\n"};
    }
    return error_response(404, "no such endpoint; see GET /api/v1/status");
}

}  // namespace smtplb::admin
