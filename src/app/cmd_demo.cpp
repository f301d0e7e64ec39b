#include <unistd.h>

#include <cstdio>
#include <iostream>
#include <memory>
#include <vector>

#include "commands.hpp"
#include "config/loader.hpp"
#include "demo_client.hpp"
#include "io/balancer.hpp"
#include "tools/sink.hpp"

namespace smtplb::app {
namespace {

// The embedded configuration; @PORTn@ become the built-in sinks' ports.
constexpr const char* kDemoConfig = R"(
[server]
hostname = "demo.smtplb.invalid"
state_dir = "/tmp"
tracking_log = ""

[[listener]]
name = "internet"
bind = "127.0.0.1:0"
role = "inbound"
accepted_domains = ["example.net"]
pool = "hubs"
client_identity = "xclient"
# The demo's clients are on loopback: no DNS lookups of their names.
resolve_client_names = false

[[pool]]
name = "hubs"
algorithm = "round_robin"

[[pool.backend]]
name = "hub1"
address = "127.0.0.1:@PORT1@"

[[pool.backend]]
name = "hub2"
address = "127.0.0.1:@PORT2@"

[[pool.backend]]
name = "hub3"
address = "127.0.0.1:@PORT3@"
)";

std::string bar(std::uint64_t n, std::uint64_t total, int width) {
    int filled = total ? static_cast<int>(n * width / total) : 0;
    return std::string(filled, '#') + std::string(width - filled, '.');
}

}  // namespace

int run_demo(int messages) {
    io::asio::io_context io(1);
    std::vector<std::unique_ptr<tools::Sink>> sinks;
    std::string text = kDemoConfig, error;
    for (int i = 1; i <= 3; ++i) {
        tools::SinkOptions options;
        options.listen = *base::HostPort::parse("127.0.0.1:0");
        options.hostname = "hub" + std::to_string(i) + ".demo.invalid";
        auto sink = std::make_unique<tools::Sink>(io, options);
        if (!sink->start(error)) {
            std::cerr << "demo: " << error << "\n";
            return 1;
        }
        auto marker = "@PORT" + std::to_string(i) + "@";
        text.replace(text.find(marker), marker.size(), std::to_string(sink->port()));
        sinks.push_back(std::move(sink));
    }
    auto loaded = config::load_string(text, "demo");
    if (!loaded.config) {
        std::cerr << loaded.diagnostics.format("demo");
        return 1;
    }
    auto balancer = std::make_unique<io::Balancer>(io, *loaded.config);
    if (!balancer->start(error)) {
        std::cerr << "demo: " << error << "\n";
        return 1;
    }
    auto port = balancer->bound_ports().front();
    std::cout << "smtplb demo: balancer on 127.0.0.1:" << port
              << " in front of three built-in sinks\n"
              << "One client connection (like a filtering appliance) sends " << messages
              << " messages; smtplb chooses a backend for each message.\n\n";

    auto* pool = balancer->pool("hubs");
    const bool tty = ::isatty(STDOUT_FILENO);
    auto show = [&](int sent) {
        std::cout << (tty ? "\r" : "") << "sent " << sent << "/" << messages << "  ";
        for (const auto& b : pool->backends())
            std::cout << b.config.name << " [" << bar(b.counters.delivered, sent, 20) << "] "
                      << b.counters.delivered << "  ";
        std::cout << (tty ? "" : "\n") << std::flush;
    };
    DemoOutcome outcome;
    // A named object, not a braced temporary: GCC 12 destroys braced
    // temporaries passed to coroutines twice.
    DemoTraffic traffic;
    traffic.messages = messages;
    io::asio::co_spawn(
        io,
        [&]() -> io::awaitable<void> {
            outcome = co_await send_over_one_connection(port, traffic, [&](int sent) {
                if (sent % std::max(1, messages / (tty ? 100 : 5)) == 0 || sent == messages)
                    show(sent);
            });
            balancer->stop();
            for (auto& s : sinks)
                s->stop();
        },
        io::asio::detached);
    io.run();
    std::cout << "\n\n";
    if (!outcome.error.empty()) std::cout << "client error: " << outcome.error << "\n";
    std::printf("%-6s %-22s %9s %7s %s\n", "backend", "address", "messages", "share",
                "client seen by backend");
    std::uint64_t total = 0;
    for (const auto& s : sinks)
        total += s->stats().messages;
    for (std::size_t i = 0; i < sinks.size(); ++i) {
        const auto& b = pool->backends()[i];
        auto n = sinks[i]->stats().messages;
        std::printf("%-7s %-22s %9llu %6.1f%% %s\n", b.config.name.c_str(),
                    b.config.address.to_string().c_str(), static_cast<unsigned long long>(n),
                    total ? 100.0 * n / total : 0.0, sinks[i]->stats().last_client.c_str());
    }
    std::printf("\naccepted %d, refused %d, received by backends %llu\n", outcome.accepted,
                outcome.refused, static_cast<unsigned long long>(total));
    balancer->cache().set_closing();
    return outcome.error.empty() && outcome.accepted == messages ? 0 : 1;
}

}  // namespace smtplb::app
