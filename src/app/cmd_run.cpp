#include <unistd.h>

#include <algorithm>
#include <csignal>
#include <cstdio>
#include <functional>
#include <optional>
#include <vector>

#include "admin/http_server.hpp"
#include "base/log_line.hpp"
#include "base/text.hpp"
#include "check_environment.hpp"
#include "cluster_nodes.hpp"
#include "commands.hpp"
#include "config/changes.hpp"
#include "config/loader.hpp"
#include "io/balancer.hpp"
#include "io/cluster/hiredis_client.hpp"
#include "io/cluster/hiredis_sentinel.hpp"
#include "io/cluster/redis_limit_store.hpp"
#include "io/cluster/shared_admin_state.hpp"
#include "io/discovery/discoverer.hpp"
#include "io/front/listener.hpp"
#include "systemd.hpp"
#include "transparent_privilege.hpp"

namespace smtplb::app {

namespace {

// One structured (logfmt) line on stderr, which systemd puts in the journal.
// The level follows the event (base::level_of) unless one is given.
void log_event(const std::string& event,
               const std::vector<std::pair<const char*, std::string>>& fields,
               std::optional<base::LogLevel> level = std::nullopt) {
    std::string line = "event=" + event;
    for (const auto& [key, value] : fields)
        line += std::string(" ") + key + "=" + base::logfmt_value(value);
    base::log_line(level.value_or(base::level_of(line)), line);
}

// Each finding of the configuration file on a line of its own, so that
// the journal keeps the logfmt shape: "event=config_error message=...".
void log_diagnostics(const config::Diagnostics& diagnostics, const std::string& path) {
    for (const auto& d : diagnostics.items) {
        bool error = d.severity == config::Diagnostic::Severity::Error;
        std::string where = path + (d.line > 0 ? ":" + std::to_string(d.line) : "");
        log_event(error ? "config_error" : "config_warning",
                  {{"file", where}, {"key", d.path}, {"message", d.message}});
    }
}

// "event=listening" for a listener bound now, at start or by a reload; a
// certificate with less than 14 days left is a warning of its own.
void log_listening(const io::Listener& listener) {
    const auto& c = listener.config();
    auto address = base::HostPort{c.bind.host, listener.port()}.to_string();
    auto left = io::certificate_seconds_left(listener.tls_context());
    std::string days = left ? std::to_string(*left / 86400) : "";
    std::vector<std::pair<const char*, std::string>> fields{{"listener", c.name},
                                                            {"address", address},
                                                            {"mode", config::to_string(c.mode)},
                                                            {"role", config::to_string(c.role)},
                                                            {"tls", config::to_string(c.tls.mode)}};
    if (left) fields.emplace_back("certificate_days_left", days);
    fields.emplace_back("port", std::to_string(listener.port()));
    log_event("listening", fields);
    constexpr long long kWarnSeconds = 14LL * 86400;
    if (left && *left < kWarnSeconds)
        log_event("certificate_expiring",
                  {{"listener", c.name}, {"certificate", c.tls.cert}, {"days_left", days}});
}

// Why the daemon ends, for its last line (event=stopped).
struct Ending {
    std::string reason = "exited";
};

// How long sessions cut at the end of the shutdown grace (and whatever else
// a generation still runs then) get to unwind before the daemon exits.
constexpr std::chrono::seconds kUnwindBound{5};

using SteadyClock = std::chrono::steady_clock;

// One configuration generation: what one file built, numbered from 1 in
// the order of reloads.
struct Generation {
    std::unique_ptr<io::Balancer> balancer;
    std::uint64_t number = 0;
};

// The running daemon: the current configuration generation, and the ones a
// reload replaced, each released once its task group is empty.
struct Daemon {
    std::string path;
    io::asio::io_context& io;
    io::EventLoops& loops;
    Generation current;
    std::vector<Generation> retiring;
    std::unique_ptr<admin::HttpServer> admin_server;
    // Pools' backends from DNS: above generations, it keeps what it found
    // across reloads and has a new generation built when that changes.
    std::unique_ptr<io::Discoverer> discoverer;
    // [cluster]: the admin state shared through Redis; after `current`, so
    // that it is gone (detached) before the generations are.
    base::SystemClock clock;
    std::unique_ptr<io::SharedAdminState> cluster;
    std::unique_ptr<ClusterNodes> nodes;  // the node registry, shared sticks
    // [cluster] with a shared [[limit]]: their state in Redis, over a client
    // of its own (limits' scripts do not queue behind admin reads).
    std::shared_ptr<io::RedisLimitStore> limit_store;
    std::uint64_t last_number = 1;
    // Set by shut_down(), which from then on alone releases generations.
    bool stopping = false;

    admin::ReloadOutcome reload();
    admin::ReloadOutcome reload_now();
    // What DNS finds for the pools changed: the running configuration with
    // the new lists becomes the next generation, as a reload would.
    void rediscovered();
    // Follows `config`'s `discover`s, asking the nameservers it names.
    void discover(const config::Config& config);
    // [cluster]: `balancer`'s shared limits kept in Redis, their local
    // share sized by the node registry.
    void share_limits(io::Balancer& balancer);
    // `next` (started) takes over from the current generation.
    void replace(std::unique_ptr<io::Balancer> next);
    // A generation a reload replaced: released when its sessions have
    // ended and then everything else of it.
    io::awaitable<void> release(std::uint64_t number);
    // SIGTERM/SIGINT: stops every generation and releases them.
    io::awaitable<void> shut_down(std::chrono::milliseconds grace);
    // The retired generation `number`, unless it is gone or the shutdown
    // has taken over.
    io::Balancer* retired(std::uint64_t number);
    void destroy(Generation& generation, const char* reason);
    // Awaits each generation's group until it is empty, and closes it;
    // false when `until` comes first.
    static io::awaitable<bool> drain(std::vector<Generation*> generations,
                                     SteadyClock::time_point until);
    std::vector<Generation*> all();
};

admin::ReloadOutcome Daemon::reload() {
    if (stopping) return {false, "stopping"};
    notify_systemd("RELOADING=1");
    auto outcome = reload_now();
    if (admin_server) admin_server->record_reload(outcome);
    notify_systemd("READY=1\nSTATUS=" +
                   std::string(outcome.ok ? "reloaded" : "reload refused; running as before"));
    return outcome;
}

admin::ReloadOutcome Daemon::reload_now() {
    auto loaded = config::load_file(path);
    if (loaded.config && check_transparent_privilege(*loaded.config, loaded.lines, has_net_admin(),
                                                     true, loaded.diagnostics))
        loaded.config.reset();
    if (!loaded.config) {
        auto reasons = loaded.diagnostics.format(path);
        log_diagnostics(loaded.diagnostics, path);
        log_event(
            "reload_refused",
            {{"file", path}, {"reason", "not valid; the running configuration is unchanged"}});
        current.balancer->run_stats().reloaded(false);
        return {false, reasons};
    }
    if (discoverer) discoverer->apply(*loaded.config);
    // Validate against the running daemon too: bind, state_dir, tracking log.
    auto& running = *current.balancer;
    auto next = std::make_unique<io::Balancer>(io, *loaded.config, nullptr, &running, &loops);
    std::string error;
    if (!next->start(error, &running)) {
        log_event("reload_refused",
                  {{"file", path}, {"reason", error + "; the running configuration is unchanged"}});
        running.run_stats().reloaded(false);
        return {false, error};
    }
    const auto& old_admin = running.config().server.admin;
    if (loaded.config->server.admin != old_admin)
        log_event("admin_unchanged",
                  {{"address", old_admin},
                   {"reason", "server.admin changes take effect at the next start"}});
    loops.set_busy_poll(std::chrono::microseconds(loaded.config->server.busy_poll_us));
    if (cluster_settings(loaded.config->cluster) != cluster_settings(running.config().cluster))
        log_event("cluster_unchanged",
                  {{"reason", "[cluster] changes take effect at the next start"}});
    if (loaded.config->server.threads != loops.size())
        log_event("threads_unchanged",
                  {{"threads", std::to_string(loops.size())},
                   {"reason", "server.threads changes take effect at the next start"}});
    replace(std::move(next));
    discover(current.balancer->config());
    auto& now_running = *current.balancer;
    now_running.run_stats().reloaded(true);
    const auto changes = config::describe_changes(running.config(), now_running.config());
    const auto listeners = now_running.listeners().size();
    const auto pools = now_running.pools().size();
    std::string summary = "reloaded " + path + ": " + std::to_string(listeners) + " listeners, " +
                          std::to_string(pools) + " pools; " +
                          (changes.empty() ? "nothing changed"
                                           : std::to_string(changes.size()) +
                                                 (changes.size() == 1 ? " change:" : " changes:"));
    for (const auto& change : changes)
        summary += "\n  " + change;
    log_event("reloaded", {{"file", path},
                           {"generation", std::to_string(current.number)},
                           {"listeners", std::to_string(listeners)},
                           {"pools", std::to_string(pools)},
                           {"changes", std::to_string(changes.size())}});
    // One line per change: a long list stays whole and greppable.
    for (const auto& change : changes)
        log_event("config_changed",
                  {{"generation", std::to_string(current.number)}, {"change", change}});
    // A listener that is new, or bound elsewhere now, is announced as at start.
    for (const auto& l : now_running.listeners()) {
        bool known = std::any_of(
            running.listeners().begin(), running.listeners().end(), [&](const auto& old) {
                return old->config().name == l->config().name &&
                       old->config().bind.to_string() == l->config().bind.to_string();
            });
        if (!known) log_listening(*l);
    }
    return {true, summary};
}

void Daemon::replace(std::unique_ptr<io::Balancer> next) {
    auto& running = *current.balancer;
    next->set_discoverer(discoverer.get());
    // The old generation takes no new connections; its sessions go on with
    // the old configuration until their clients end them.
    running.retire();
    const auto old_number = current.number;
    retiring.push_back(std::move(current));
    current = Generation{std::move(next), ++last_number};
    if (admin_server) admin_server->set_balancer(*current.balancer);
    if (cluster) cluster->attach(*current.balancer);
    if (nodes) nodes->attach(*current.balancer);
    share_limits(*current.balancer);
    io::asio::co_spawn(io, release(old_number), io::asio::detached);
}

void Daemon::share_limits(io::Balancer& balancer) {
    auto& shared = balancer.shared_limits();
    if (!limit_store || !shared) return;
    shared->use_store(limit_store);
    // Past Redis's deadline each node takes its share: the limit divided by
    // the nodes the registry saw alive.
    if (nodes) {
        auto* registry = nodes->registry.get();
        shared->set_live_nodes([registry] { return registry->live_nodes(); });
    }
}

void Daemon::discover(const config::Config& config) {
    discoverer->use_resolver(io::make_discovery_resolver(
        io.get_executor(), io::client_name_servers(config.server), config.server.dns_timeout));
    discoverer->configure(config);
}

void Daemon::rediscovered() {
    if (stopping) return;
    auto& running = *current.balancer;
    auto config = running.config();
    discoverer->apply(config);
    auto next = std::make_unique<io::Balancer>(io, config, nullptr, &running, &loops);
    std::string error;
    if (!next->start(error, &running)) {
        log_event("discovery_not_applied",
                  {{"reason", error + "; the running backends are unchanged"}});
        return;
    }
    replace(std::move(next));
    log_event("discovery_applied", {{"generation", std::to_string(current.number)}});
}

io::Balancer* Daemon::retired(std::uint64_t number) {
    if (stopping) return nullptr;
    for (auto& g : retiring)
        if (g.number == number) return g.balancer.get();
    return nullptr;
}

std::vector<Generation*> Daemon::all() {
    std::vector<Generation*> out{&current};
    for (auto& g : retiring)
        out.push_back(&g);
    return out;
}

// Destroys a generation whose group is closed and empty: nothing of it runs.
// Here, on loop 0, while every loop runs (the balancer closes its caches on
// their own loops).
void Daemon::destroy(Generation& generation, const char* reason) {
    generation.balancer->tracking().flush();
    generation.balancer.reset();
    std::size_t left = 0;
    for (auto* g : all())
        left += g->balancer != nullptr;
    log_event("generation_released", {{"generation", std::to_string(generation.number)},
                                      {"reason", reason},
                                      {"generations_left", std::to_string(left)}});
}

io::awaitable<void> Daemon::release(std::uint64_t number) {
    // Each step may find the shutdown in charge (or the generation gone).
    auto* old = retired(number);
    if (!old) co_return;
    co_await old->sessions().wait();
    if (!(old = retired(number))) co_return;
    old->stop();  // its probes, spool deliveries and idle backend connections end
    for (;;) {
        co_await old->tasks().wait();
        if (!(old = retired(number))) co_return;
        // Closed once empty: anything handed to it later (a backend
        // connection put back and swept) is refused, so empty it stays.
        old->tasks().close();
        if (old->tasks().size() == 0) break;
    }
    auto it = std::find_if(retiring.begin(), retiring.end(),
                           [number](const Generation& g) { return g.number == number; });
    destroy(*it, "replaced");
    retiring.erase(it);
}

io::awaitable<bool> Daemon::drain(std::vector<Generation*> generations,
                                  SteadyClock::time_point until) {
    for (auto* g : generations) {
        auto& tasks = g->balancer->tasks();
        // Closed once empty: anything handed to it later is refused, so
        // empty it stays.
        while (!tasks.closed() || tasks.size() > 0) {
            bool empty = co_await tasks.wait(until);
            if (!empty) co_return false;
            tasks.close();
        }
    }
    co_return true;
}

io::awaitable<void> Daemon::shut_down(std::chrono::milliseconds grace) {
    stopping = true;  // from here on, only this releases generations
    if (discoverer) discoverer->stop();
    if (admin_server) admin_server->stop();
    if (cluster) {  // the other nodes go on without this one
        cluster->stop();
        cluster->detach();
    }
    if (nodes) nodes->stop();  // its key expires: the others see it gone
    auto generations = all();
    // Each generation's parts stop as they registered: idle sessions are
    // told 421 4.3.2 at once, those in a transaction get server.
    // shutdown_grace to finish it; probes and spool deliveries end.
    for (auto* g : generations)
        g->balancer->stop();
    bool drained = co_await drain(generations, SteadyClock::now() + grace);
    if (!drained) {
        // Past the grace period: cut what is left, and let it unwind.
        for (auto* g : generations)
            g->balancer->abort_sessions();
        drained = co_await drain(generations, SteadyClock::now() + kUnwindBound);
    }
    for (auto* g : generations) {
        auto& tasks = g->balancer->tasks();
        if (tasks.closed() && tasks.size() == 0) {
            destroy(*g, "stopping");
            continue;
        }
        // Still running (stuck): its frames are destroyed with the event
        // loops, and must find it there. Left to the end of the process.
        g->balancer->tracking().flush();
        log_event("generation_abandoned", {{"generation", std::to_string(g->number)},
                                           {"tasks", std::to_string(tasks.size())}});
        (void)g->balancer.release();
    }
    retiring.clear();
    if (limit_store) limit_store->stop();  // after the sessions gave their places back
    io.stop();
}

// The soft descriptor limit raised to the hard one; said when still too low.
void log_file_limit(const config::Config& config) {
    if (auto low = raise_file_limit(config))
        log_event("file_limit_low",
                  {{"limit", std::to_string(low->limit)},
                   {"wanted", std::to_string(low->wanted)},
                   {"hint", "raise LimitNOFILE (systemd) or ulimit -n, or lower max_connections"}});
}

// [cluster]: the Redis link and the shared admin state, on the first loop
// (where the admin API runs). Mail never waits for it.
bool start_cluster(Daemon& daemon, const config::Cluster& c, std::string& error) {
    if (!c.enabled) return true;
    const auto settings = cluster_redis_settings(c, error);
    if (!error.empty()) return false;
    auto executor = daemon.io.get_executor();
    auto client = io::make_cluster_redis_client(executor, c, settings);
    auto* sentinel = dynamic_cast<io::SentinelClient*>(client.get());  // it reports moves
    daemon.cluster = std::make_unique<io::SharedAdminState>(
        c, std::move(client), daemon.clock, [](const std::string& line) { base::log_line(line); });
    if (sentinel)
        io::report_master_moves(*sentinel, daemon.cluster->stats(), c.node_name,
                                [](const std::string& line) { base::log_line(line); });
    daemon.cluster->attach(*daemon.current.balancer);
    daemon.cluster->start();
    // Every limit is shared unless it says otherwise: the store exists
    // whenever one might be, so that a reload adding one finds it.
    io::RedisLimitSettings limit_settings{c.key_prefix, c.node_name, c.lease_ttl};
    daemon.limit_store = std::make_shared<io::RedisLimitStore>(
        daemon.io.get_executor(),
        io::make_cluster_redis_client(daemon.io.get_executor(), c, settings), limit_settings);
    daemon.limit_store->start();
    log_event("cluster_starting", {{"node", c.node_name},
                                   {"redis", c.redis_description()},
                                   {"hash", daemon.cluster->hash_key()},
                                   {"channel", daemon.cluster->channel()}});
    daemon.nodes = start_cluster_nodes(daemon.io.get_executor(), c, settings, daemon.clock,
                                       *daemon.current.balancer);
    daemon.share_limits(*daemon.current.balancer);
    return true;
}

// SIGUSR1: the tracking log is opened again (after logrotate renamed it).
void reopen_logs(io::Balancer& balancer) {
    std::string error;
    if (balancer.tracking().reopen(error))
        log_event("logs_reopened", {{"tracking_log", balancer.tracking().path()}});
    else
        log_event("logs_reopen_failed", {{"reason", error}});
}

int start_failed(Ending& ending, const std::string& error) {
    log_event("start_failed", {{"reason", error}});
    ending.reason = "start failed: " + error;
    return 1;
}

int serve(const std::string& path, Ending& ending) {
    auto result = config::load_file(path);
    // Without the privilege every transparent connection would fail: refuse now.
    if (result.config && check_transparent_privilege(*result.config, result.lines, has_net_admin(),
                                                     true, result.diagnostics))
        result.config.reset();
    log_diagnostics(result.diagnostics, path);
    if (!result.config) {
        log_event("start_failed",
                  {{"file", path}, {"reason", "configuration is not valid; not starting"}});
        ending.reason = "configuration not valid";
        return 1;
    }
    log_file_limit(*result.config);
    auto io = std::make_unique<io::asio::io_context>(1);
    // Registered before anything listens: a signal sent as soon as the port
    // answers is queued for its handler, not default-handled (SIGHUP would
    // kill the process).
    io::asio::signal_set signals(*io, SIGINT, SIGTERM);
    io::asio::signal_set hangup(*io, SIGHUP);
    // SIGUSR1 (logrotate) reopens the tracking log; SIGUSR2 is ignored with a
    // line: neither may kill the daemon, as their default actions would.
    io::asio::signal_set user_signals(*io, SIGUSR1, SIGUSR2);
    // Declared before the daemon: the balancers' sockets and timers belong
    // to these loops, so the balancers are destroyed first.
    io::EventLoops loops(*io, result.config->server.threads);
    loops.set_busy_poll(std::chrono::microseconds(result.config->server.busy_poll_us));
    Daemon daemon{
        path, *io, loops,
        Generation{std::make_unique<io::Balancer>(*io, *result.config, nullptr, nullptr, &loops),
                   1}};
    auto& first = *daemon.current.balancer;
    daemon.discoverer = std::make_unique<io::Discoverer>(
        io->get_executor(),
        [](const core::DiscoveryEvent& e) {
            std::vector<std::pair<const char*, std::string>> fields;
            for (const auto& [key, value] : e.fields)
                fields.emplace_back(key.c_str(), value);
            log_event(e.event, fields);
        },
        [&daemon] {
            // Posted: the discoverer's step ends before a generation is built.
            io::asio::post(daemon.io, [&daemon] { daemon.rediscovered(); });
        });
    first.set_discoverer(daemon.discoverer.get());
    std::string error;
    if (!first.start(error)) {
        return start_failed(ending, error);
    }
    if (const auto& bind = result.config->server.admin_bind) {
        daemon.admin_server = std::make_unique<admin::HttpServer>(
            first, *bind, [&daemon] { return daemon.reload(); });
        if (!daemon.admin_server->start(error)) {
            return start_failed(ending, error);
        }
        log_event(
            "admin_listening",
            {{"address", base::HostPort{bind->host, daemon.admin_server->port()}.to_string()}});
    }
    for (const auto& l : first.listeners())
        log_listening(*l);
    daemon.discover(first.config());
    if (!start_cluster(daemon, result.config->cluster, error)) {
        return start_failed(ending, error);
    }
    // Type=notify: ready once every listener is bound. The watchdog
    // keep-alive comes from the event loop itself, so a stuck loop is seen.
    notify_systemd("READY=1\nSTATUS=accepting mail");
    std::unique_ptr<io::asio::steady_timer> watchdog;
    if (auto interval = systemd_watchdog_interval()) {
        watchdog = std::make_unique<io::asio::steady_timer>(*io);
        io::asio::co_spawn(
            *io,
            [&watchdog, period = *interval / 2]() -> io::awaitable<void> {
                for (;;) {
                    notify_systemd("WATCHDOG=1");
                    watchdog->expires_after(period);
                    auto [ec] = co_await watchdog->async_wait(io::use_nothrow);
                    if (ec) co_return;
                }
            },
            io::asio::detached);
    }

    signals.async_wait([&](const io::error_code& ec, int signo) {
        if (ec) return;
        const char* name = signo == SIGTERM ? "SIGTERM" : signo == SIGINT ? "SIGINT" : "signal";
        ending.reason = std::string("signal ") + name;
        log_event("stopping", {{"signal", name}, {"signo", std::to_string(signo)}});
        notify_systemd("STOPPING=1");
        const auto grace = daemon.current.balancer->config().server.shutdown_grace;
        io::asio::co_spawn(*io, daemon.shut_down(grace), io::asio::detached);
    });
    // SIGHUP reloads: a file that does not validate changes nothing.
    std::function<void(const io::error_code&, int)> on_hangup = [&](const io::error_code& ec, int) {
        if (ec) return;
        daemon.reload();
        hangup.async_wait(on_hangup);
    };
    hangup.async_wait(on_hangup);
    std::function<void(const io::error_code&, int)> on_user_signal = [&](const io::error_code& ec,
                                                                         int signo) {
        if (ec) return;
        if (signo == SIGUSR1)
            reopen_logs(*daemon.current.balancer);
        else
            log_event("signal_ignored", {{"signal", std::to_string(signo)}});
        user_signals.async_wait(on_user_signal);
    };
    user_signals.async_wait(on_user_signal);
    ::signal(SIGPIPE, SIG_IGN);
    loops.start();
    loops.run_main();
    // Every generation is released (or, stuck, abandoned) by now: what is
    // left on the loops owns what it uses. Then, by scope: the admin
    // server, the signal sets, and last the loops.
    signals.cancel();
    hangup.cancel();
    user_signals.cancel();
    if (watchdog) watchdog->cancel();
    loops.stop();
    daemon.admin_server.reset();
    return 0;
}

}  // namespace

int run_daemon(const std::string& path) {
    const auto started = std::chrono::steady_clock::now();
    Ending ending;
    int status = 0;
    try {
        status = serve(path, ending);
    } catch (const std::exception& e) {
        // Nothing expected escapes; if something does, say what, not abort().
        log_event("internal_error", {{"reason", e.what()}});
        ending.reason = std::string("internal error: ") + e.what();
        status = 70;  // EX_SOFTWARE
    }
    // The very last line, once everything of the daemon is gone.
    auto ran = std::chrono::duration_cast<std::chrono::milliseconds>(
        std::chrono::steady_clock::now() - started);
    char seconds[32];
    std::snprintf(seconds, sizeof seconds, "%.3f", static_cast<double>(ran.count()) / 1000.0);
    log_event("stopped",
              {{"reason", ending.reason},
               {"uptime_seconds", seconds},
               {"exit_status", std::to_string(status)}},
              status == 0 ? base::LogLevel::Info : base::LogLevel::Error);
    return status;
}

}  // namespace smtplb::app
