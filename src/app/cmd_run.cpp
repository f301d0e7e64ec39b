#include <functional>
#include <iostream>

#include "admin/http_server.hpp"
#include "commands.hpp"
#include "config/loader.hpp"
#include "io/balancer.hpp"

namespace smtplb::app {

int run_daemon(const std::string& path) {
    auto result = config::load_file(path);
    std::cerr << result.diagnostics.format(path);
    if (!result.config) {
        std::cerr << path << ": configuration is not valid; not starting\n";
        return 1;
    }
    auto io = std::make_unique<io::asio::io_context>(1);
    auto balancer = std::make_unique<io::Balancer>(*io, *result.config);
    std::string error;
    if (!balancer->start(error)) {
        std::cerr << "smtplb: " << error << "\n";
        return 1;
    }
    std::unique_ptr<admin::HttpServer> admin_server;
    if (const auto& bind = result.config->server.admin_bind) {
        admin_server = std::make_unique<admin::HttpServer>(*balancer, *bind);
        if (!admin_server->start(error)) {
            std::cerr << "smtplb: " << error << "\n";
            return 1;
        }
        std::cerr << "smtplb: admin API on " << bind->host << ":" << admin_server->port() << "\n";
    }
    auto ports = balancer->bound_ports();
    for (std::size_t i = 0; i < ports.size(); ++i)
        std::cerr << "smtplb: listener " << result.config->listeners[i].name << " on port "
                  << ports[i] << "\n";

    const auto grace = result.config->server.shutdown_grace;
    io::asio::signal_set signals(*io, SIGINT, SIGTERM);
    signals.async_wait([&](const io::error_code& ec, int signo) {
        if (ec) return;
        std::cerr << "smtplb: signal " << signo << ", stopping\n";
        if (admin_server) admin_server->stop();
        balancer->stop();
        // Idle sessions are told 421 4.3.2 at once; those in a transaction
        // get server.shutdown_grace to finish it. Stop as soon as none is left.
        io::asio::co_spawn(
            *io,
            [&]() -> io::awaitable<void> {
                io::asio::steady_timer tick(*io);
                auto until = std::chrono::steady_clock::now() + grace;
                while (balancer->active_sessions() > 0 &&
                       std::chrono::steady_clock::now() < until) {
                    tick.expires_after(std::chrono::milliseconds(50));
                    co_await tick.async_wait(io::use_nothrow);
                }
                // Past the grace period: end what is left, then let it unwind.
                balancer->abort_sessions();
                tick.expires_after(std::chrono::milliseconds(200));
                co_await tick.async_wait(io::use_nothrow);
                io->stop();
            },
            io::asio::detached);
    });
    // Reload is not implemented yet: SIGHUP must not kill the daemon.
    io::asio::signal_set hangup(*io, SIGHUP);
    std::function<void(const io::error_code&, int)> on_hangup = [&](const io::error_code& ec, int) {
        if (ec) return;
        std::cerr << "smtplb: SIGHUP: reload is not implemented yet; configuration unchanged\n";
        hangup.async_wait(on_hangup);
    };
    hangup.async_wait(on_hangup);
    ::signal(SIGPIPE, SIG_IGN);
    io->run();
    // Anything still suspended unwinds now. Then, by scope: the signal set,
    // the balancer, and last the loop their sockets belong to.
    signals.cancel();
    hangup.cancel();
    balancer->abort_sessions();
    io->restart();
    io->run_for(std::chrono::seconds(2));
    balancer->tracking().flush();
    return 0;
}

}  // namespace smtplb::app
