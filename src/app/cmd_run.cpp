#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <functional>
#include <thread>
#include <vector>

#include "admin/http_server.hpp"
#include "base/log_line.hpp"
#include "base/text.hpp"
#include "commands.hpp"
#include "config/loader.hpp"
#include "io/balancer.hpp"
#include "systemd.hpp"

namespace smtplb::app {

namespace {

// One structured (logfmt) line on stderr, which systemd puts in the journal.
void log_event(const std::string& event,
               std::initializer_list<std::pair<const char*, std::string>> fields) {
    std::string line = "event=" + event;
    for (const auto& [key, value] : fields)
        line += std::string(" ") + key + "=" + base::logfmt_value(value);
    base::log_line(line);
}

// The running daemon: the current configuration generation, and the ones a
// reload replaced, kept until their last transaction is over.
struct Daemon {
    std::string path;
    io::asio::io_context& io;
    io::EventLoops& loops;
    std::unique_ptr<io::Balancer> current;
    std::vector<std::unique_ptr<io::Balancer>> retiring;
    std::unique_ptr<admin::HttpServer> admin_server;
    bool reaping = false;

    admin::ReloadOutcome reload();
    admin::ReloadOutcome reload_now();
    io::awaitable<void> reap();
};

admin::ReloadOutcome Daemon::reload() {
    notify_systemd("RELOADING=1");
    auto outcome = reload_now();
    notify_systemd("READY=1\nSTATUS=" +
                   std::string(outcome.ok ? "reloaded" : "reload refused; running as before"));
    return outcome;
}

admin::ReloadOutcome Daemon::reload_now() {
    auto loaded = config::load_file(path);
    if (!loaded.config) {
        auto reasons = loaded.diagnostics.format(path);
        base::write_line(STDERR_FILENO, reasons);
        log_event(
            "reload_refused",
            {{"file", path}, {"reason", "not valid; the running configuration is unchanged"}});
        return {false, reasons};
    }
    // Validate against the running daemon too: bind, state_dir, tracking log.
    auto next = std::make_unique<io::Balancer>(io, *loaded.config, nullptr, current.get(), &loops);
    std::string error;
    if (!next->start(error, current.get())) {
        log_event("reload_refused",
                  {{"file", path}, {"reason", error + "; the running configuration is unchanged"}});
        return {false, error};
    }
    const auto& old_admin = current->config().server.admin;
    if (loaded.config->server.admin != old_admin)
        log_event("admin_unchanged",
                  {{"address", old_admin},
                   {"reason", "server.admin changes take effect at the next start"}});
    loops.set_busy_poll(std::chrono::microseconds(loaded.config->server.busy_poll_us));
    if (loaded.config->server.threads != loops.size())
        log_event("threads_unchanged",
                  {{"threads", std::to_string(loops.size())},
                   {"reason", "server.threads changes take effect at the next start"}});
    // The old generation takes no new connections; its sessions go on with
    // the old configuration until their clients end them.
    current->retire();
    retiring.push_back(std::move(current));
    current = std::move(next);
    if (admin_server) admin_server->set_balancer(*current);
    auto ports = current->bound_ports();
    std::string summary = "reloaded " + path + ": " + std::to_string(ports.size()) +
                          " listeners, " + std::to_string(current->pools().size()) + " pools";
    log_event("reloaded", {{"file", path},
                           {"listeners", std::to_string(ports.size())},
                           {"pools", std::to_string(current->pools().size())}});
    if (!reaping) {
        reaping = true;
        io::asio::co_spawn(io, reap(), io::asio::detached);
    }
    return {true, summary};
}

// Stops replaced generations once their last session has ended, and
// destroys them once nothing of theirs runs, and a little later still:
// their timers (tracking-log flush, deadlines) end within that.
io::awaitable<void> Daemon::reap() {
    io::asio::steady_timer tick(io);
    while (!retiring.empty()) {
        tick.expires_after(std::chrono::milliseconds(500));
        co_await tick.async_wait(io::use_nothrow);
        std::vector<const io::Balancer*> done;
        for (const auto& b : retiring) {
            if (b->active_sessions() == 0) b->stop();  // probes and idle connections end
            if (b->stopped() && b->finished()) done.push_back(b.get());
        }
        if (done.empty()) continue;
        tick.expires_after(std::chrono::seconds(2));
        co_await tick.async_wait(io::use_nothrow);
        // By identity: a reload during the wait may have added to the list.
        std::erase_if(retiring, [&](const auto& b) {
            return std::find(done.begin(), done.end(), b.get()) != done.end();
        });
        log_event("previous_configuration_released",
                  {{"count", std::to_string(done.size())},
                   {"still_running", std::to_string(retiring.size())}});
    }
    reaping = false;
}

// Every connection is a descriptor (two in TCP mode, and backend connections
// besides): the soft limit, often 1024, goes up to the hard one, and the
// administrator hears when the listeners' max_connections cannot all fit.
void raise_file_limit(const config::Config& config) {
    rlimit limit{};
    if (::getrlimit(RLIMIT_NOFILE, &limit) != 0) return;
    if (limit.rlim_cur < limit.rlim_max) {
        rlimit raised = limit;
        raised.rlim_cur = limit.rlim_max;
        if (::setrlimit(RLIMIT_NOFILE, &raised) == 0) limit = raised;
    }
    std::uint64_t wanted = 64;  // listeners, admin, logs, spool
    for (const auto& l : config.listeners)
        wanted += std::uint64_t(l.max_connections) * (l.mode == config::ListenerMode::Tcp ? 2 : 1);
    if (limit.rlim_cur != RLIM_INFINITY && wanted > limit.rlim_cur)
        log_event("file_limit_low",
                  {{"limit", std::to_string(limit.rlim_cur)},
                   {"wanted", std::to_string(wanted)},
                   {"hint", "raise LimitNOFILE (systemd) or ulimit -n, or lower max_connections"}});
}

}  // namespace

int run_daemon(const std::string& path) {
    auto result = config::load_file(path);
    base::write_line(STDERR_FILENO, result.diagnostics.format(path));
    if (!result.config) {
        base::write_line(STDERR_FILENO, path + ": configuration is not valid; not starting");
        return 1;
    }
    raise_file_limit(*result.config);
    auto io = std::make_unique<io::asio::io_context>(1);
    // Registered before anything listens: a signal sent as soon as the port
    // answers is queued for its handler, not default-handled (SIGHUP would
    // kill the process).
    io::asio::signal_set signals(*io, SIGINT, SIGTERM);
    io::asio::signal_set hangup(*io, SIGHUP);
    // Declared before the daemon: the balancers' sockets and timers belong
    // to these loops, so the balancers are destroyed first.
    io::EventLoops loops(*io, result.config->server.threads);
    loops.set_busy_poll(std::chrono::microseconds(result.config->server.busy_poll_us));
    Daemon daemon{
        path,  *io,
        loops, std::make_unique<io::Balancer>(*io, *result.config, nullptr, nullptr, &loops),
        {},    {}};
    std::string error;
    if (!daemon.current->start(error)) {
        log_event("start_failed", {{"reason", error}});
        return 1;
    }
    if (const auto& bind = result.config->server.admin_bind) {
        daemon.admin_server = std::make_unique<admin::HttpServer>(
            *daemon.current, *bind, [&daemon] { return daemon.reload(); });
        if (!daemon.admin_server->start(error)) {
            log_event("start_failed", {{"reason", error}});
            return 1;
        }
        log_event(
            "admin_listening",
            {{"address", base::HostPort{bind->host, daemon.admin_server->port()}.to_string()}});
    }
    auto ports = daemon.current->bound_ports();
    for (std::size_t i = 0; i < ports.size(); ++i)
        log_event("listening", {{"listener", result.config->listeners[i].name},
                                {"port", std::to_string(ports[i])}});
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

    auto all = [&daemon](auto f) {
        f(*daemon.current);
        for (auto& b : daemon.retiring)
            f(*b);
    };
    signals.async_wait([&](const io::error_code& ec, int signo) {
        if (ec) return;
        log_event("stopping", {{"signal", std::to_string(signo)}});
        notify_systemd("STOPPING=1");
        if (daemon.admin_server) daemon.admin_server->stop();
        all([](io::Balancer& b) { b.stop(); });
        // Idle sessions are told 421 4.3.2 at once; those in a transaction
        // get server.shutdown_grace to finish it. Stop as soon as none is left.
        const auto grace = daemon.current->config().server.shutdown_grace;
        io::asio::co_spawn(
            *io,
            [&, grace]() -> io::awaitable<void> {
                io::asio::steady_timer tick(*io);
                auto until = std::chrono::steady_clock::now() + grace;
                auto sessions = [&] {
                    std::size_t n = 0;
                    all([&](io::Balancer& b) { n += b.active_sessions(); });
                    return n;
                };
                while (sessions() > 0 && std::chrono::steady_clock::now() < until) {
                    tick.expires_after(std::chrono::milliseconds(50));
                    co_await tick.async_wait(io::use_nothrow);
                }
                // Past the grace period: end what is left, then let it unwind.
                all([](io::Balancer& b) { b.abort_sessions(); });
                tick.expires_after(std::chrono::milliseconds(200));
                co_await tick.async_wait(io::use_nothrow);
                io->stop();
            },
            io::asio::detached);
    });
    // SIGHUP reloads: a file that does not validate changes nothing.
    std::function<void(const io::error_code&, int)> on_hangup = [&](const io::error_code& ec, int) {
        if (ec) return;
        daemon.reload();
        hangup.async_wait(on_hangup);
    };
    hangup.async_wait(on_hangup);
    ::signal(SIGPIPE, SIG_IGN);
    loops.start();
    loops.run_main();
    // Anything still suspended unwinds now. Then, by scope: the signal sets,
    // the admin server, the balancers, and last the loop their sockets
    // belong to.
    signals.cancel();
    hangup.cancel();
    if (watchdog) watchdog->cancel();
    all([](io::Balancer& b) { b.abort_sessions(); });
    // Up to two seconds for them to unwind, on every loop. This one keeps
    // running meanwhile: sessions reach the spool and AUTH through it.
    loops.release();
    io->restart();
    const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(2);
    bool main_done = false;
    while (std::chrono::steady_clock::now() < until && !(main_done && loops.all_ended())) {
        main_done = io->run_for(std::chrono::milliseconds(20)) == 0 && io->stopped();
        if (main_done) {
            io->restart();
            std::this_thread::sleep_for(std::chrono::milliseconds(10));
        }
    }
    loops.stop();
    all([](io::Balancer& b) { b.tracking().flush(); });
    daemon.admin_server.reset();
    daemon.retiring.clear();
    daemon.current.reset();
    return 0;
}

}  // namespace smtplb::app
