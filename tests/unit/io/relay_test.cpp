// The io layer in process: a Balancer in front of built-in sinks, with the
// BackendConnector replaced by a scripted one, driven by a small client.
#include <gtest/gtest.h>

#include <memory>

#include "config/loader.hpp"
#include "io/balancer.hpp"
#include "io/sink.hpp"
#include "io/sockets.hpp"
#include "mocks/scripted_connector.hpp"
#include "proto/client_session.hpp"

using namespace smtplb;
using Step = proto::ClientSession::Step;

namespace {

struct Outcome {
    int rcpt = 0;
    int final_reply = 0;
    std::string rcpt_text;
};

// One message over one connection; records the RCPT and final reply codes.
io::awaitable<void> send_one(std::uint16_t port, Outcome& out) {
    auto executor = co_await io::asio::this_coro::executor;
    io::tcp::socket socket(executor);
    auto [ec] = co_await socket.async_connect({io::asio::ip::make_address("127.0.0.1"), port},
                                              io::use_nothrow);
    if (ec) co_return;
    proto::ClientSession smtp;
    auto next = [&]() -> io::awaitable<std::optional<proto::ClientSession::Completion>> {
        if (!smtp.output().empty()) {
            auto [wec, n] = co_await io::asio::async_write(socket, io::asio::buffer(smtp.output()),
                                                           io::use_nothrow);
            smtp.output().clear();
            if (wec) co_return std::nullopt;
        }
        for (;;) {
            auto c = smtp.next();
            if (c || smtp.failed()) co_return c;
            auto [rec, bytes] = co_await io::read_some_shared(socket);
            if (rec) co_return std::nullopt;
            smtp.feed(bytes);
        }
    };
    auto greeting = co_await next();
    smtp.send(Step::Ehlo, "EHLO test.example\r\n");
    auto ehlo = co_await next();
    smtp.send(Step::Mail, "MAIL FROM:<a@example.org>\r\n");
    auto mail = co_await next();
    smtp.send(Step::Rcpt, "RCPT TO:<u@example.net>\r\n");
    auto rcpt = co_await next();
    if (!greeting || !ehlo || !mail || !rcpt) co_return;
    out.rcpt = rcpt->reply.code;
    out.rcpt_text = rcpt->reply.summary();
    if (out.rcpt != 250) co_return;
    smtp.send(Step::Data, "DATA\r\n");
    auto data = co_await next();
    if (!data || data->reply.code != 354) co_return;
    smtp.output() += "Subject: t\r\n\r\nbody\r\n.\r\n";
    smtp.expect(Step::Message);
    auto done = co_await next();
    if (done) out.final_reply = done->reply.code;
}

class RelayWithScriptedConnector : public ::testing::Test {
  protected:
    void SetUp() override {
        for (int i = 0; i < 2; ++i) {
            io::SinkOptions o;
            o.listen = *base::HostPort::parse("127.0.0.1:0");
            sinks.push_back(std::make_unique<io::Sink>(io, o));
            std::string error;
            ASSERT_TRUE(sinks.back()->start(error)) << error;
        }
        std::string text = R"([server]
hostname = "lb.test"
tracking_log = ""
state_dir = "/tmp"
[[listener]]
name = "t"
bind = "127.0.0.1:0"
accepted_domains = ["example.net"]
pool = "p"
[[pool]]
name = "p"
health = { enabled = false }
[[pool.backend]]
name = "a"
address = "127.0.0.1:)" + std::to_string(sinks[0]->port()) +
                           R"("
[[pool.backend]]
name = "b"
address = "127.0.0.1:)" + std::to_string(sinks[1]->port()) +
                           "\"\n";
        auto loaded = config::load_string(text, "test");
        ASSERT_TRUE(loaded.config) << loaded.diagnostics.format("test");
        auto connector = std::make_unique<smtplb::testing::ScriptedConnector>();
        scripted = connector.get();
        balancer = std::make_unique<io::Balancer>(io, *loaded.config, std::move(connector));
        std::string error;
        ASSERT_TRUE(balancer->start(error)) << error;
    }

    Outcome run_one() {
        Outcome out;
        io::asio::co_spawn(
            io,
            [&]() -> io::awaitable<void> {
                co_await send_one(balancer->bound_ports().front(), out);
                io.stop();
            },
            io::asio::detached);
        io.run_for(std::chrono::seconds(20));
        return out;
    }

    void TearDown() override {
        // The shutdown order of `smtplb run`: end sessions, let them unwind
        // on the loop, then destroy the balancer before the loop.
        if (!balancer) return;
        balancer->stop();
        balancer->abort_sessions();
        for (auto& s : sinks)
            s->stop();
        io.restart();
        io.run_for(std::chrono::seconds(2));
        balancer.reset();
        sinks.clear();
    }

    io::asio::io_context io{1};
    std::vector<std::unique_ptr<io::Sink>> sinks;
    smtplb::testing::ScriptedConnector* scripted = nullptr;
    std::unique_ptr<io::Balancer> balancer;
};

}  // namespace

TEST_F(RelayWithScriptedConnector, RefusedBackendIsSkippedAndMarkedDown) {
    const auto port_a = sinks[0]->port();
    scripted->refuse_ports = {port_a};
    auto out = run_one();
    EXPECT_EQ(out.rcpt, 250);
    EXPECT_EQ(out.final_reply, 250);
    EXPECT_EQ(sinks[0]->stats().messages, 0u);
    EXPECT_EQ(sinks[1]->stats().messages, 1u);
    EXPECT_EQ(scripted->attempts[port_a], 1);
    const auto& a = balancer->pool("p")->backends()[0];
    EXPECT_EQ(a.health.state(), core::HealthState::Down);
    EXPECT_EQ(a.counters.failed, 1u);
    EXPECT_EQ(balancer->pool("p")->backends()[1].counters.delivered, 1u);
}

TEST_F(RelayWithScriptedConnector, NoBackendReachableGives451) {
    scripted->refuse_ports = {sinks[0]->port(), sinks[1]->port()};
    auto out = run_one();
    EXPECT_EQ(out.rcpt, 451);
    EXPECT_NE(out.rcpt_text.find("4.4.1"), std::string::npos);
    EXPECT_EQ(sinks[0]->stats().messages + sinks[1]->stats().messages, 0u);
}
