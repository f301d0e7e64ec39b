#include "admin/metrics.hpp"

#include "admin/cluster_api.hpp"

#include <unistd.h>

#include <dirent.h>

#include <chrono>
#include <fstream>
#include <mutex>
#include <sstream>

#include "io/discovery/discoverer.hpp"
#include "io/front/listener.hpp"

namespace smtplb::admin {

namespace {

using core::PrometheusText;

void listener_metrics(PrometheusText& m, io::Balancer& balancer) {
    const auto& listeners = balancer.listeners();
    auto each = [&](const char* name, const char* type, const char* help, auto value) {
        m.family(name, type, help);
        for (const auto& l : listeners)
            m.sample(name, {{"listener", l->config().name}}, static_cast<double>(value(*l)));
    };
    each("smtplb_listener_connections_total", "counter", "Client connections accepted.",
         [](const io::Listener& l) { return l.counters.connections; });
    each("smtplb_listener_refused_connections_total", "counter",
         "Client connections refused over max_connections or the per-client limit.",
         [](const io::Listener& l) { return l.counters.refused; });
    each("smtplb_listener_tls_handshakes_total", "counter", "Client TLS handshakes that succeeded.",
         [](const io::Listener& l) { return l.counters.tls_sessions; });
    each("smtplb_listener_tls_failures_total", "counter",
         "Client TLS handshakes that failed or timed out.",
         [](const io::Listener& l) { return l.counters.tls_failures; });
    each("smtplb_listener_proxy_refused_total", "counter",
         "Connections refused for a missing, malformed or untrusted PROXY header.",
         [](const io::Listener& l) { return l.counters.proxy_refused; });
    m.family("smtplb_listener_auth_total", "counter",
             "AUTH attempts by result: ok, failed (wrong credentials), tempfailed (the "
             "verifier could not tell), throttled (too many failures).");
    for (const auto& l : listeners) {
        const auto& c = l->counters;
        for (auto [result, n] : {std::pair{"ok", c.auth_ok},
                                 {"failed", c.auth_failed},
                                 {"tempfailed", c.auth_tempfailed},
                                 {"throttled", c.auth_throttled}})
            m.sample("smtplb_listener_auth_total",
                     {{"listener", l->config().name}, {"result", result}}, static_cast<double>(n));
    }
    each("smtplb_listener_sessions", "gauge", "Client sessions open now.",
         [](const io::Listener& l) { return l.sessions(); });
    each("smtplb_listener_message_bytes_total", "counter", "Bytes of relayed messages.",
         [](const io::Listener& l) { return l.counters.message_bytes; });
    m.family("smtplb_listener_transactions_total", "counter",
             "Transactions by result, as in the tracking log.");
    for (const auto& l : listeners) {
        const auto& c = l->counters;
        for (auto [result, n] : {std::pair{"relayed", c.relayed},
                                 {"rejected", c.rejected},
                                 {"tempfailed", c.tempfailed},
                                 {"aborted", c.aborted},
                                 {"spooled", c.spooled}})
            m.sample("smtplb_listener_transactions_total",
                     {{"listener", l->config().name}, {"result", result}}, static_cast<double>(n));
    }
}

void backend_metrics(PrometheusText& m, io::Balancer& balancer) {
    struct Row {
        const core::Pool* pool;
        const core::BackendState* backend;
    };
    std::vector<Row> rows;
    // Sessions on other event loops change health and load meanwhile.
    std::vector<std::unique_lock<std::mutex>> locks;
    for (const auto& p : balancer.pools())
        locks.push_back(p->lock());
    for (const auto& p : balancer.pools())
        for (const auto& b : p->backends())
            rows.push_back({p.get(), &b});
    auto labels = [](const Row& r) -> PrometheusText::Labels {
        return {{"pool", r.pool->name()}, {"backend", r.backend->config.name}};
    };
    auto each = [&](const char* name, const char* type, const char* help, auto value) {
        m.family(name, type, help);
        for (const auto& r : rows)
            m.sample(name, labels(r), static_cast<double>(value(r)));
    };
    each("smtplb_backend_attempts_started_total", "counter",
         "Transactions started on a backend, each attempt counted once (a retry on a fresh "
         "connection after a reused one was found closed is the same attempt).",
         [](const Row& r) { return r.backend->counters.attempts.load(); });
    m.family("smtplb_backend_attempts_total", "counter",
             "Transactions started on a backend, by how they ended there.");
    for (const auto& r : rows) {
        const auto& c = r.backend->counters;
        for (auto [outcome, n] : {std::pair{"delivered", c.delivered},
                                  {"rejected", c.rejected},
                                  {"deferred", c.deferred},
                                  {"failed", c.failed}}) {
            auto l = labels(r);
            l.emplace_back("outcome", outcome);
            m.sample("smtplb_backend_attempts_total", l, static_cast<double>(n));
        }
    }
    m.family("smtplb_identity_not_presented_total", "counter",
             "Transactions a backend carried without being told the client's identity: "
             "not-offered (no XCLIENT), incomplete (an attribute left out to fit its line).");
    for (const auto& r : rows) {
        const auto& c = r.backend->counters;
        for (auto [reason, n] : {std::pair{"not-offered", c.identity_not_offered},
                                 {"incomplete", c.identity_incomplete}}) {
            auto l = labels(r);
            l.emplace_back("reason", reason);
            m.sample("smtplb_identity_not_presented_total", l, static_cast<double>(n));
        }
    }
    each("smtplb_backend_8bit_conversions_total", "counter",
         "Messages converted to 7-bit MIME for a backend that does not announce 8BITMIME.",
         [](const Row& r) { return r.backend->counters.converted_8bit.load(); });
    each("smtplb_backend_streamed_messages_total", "counter",
         "Messages whose body went to a backend as it arrived from the client, not after it.",
         [](const Row& r) { return r.backend->counters.streamed.load(); });
    each("smtplb_backend_recipients_total", "counter", "Recipients a backend accepted.",
         [](const Row& r) { return r.backend->counters.recipients; });
    each("smtplb_backend_in_flight", "gauge", "Transactions open on a backend now.",
         [](const Row& r) { return r.backend->pending; });
    each("smtplb_backend_connections", "gauge", "Connections open to a backend now.",
         [](const Row& r) { return r.backend->active_connections; });
    each("smtplb_backend_max_connections", "gauge",
         "The most connections smtplb opens to a backend (max_connections; 0: no limit).",
         [](const Row& r) { return r.backend->config.max_connections; });
    each("smtplb_backend_connection_waits_total", "counter",
         "Transactions that found a backend at its max_connections and waited for a slot.",
         [](const Row& r) { return r.backend->counters.connection_waits.load(); });
    each("smtplb_backend_connection_wait_timeouts_total", "counter",
         "Waits for a connection slot that ran out (connection_wait): the transaction went to "
         "another backend, or to the spool or a 451 with none.",
         [](const Row& r) { return r.backend->counters.connection_wait_timeouts.load(); });
    each("smtplb_shaping_skips_total", "counter",
         "Picks that passed a backend over at its per-destination shaping limit "
         "([[pool.destination_limit]]) for one of the transaction's recipient domains.",
         [](const Row& r) { return r.backend->counters.shaping_skips.load(); });
    m.family("smtplb_shaping_full_total", "counter",
             "Transactions or recipients that found every backend of the pool at its "
             "destination limit (answered 451 4.7.1 or 452 4.5.3, or spooled).");
    for (const auto& p : balancer.pools())
        if (p->shaping())
            m.sample("smtplb_shaping_full_total", {{"pool", p->name()}},
                     static_cast<double>(p->shaping_full.load()));
    m.family("smtplb_shaping_tracked_keys", "gauge",
             "Backend x domain keys a destination limit remembers now (at most its max_keys).");
    for (const auto& p : balancer.pools())
        if (const auto& shaping = p->shaping())
            for (std::size_t i = 0; i < shaping->rules().size(); ++i)
                m.sample("smtplb_shaping_tracked_keys",
                         {{"pool", p->name()}, {"domain", shaping->rules()[i].domain}},
                         static_cast<double>(shaping->store().stats(i).tracked_keys));
    auto now = [](const Row& r) { return r.pool->clock().now(); };
    each("smtplb_backend_effective_weight", "gauge",
         "The weight schedulers use now (lower during slow start).", [&](const Row& r) {
             return r.backend->config.weight * r.backend->health.weight_permille(now(r)) / 1000.0;
         });
    m.family("smtplb_backend_health", "gauge",
             "1 for the backend's health state (up, busy, down, misconfigured).");
    for (const auto& r : rows)
        for (auto s : {core::HealthState::Up, core::HealthState::Busy, core::HealthState::Down,
                       core::HealthState::Misconfigured}) {
            auto l = labels(r);
            l.emplace_back("state", core::to_string(s));
            m.sample("smtplb_backend_health", l, r.backend->health.state() == s ? 1 : 0);
        }
    m.family("smtplb_backend_admin_state", "gauge",
             "1 for the backend's administrative state (enabled, drain, maintenance).");
    for (const auto& r : rows)
        for (auto s :
             {core::AdminState::Enabled, core::AdminState::Drain, core::AdminState::Maintenance}) {
            auto l = labels(r);
            l.emplace_back("state", core::to_string(s));
            m.sample("smtplb_backend_admin_state", l, r.backend->health.admin() == s ? 1 : 0);
        }
    m.family("smtplb_backend_replies_last_minute", "gauge",
             "Live replies from a backend over the last minute, by class.");
    for (const auto& r : rows) {
        auto minute = r.backend->rates.last_minute(now(r));
        for (auto [klass, i] : {std::pair{"2xx", core::ReplyRates::Positive},
                                {"4xx", core::ReplyRates::Transient},
                                {"5xx", core::ReplyRates::Permanent},
                                {"failure", core::ReplyRates::Failure}}) {
            auto l = labels(r);
            l.emplace_back("class", klass);
            m.sample("smtplb_backend_replies_last_minute", l, static_cast<double>(minute[i]));
        }
    }
    m.family("smtplb_backend_reply_seconds", "histogram",
             "Time from the end of a message to the backend's reply.");
    for (const auto& r : rows)
        m.histogram("smtplb_backend_reply_seconds", labels(r), r.backend->reply_seconds);
    m.family("smtplb_health_probes_total", "counter", "Health probes run.");
    m.sample("smtplb_health_probes_total", {}, static_cast<double>(balancer.health().probes_run()));
}

#ifndef SMTPLB_VERSION
#define SMTPLB_VERSION "unknown"
#endif

// Whole seconds: PrometheusText prints fractions with 6 digits, which
// would round a Unix time to the nearest thousand seconds.
double seconds_since_epoch(std::chrono::system_clock::time_point t) {
    return static_cast<double>(
        std::chrono::duration_cast<std::chrono::seconds>(t.time_since_epoch()).count());
}

// The daemon as a whole (every generation): what runs, since when, its
// reloads, and how long each listener's certificate has left.
void daemon_metrics(PrometheusText& m, io::Balancer& balancer) {
    auto& run = balancer.run_stats();
    m.family("smtplb_build_info", "gauge", "Always 1; the labels say which build runs.");
    m.sample("smtplb_build_info", {{"version", SMTPLB_VERSION}, {"compiler", __VERSION__}}, 1);
    m.family("smtplb_start_time_seconds", "gauge", "When the daemon started, in Unix seconds.");
    m.sample("smtplb_start_time_seconds", {}, seconds_since_epoch(run.started));
    m.family("smtplb_reloads_total", "counter",
             "Reloads asked for (SIGHUP, smtplb reload, the API), by result: ok (the new "
             "configuration runs) or failed (refused; the running one is unchanged).");
    m.sample("smtplb_reloads_total", {{"result", "ok"}}, static_cast<double>(run.reloads_ok));
    m.sample("smtplb_reloads_total", {{"result", "failed"}},
             static_cast<double>(run.reloads_failed));
    m.family("smtplb_config_last_reload_successful", "gauge",
             "1 when the last reload was taken (or none was asked for), 0 when it was refused.");
    m.sample("smtplb_config_last_reload_successful", {}, run.last_reload_ok ? 1 : 0);
    m.family("smtplb_config_last_reload_timestamp_seconds", "gauge",
             "When the last reload was asked for, in Unix seconds (0: none yet).");
    const std::int64_t last_reload_seconds = run.last_reload_ms.load() / 1000;
    m.sample("smtplb_config_last_reload_timestamp_seconds", {},
             static_cast<double>(last_reload_seconds));
    m.family("smtplb_certificate_expiry_seconds", "gauge",
             "Seconds until the certificate of a TLS listener expires (negative: expired); "
             "a reload reads renewed files.");
    for (const auto& l : balancer.listeners())
        if (auto left = io::certificate_seconds_left(l->tls_context()))
            m.sample("smtplb_certificate_expiry_seconds", {{"listener", l->config().name}},
                     static_cast<double>(*left));
}

void process_metrics(PrometheusText& m) {
    std::ifstream stat("/proc/self/stat");
    std::string line;
    std::getline(stat, line);
    auto close = line.rfind(')');
    if (close == std::string::npos) return;
    std::istringstream fields(line.substr(close + 2));
    std::vector<std::string> f;
    for (std::string x; fields >> x;)
        f.push_back(x);
    // Fields from 3 (state) on: utime is 14, stime 15, starttime 22, rss 24.
    if (f.size() < 22) return;
    const double ticks = static_cast<double>(::sysconf(_SC_CLK_TCK));
    const double page = static_cast<double>(::sysconf(_SC_PAGESIZE));
    m.family("process_cpu_seconds_total", "counter", "User and system CPU time.");
    m.sample("process_cpu_seconds_total", {}, (std::stod(f[11]) + std::stod(f[12])) / ticks);
    m.family("process_resident_memory_bytes", "gauge", "Resident memory.");
    m.sample("process_resident_memory_bytes", {}, std::stod(f[21]) * page);
    std::size_t fds = 0;
    if (DIR* dir = ::opendir("/proc/self/fd")) {
        while (::readdir(dir))
            ++fds;
        ::closedir(dir);
    }
    m.family("process_open_fds", "gauge", "Open file descriptors.");
    m.sample("process_open_fds", {}, static_cast<double>(fds > 2 ? fds - 3 : 0));  // ., .., dir
}

// [cluster] with shared [[limit]]s: how the checks were decided and what
// they cost in Redis round trips (docs/cluster.md, "Shared limits").
void shared_limit_metrics(PrometheusText& m, const io::SharedLimits& shared) {
    const auto& s = shared.stats();
    m.family("smtplb_cluster_limit_checks_total", "counter",
             "Checks of shared limits by how they were decided: redis (answered in time), "
             "local (Redis not connected), timeout (no answer within [cluster] timeout) or "
             "granted (met from units Redis granted this node ahead: no round trip); "
             "local and timeout applied the limits on this node alone.");
    m.sample("smtplb_cluster_limit_checks_total", {{"result", "redis"}},
             static_cast<double>(s.redis.load()));
    m.sample("smtplb_cluster_limit_checks_total", {{"result", "local"}},
             static_cast<double>(s.local.load()));
    m.sample("smtplb_cluster_limit_checks_total", {{"result", "timeout"}},
             static_cast<double>(s.timeout.load()));
    m.sample("smtplb_cluster_limit_checks_total", {{"result", "granted"}},
             static_cast<double>(s.met_here.load()));
    static const char* const kEvents[] = {"connect", "mail", "rcpt", "data"};
    m.family("smtplb_cluster_limit_events_total", "counter",
             "SMTP events whose shared limits Redis was asked about, by event.");
    for (std::size_t i = 0; i < 4; ++i)
        m.sample("smtplb_cluster_limit_events_total", {{"event", kEvents[i]}},
                 static_cast<double>(s.events[i].load()));
    m.family("smtplb_cluster_limit_round_trips_total", "counter",
             "Requests the shared limits sent Redis: scripts (each carrying the events "
             "gathered while the previous one was answered), script loads, lease renewals.");
    m.sample("smtplb_cluster_limit_round_trips_total", {},
             static_cast<double>(shared.round_trips()));
    m.family("smtplb_cluster_limit_leases", "gauge",
             "Concurrency places this node holds in Redis now (renewed every lease_ttl/3).");
    m.sample("smtplb_cluster_limit_leases", {}, static_cast<double>(shared.leases_held()));
}

}  // namespace

void spool_metrics(PrometheusText& m, io::Spool& spool) {
    auto& q = spool.queue();
    auto gauge = [&](const char* name, const char* help, double value) {
        m.family(name, "gauge", help);
        m.sample(name, {}, value);
    };
    gauge("smtplb_spool_messages", "Messages in the spool (queued, held or being delivered).",
          static_cast<double>(q.size()));
    gauge("smtplb_spool_held_messages", "Messages held by an administrator.",
          static_cast<double>(q.held()));
    gauge("smtplb_spool_bytes", "Bytes of spool files.", static_cast<double>(q.bytes()));
    auto now = std::chrono::duration_cast<std::chrono::milliseconds>(
                   std::chrono::system_clock::now().time_since_epoch())
                   .count();
    auto oldest = q.oldest_arrival_ms();
    gauge("smtplb_spool_oldest_age_seconds", "Age of the oldest spooled message (0 when empty).",
          oldest ? static_cast<double>(now - *oldest) / 1000.0 : 0.0);
    const auto& c = spool.counters();
    m.family("smtplb_spool_events_total", "counter",
             "What happened to spooled mail: spooled and refused messages, delivered and "
             "bounced recipients, deferred attempts, expired, corrupt and dead files, drains "
             "(a pool returned) and the messages they made due.");
    for (auto [event, n] : {std::pair{"spooled", c.spooled},
                            {"commit_failed", c.commit_failed},
                            {"refused_full", c.refused_full},
                            {"delivered_recipients", c.delivered},
                            {"deferred", c.deferred},
                            {"bounced_recipients", c.bounced},
                            {"expired", c.expired},
                            {"corrupt", c.corrupt},
                            {"dead", c.dead},
                            {"drains", c.drains},
                            {"drained", c.drained}})
        m.sample("smtplb_spool_events_total", {{"event", event}}, static_cast<double>(n));
}

namespace {

void tracking_log_metrics(PrometheusText& m, const io::TrackingLog& log) {
    m.family("smtplb_tracking_log_write_failures_total", "counter",
             "Tracking-log lines that could not be written (disk full, I/O error).");
    m.sample("smtplb_tracking_log_write_failures_total", {},
             static_cast<double>(log.write_failures()));
    m.family("smtplb_tracking_log_reopens_total", "counter",
             "Times the tracking log was opened again (SIGUSR1, reopen-logs).");
    m.sample("smtplb_tracking_log_reopens_total", {}, static_cast<double>(log.reopens()));
}

// The [[limit]]s: a limit renamed or removed by a reload leaves; one that
// keeps its name keeps its counters (LimitSet::carry_over).
void limit_metrics(PrometheusText& m, core::LimitSet& limits) {
    const auto& all = limits.limits();
    if (all.empty()) return;
    m.family("smtplb_limit_hits_total", "counter",
             "Requests a [[limit]] refused (tempfail) or held (delay), by limit.");
    for (std::size_t i = 0; i < all.size(); ++i) {
        auto hits = limits.hits(i);
        for (auto [action, n] : {std::pair{"tempfail", hits.tempfail}, {"delay", hits.delay}})
            m.sample("smtplb_limit_hits_total", {{"limit", all[i].name}, {"action", action}},
                     static_cast<double>(n));
    }
    std::vector<core::LimitStoreStats> stats;
    for (std::size_t i = 0; i < all.size(); ++i)
        stats.push_back(limits.stats(i));
    auto each = [&](const char* name, const char* type, const char* help, auto value) {
        m.family(name, type, help);
        for (std::size_t i = 0; i < all.size(); ++i)
            m.sample(name, {{"limit", all[i].name}}, static_cast<double>(value(stats[i])));
    };
    each("smtplb_limit_keys", "gauge",
         "Keys a limit tracks now: rate keys not yet recovered, concurrency keys held.",
         [](const core::LimitStoreStats& s) { return s.tracked_keys; });
    each("smtplb_limit_evictions_total", "counter",
         "Rate keys forgotten before they recovered, because the limit held max_keys.",
         [](const core::LimitStoreStats& s) { return s.evictions; });
    each("smtplb_limit_table_full_total", "counter",
         "Concurrency requests refused because the limit already held max_keys other keys.",
         [](const core::LimitStoreStats& s) { return s.table_full; });
}

// Pools from DNS (pool.discover): what each found, and how often DNS failed it.
void discovery_metrics(PrometheusText& m, const io::Discoverer& discoverer) {
    auto pools = discoverer.pools();
    if (pools.empty()) return;
    m.family("smtplb_discovery_backends", "gauge",
             "Backends the pool's discover last found in DNS (kept while DNS fails).");
    for (const auto* d : pools)
        m.sample("smtplb_discovery_backends", {{"pool", d->pool()}},
                 static_cast<double>(d->backends().size()));
    m.family("smtplb_discovery_failures_total", "counter",
             "Resolutions of the pool's discover that failed or found nothing; the last "
             "good backends were kept.");
    for (const auto* d : pools)
        m.sample("smtplb_discovery_failures_total", {{"pool", d->pool()}},
                 static_cast<double>(d->failures()));
}

// [cluster]: the link to Redis and what went through it (docs/cluster.md).
void cluster_metrics(PrometheusText& m, const core::cluster::ClusterStats& c) {
    m.family("smtplb_cluster_redis_up", "gauge",
             "1 while this node is connected to the cluster's Redis (and subscribed), else 0.");
    m.sample("smtplb_cluster_redis_up", {}, c.redis_up ? 1 : 0);
    m.family("smtplb_cluster_redis_switches_total", "counter",
             "Switches of the link to Redis: to=down when it was lost or could not be made "
             "(local admin state from then on), to=up when it was made (Redis's state read).");
    m.sample("smtplb_cluster_redis_switches_total", {{"to", "down"}},
             static_cast<double>(c.switched_down));
    m.sample("smtplb_cluster_redis_switches_total", {{"to", "up"}},
             static_cast<double>(c.switched_up));
    m.family("smtplb_cluster_requests_failed_total", "counter",
             "Redis requests that failed, by reason: timeout (past [cluster] timeout) or error "
             "(an error reply, or no connection).");
    m.sample("smtplb_cluster_requests_failed_total", {{"reason", "timeout"}},
             static_cast<double>(c.request_timeouts));
    m.sample("smtplb_cluster_requests_failed_total", {{"reason", "error"}},
             static_cast<double>(c.request_errors));
    m.family("smtplb_cluster_admin_changes_total", "counter",
             "Backend admin changes: from=redis (set through another node, applied here), "
             "local_only (set here while Redis was unreachable: not shared).");
    m.sample("smtplb_cluster_admin_changes_total", {{"from", "redis"}},
             static_cast<double>(c.admin_applied));
    m.sample("smtplb_cluster_admin_changes_total", {{"from", "local_only"}},
             static_cast<double>(c.admin_local_only));
    m.family("smtplb_cluster_master_changes_total", "counter",
             "Redis Sentinel: moves of this node to another master (a failover followed).");
    m.sample("smtplb_cluster_master_changes_total", {}, static_cast<double>(c.master_changes));
}

}  // namespace

std::string metrics_text(io::Balancer& balancer) {
    PrometheusText m;
    daemon_metrics(m, balancer);
    listener_metrics(m, balancer);
    backend_metrics(m, balancer);
    if (auto* spool = balancer.spool()) spool_metrics(m, *spool);
    process_metrics(m);
    tracking_log_metrics(m, balancer.tracking());
    limit_metrics(m, balancer.limits());
    if (const auto* discoverer = balancer.discoverer()) discovery_metrics(m, *discoverer);
    if (const auto& cluster = balancer.cluster_stats()) cluster_metrics(m, *cluster);
    if (const auto& shared = balancer.shared_limits()) shared_limit_metrics(m, *shared);
    auto text = m.text();
    if (const auto* registry = balancer.node_registry()) text += registry_metrics_text(*registry);
    return text;
}

}  // namespace smtplb::admin
