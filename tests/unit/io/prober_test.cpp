// Probes and connects over real loopback sockets: a built-in sink, a server
// that never speaks, and a listener whose full backlog drops SYNs.
#include <gtest/gtest.h>

#include "io/backend_connector.hpp"
#include "io/prober.hpp"
#include "io/sink.hpp"

using namespace smtplb;
using namespace std::chrono_literals;

namespace {

io::ProbeReport probe(io::asio::io_context& io, std::uint16_t port, proto::ProbePlan plan,
                      io::Millis timeout) {
    io::TcpConnector connector;
    io::ProbeReport report;
    base::HostPort to{"127.0.0.1", port};
    io::asio::co_spawn(
        io,
        [&]() -> io::awaitable<void> {
            report = co_await io::run_probe(connector, to, std::nullopt, plan, timeout, true);
            io.stop();
        },
        io::asio::detached);
    io.restart();
    io.run_for(10s);
    return report;
}

}  // namespace

TEST(Prober, RcptDeepProbeOfASinkIsHealthyAndEndsWithQuit) {
    io::asio::io_context io{1};
    io::SinkOptions options;
    options.listen = {"127.0.0.1", 0};
    io::Sink sink(io, options);
    std::string error;
    ASSERT_TRUE(sink.start(error)) << error;
    auto report = probe(io, sink.port(),
                        {proto::ProbeDepth::Rcpt, "lb.test", "p@x.invalid", "pm@example.net"}, 5s);
    EXPECT_EQ(report.result.verdict, proto::ProbeVerdict::Healthy) << report.result.reason;
    EXPECT_EQ(report.result.step, "rcpt");
    ASSERT_FALSE(report.transcript.empty());
    bool quit = false;
    for (const auto& line : report.transcript)
        quit |= line.event.text == "QUIT";
    EXPECT_TRUE(quit);
    sink.stop();
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
