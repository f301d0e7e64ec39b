// Probes and connects over real loopback sockets: a built-in sink, a server
// that never speaks, a listener whose full backlog drops SYNs, and the
// health checker's rounds inside a Balancer.
#include <gtest/gtest.h>

#include "config/loader.hpp"
#include "io/backend/backend_connector.hpp"
#include "io/balancer.hpp"
#include "io/health/prober.hpp"
#include "mocks/scripted_connector.hpp"
#include "tools/sink.hpp"

using namespace smtplb;
using namespace std::chrono_literals;

namespace {

io::ProbeReport probe(io::asio::io_context& io, std::uint16_t port, proto::ProbePlan plan,
                      io::Millis timeout) {
    io::TcpConnector connector;
    io::ProbeReport report;
    base::HostPort to{"127.0.0.1", port};
    io::ProbeTls no_tls;
    io::asio::co_spawn(
        io,
        [&]() -> io::awaitable<void> {
            report =
                co_await io::run_probe(connector, to, std::nullopt, plan, timeout, true, no_tls);
            io.stop();
        },
        io::asio::detached);
    io.restart();
    io.run_for(10s);
    return report;
}

// A built-in sink on a free loopback port; nothing when it cannot start.
std::unique_ptr<tools::Sink> start_sink(io::asio::io_context& io) {
    tools::SinkOptions options;
    options.listen = {"127.0.0.1", 0};
    auto sink = std::make_unique<tools::Sink>(io, options);
    std::string error;
    if (!sink->start(error)) {
        ADD_FAILURE() << error;
        return nullptr;
    }
    return sink;
}

}  // namespace

TEST(Prober, RcptDeepProbeOfASinkIsHealthyAndEndsWithQuit) {
    io::asio::io_context io{1};
    auto sink = start_sink(io);
    ASSERT_TRUE(sink);
    auto report = probe(io, sink->port(),
                        {proto::ProbeDepth::Rcpt, "lb.test", "p@x.invalid", "pm@example.net"}, 5s);
    EXPECT_EQ(report.result.verdict, proto::ProbeVerdict::Healthy) << report.result.reason;
    EXPECT_EQ(report.result.step, "rcpt");
    ASSERT_FALSE(report.transcript.empty());
    bool quit = false;
    for (const auto& line : report.transcript)
        quit |= line.event.text == "QUIT";
    EXPECT_TRUE(quit);
    sink->stop();
}

TEST(Prober, SilentServerTimesOutAsDown) {
    io::asio::io_context io{1};
    io::tcp::acceptor acceptor(io, {io::asio::ip::make_address("127.0.0.1"), 0});
    io::tcp::socket held(io);
    acceptor.async_accept(held, [](const io::error_code&) {});  // accepts, never speaks
    auto report = probe(io, acceptor.local_endpoint().port(),
                        {proto::ProbeDepth::Banner, "lb", "", ""}, 300ms);
    EXPECT_EQ(report.result.verdict, proto::ProbeVerdict::Down);
    EXPECT_NE(report.result.reason.find("timeout waiting for the banner"), std::string::npos)
        << report.result.reason;
}

TEST(TcpConnector, ConnectTimeoutIsReportedAsTimedOut) {
    io::asio::io_context io{1};
    // A listener with a full backlog of one: further SYNs are dropped, so a
    // connect hangs until its timeout.
    io::tcp::acceptor acceptor(io);
    io::tcp::endpoint endpoint(io::asio::ip::make_address("127.0.0.1"), 0);
    acceptor.open(endpoint.protocol());
    acceptor.bind(endpoint);
    acceptor.listen(0);
    io::tcp::socket filler(io);
    filler.connect(acceptor.local_endpoint());
    io::TcpConnector connector;
    io::error_code result;
    base::HostPort to{"127.0.0.1", acceptor.local_endpoint().port()};
    io::asio::co_spawn(
        io,
        [&]() -> io::awaitable<void> {
            auto [ec, socket] = co_await connector.connect(to, std::nullopt, 200ms);
            result = ec;
            io.stop();
        },
        io::asio::detached);
    io.run_for(10s);
    EXPECT_EQ(result, io::asio::error::timed_out) << result.message();
}

// Probe rounds counted through the connector: drain keeps probing,
// maintenance stops it, enable probes again at once; a refused backend goes
// down after `fall` probes.
TEST(HealthChecker, ProbesFollowAdminStatesAndFall) {
    io::asio::io_context io{1};
    auto sink = start_sink(io);
    ASSERT_TRUE(sink);
    const auto up = std::to_string(sink->port());
    auto loaded = config::load_string(R"([server]
tracking_log = ""
state_dir = "/tmp"
admin = ""
[[listener]]
name = "t"
bind = "127.0.0.1:0"
accepted_domains = ["example.net"]
pool = "p"
[[pool]]
name = "p"
health = { depth = "mail", interval = "100ms", down_interval = "100ms", fall = 2 }
[[pool.backend]]
name = "a"
address = "127.0.0.1:)" + up + R"("
[[pool.backend]]
name = "refused"
address = "127.0.0.1:1"
)",
                                      "test");
    ASSERT_TRUE(loaded.config) << loaded.diagnostics.format("test");
    std::string error;
    auto connector = std::make_unique<smtplb::testing::ScriptedConnector>();
    auto* scripted = connector.get();
    scripted->refuse_ports = {1};
    std::vector<std::string> log;
    io::Balancer balancer(io, *loaded.config, std::move(connector));
    balancer.set_event_log([&](const std::string& line) { log.push_back(line); });
    ASSERT_TRUE(balancer.start(error)) << error;
    auto run = [&](std::chrono::milliseconds d) {
        io.restart();
        io.run_for(d);
    };
    const auto port = sink->port();

    run(1500ms);
    EXPECT_GE(scripted->attempts[port], 5);  // ~14 rounds; a loose floor for slow machines
    auto* pool = balancer.pool("p");
    EXPECT_EQ(pool->backend(1).health.state(), core::HealthState::Down);
    ASSERT_FALSE(log.empty());
    EXPECT_NE(log[0].find("backend=refused from=up to=down source=probe observations=2"),
              std::string::npos)
        << log[0];

    ASSERT_TRUE(balancer.set_backend_state("p", "a", core::AdminState::Drain, error));
    scripted->attempts.clear();
    run(500ms);
    EXPECT_GE(scripted->attempts[port], 2);  // drained, still probed

    ASSERT_TRUE(balancer.set_backend_state("p", "a", core::AdminState::Maintenance, error));
    run(200ms);  // a probe in flight may still finish
    scripted->attempts.clear();
    run(500ms);
    EXPECT_EQ(scripted->attempts[port], 0);  // maintenance: not probed

    ASSERT_TRUE(balancer.set_backend_state("p", "a", core::AdminState::Enabled, error));
    EXPECT_EQ(pool->backend(0).health.state(), core::HealthState::Down);  // must prove itself
    run(500ms);
    EXPECT_GE(scripted->attempts[port], 2);
    EXPECT_EQ(pool->backend(0).health.state(), core::HealthState::Up);
    EXPECT_FALSE(balancer.set_backend_state("p", "nosuch", core::AdminState::Drain, error));
    EXPECT_NE(error.find("no backend named"), std::string::npos);

    // Stopped, it winds down to nothing running (what a reload waits for).
    balancer.stop();
    run(500ms);
    EXPECT_EQ(balancer.health().probes_in_flight(), 0u);
    EXPECT_TRUE(balancer.finished());
    sink->stop();
    io.restart();
    io.run_for(500ms);
}

// A backend that accepts and never speaks holds a probe until its timeout;
// stopping the generation ends that probe at once, so a reload's release or
// the daemon's exit does not wait for it (its task group empties).
TEST(HealthChecker, StopEndsAProbeInFlightAtOnce) {
    io::asio::io_context io{1};
    io::tcp::acceptor acceptor(io, {io::asio::ip::make_address("127.0.0.1"), 0});
    io::tcp::socket held(io);
    acceptor.async_accept(held, [](const io::error_code&) {});  // accepts, never speaks
    const auto port = std::to_string(acceptor.local_endpoint().port());
    auto loaded = config::load_string(R"([server]
tracking_log = ""
state_dir = "/tmp"
admin = ""
[[listener]]
name = "t"
bind = "127.0.0.1:0"
accepted_domains = ["example.net"]
pool = "p"
[[pool]]
name = "p"
health = { depth = "banner", interval = "100ms", timeout = "60s" }
[[pool.backend]]
name = "silent"
address = "127.0.0.1:)" + port + "\"\n",
                                      "test");
    ASSERT_TRUE(loaded.config) << loaded.diagnostics.format("test");
    io::Balancer balancer(io, *loaded.config);
    std::string error;
    ASSERT_TRUE(balancer.start(error)) << error;
    auto run_until = [&](auto done, std::chrono::milliseconds limit) {
        auto until = std::chrono::steady_clock::now() + limit;
        io.restart();
        while (!done() && std::chrono::steady_clock::now() < until)
            io.run_for(10ms);
        return done();
    };
    ASSERT_TRUE(run_until([&] { return held.is_open(); }, 5s));  // the probe connected
    EXPECT_EQ(balancer.health().probes_in_flight(), 1u);
    const auto stopped_at = std::chrono::steady_clock::now();
    balancer.stop();
    EXPECT_TRUE(run_until([&] { return balancer.finished(); }, 10s));
    EXPECT_LT(std::chrono::steady_clock::now() - stopped_at, 10s);  // not the 60 s timeout
    EXPECT_EQ(balancer.health().probes_in_flight(), 0u);
    EXPECT_EQ(balancer.pool("p")->backend(0).health.state(), core::HealthState::Up);
}
