// A client session with the name lookup replaced by a table: the session
// asks for its client's address, and the first transaction carries the
// result into the tracking log; resolve_client_names = false asks nothing.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "config/loader.hpp"
#include "io/balancer.hpp"
#include "mocks/fake_client_names.hpp"
#include "tools/sink.hpp"

using namespace smtplb;
namespace asio = io::asio;

namespace {

// Sends one message, a line at a time; each reply must not be a failure.
io::awaitable<void> send_message(std::uint16_t port, bool& ok) {
    auto executor = co_await asio::this_coro::executor;
    io::tcp::socket socket(executor);
    auto [ec] =
        co_await socket.async_connect({asio::ip::make_address("127.0.0.1"), port}, io::use_nothrow);
    if (ec) co_return;
    std::string buffer;
    auto reply = [&]() -> io::awaitable<bool> {
        for (;;) {
            auto end = buffer.find("\r\n");
            if (end != std::string::npos) {
                auto line = buffer.substr(0, end);
                buffer.erase(0, end + 2);
                if (line.size() > 3 && line[3] == '-') continue;
                co_return !line.empty() && (line[0] == '2' || line[0] == '3');
            }
            char chunk[512];
            auto [rec, n] = co_await socket.async_read_some(asio::buffer(chunk), io::use_nothrow);
            if (rec) co_return false;
            buffer.append(chunk, n);
        }
    };
    bool good = co_await reply();
    for (const char* line :
         {"EHLO client.test\r\n", "MAIL FROM:<a@example.org>\r\n", "RCPT TO:<u@example.net>\r\n",
          "DATA\r\n", "Subject: t\r\n\r\nbody\r\n.\r\n", "QUIT\r\n"}) {
        if (!good) break;
        std::string text = line;
        auto [wec, written] =
            co_await asio::async_write(socket, asio::buffer(text), io::use_nothrow);
        if (wec) co_return;
        good = co_await reply();
    }
    ok = good;
}

class SessionClientNames : public ::testing::TestWithParam<bool> {
  protected:
    void SetUp() override {
        tools::SinkOptions o;
        o.listen = *base::HostPort::parse("127.0.0.1:0");
        sink = std::make_unique<tools::Sink>(io, o);
        std::string error;
        ASSERT_TRUE(sink->start(error)) << error;
        tracking = std::filesystem::temp_directory_path() /
                   ("smtplb-names-" + std::to_string(::getpid()) + ".jsonl");
        std::filesystem::remove(tracking);
        std::string text =
            "[server]\nhostname = \"lb.test\"\nstate_dir = \"/tmp\"\n"
            "tracking_log = \"" +
            tracking.string() +
            "\"\n[[listener]]\nname = \"t\"\nbind = \"127.0.0.1:0\"\n"
            "accepted_domains = [\"example.net\"]\npool = \"p\"\n"
            "resolve_client_names = " +
            (GetParam() ? "true" : "false") +
            "\n[[pool]]\nname = \"p\"\nhealth = { enabled = false }\n"
            "[[pool.backend]]\nname = \"a\"\naddress = \"127.0.0.1:" +
            std::to_string(sink->port()) + "\"\n";
        auto loaded = config::load_string(text, "test");
        ASSERT_TRUE(loaded.config) << loaded.diagnostics.format("test");
        balancer = std::make_unique<io::Balancer>(io, *loaded.config);
        names = std::make_shared<smtplb::testing::FakeClientNames>();
        names->table["127.0.0.1"] = {"client.test", "client.test"};
        balancer->use_client_names(names);
        ASSERT_TRUE(balancer->start(error)) << error;
    }
    void TearDown() override {
        balancer->stop();
        balancer->abort_sessions();
        sink->stop();
        io.restart();
        io.run_for(std::chrono::seconds(1));
        balancer.reset();
        std::filesystem::remove(tracking);
    }
    std::string tracking_text() {
        std::ifstream in(tracking);
        return std::string(std::istreambuf_iterator<char>(in), {});
    }

    io::asio::io_context io{1};
    std::unique_ptr<tools::Sink> sink;
    std::filesystem::path tracking;
    std::unique_ptr<io::Balancer> balancer;
    std::shared_ptr<smtplb::testing::FakeClientNames> names;
};

}  // namespace

TEST_P(SessionClientNames, TheFirstTransactionCarriesTheName) {
    bool ok = false;
    asio::co_spawn(
        io,
        [&]() -> io::awaitable<void> {
            co_await send_message(balancer->bound_ports().front(), ok);
            io.stop();
        },
        asio::detached);
    io.run_for(std::chrono::seconds(20));
    ASSERT_TRUE(ok);
    balancer->tracking().flush();  // written before the client's 250
    auto text = tracking_text();
    ASSERT_NE(text.find("\"result\":\"relayed\""), std::string::npos) << text;
    if (GetParam()) {
        EXPECT_EQ(names->asked["127.0.0.1"], 1);
        EXPECT_NE(text.find("\"client_name\":\"client.test\""), std::string::npos) << text;
    } else {
        EXPECT_TRUE(names->asked.empty());
        EXPECT_EQ(text.find("client_name"), std::string::npos) << text;
    }
}

INSTANTIATE_TEST_SUITE_P(ResolveClientNames, SessionClientNames, ::testing::Bool());
