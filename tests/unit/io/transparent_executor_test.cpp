// Transparent mode in process: a Balancer whose listener has
// client_identity = "transparent", in front of built-in sinks, with the
// BackendConnector replaced by a scripted one that records where each
// connection was to come from (127.0.0.0/8 is local, so no privilege is needed).
#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <cstdio>
#include <fstream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "config/loader.hpp"
#include "io/balancer.hpp"
#include "mocks/scripted_connector.hpp"
#include "tools/sink.hpp"

using namespace smtplb;

namespace {

// One reply (all its lines) from a blocking socket.
std::string read_reply(io::tcp::socket& s, io::asio::streambuf& buffer) {
    std::string reply;
    for (;;) {
        io::error_code ec;
        io::asio::read_until(s, buffer, "\r\n", ec);
        if (ec) return reply + "(closed)";
        std::istream in(&buffer);
        std::string line;
        std::getline(in, line);
        reply += line + "\n";
        if (line.size() < 4 || line[3] != '-') return reply;
    }
}

// `messages` messages over one connection from `source`: each final reply's code.
std::vector<int> converse(std::uint16_t port, const std::string& source, int messages) {
    io::asio::io_context ctx;
    io::tcp::socket s(ctx);
    s.open(io::tcp::v4());
    s.bind({io::asio::ip::make_address(source), 0});
    s.connect({io::asio::ip::make_address("127.0.0.1"), port});
    io::asio::streambuf buffer;
    auto say = [&](const std::string& line) {
        io::asio::write(s, io::asio::buffer(line));
        return read_reply(s, buffer);
    };
    std::vector<int> codes;
    read_reply(s, buffer);
    say("EHLO " + source + ".example\r\n");
    for (int i = 0; i < messages; ++i) {
        say("MAIL FROM:<a@example.org>\r\n");
        say("RCPT TO:<u@example.net>\r\n");
        say("DATA\r\n");
        auto done = say("Subject: t\r\n\r\nbody\r\n.\r\n");
        codes.push_back(std::atoi(done.c_str()));
    }
    say("QUIT\r\n");
    return codes;
}

class TransparentRelay : public ::testing::Test {
  protected:
    void SetUp() override {
        for (int i = 0; i < 2; ++i) {
            tools::SinkOptions o;
            o.listen = *base::HostPort::parse("127.0.0.1:0");
            o.record_path = record_path(i);
            sinks.push_back(std::make_unique<tools::Sink>(io, o));
            std::string error;
            ASSERT_TRUE(sinks.back()->start(error)) << error;
        }
        // c: IPv6, never reachable from these IPv4 clients' own addresses.
        std::string text = R"([server]
hostname = "lb.test"
tracking_log = ""
state_dir = "/tmp"
[[listener]]
name = "t"
bind = "127.0.0.1:0"
accepted_domains = ["example.net"]
pool = "p"
client_identity = "transparent"
resolve_client_names = false
[[pool]]
name = "p"
health = { enabled = false }
)" + pool_extra() + R"(
[[pool.backend]]
name = "a"
address = "127.0.0.1:)" + std::to_string(sinks[0]->port()) +
                           R"("
[[pool.backend]]
name = "b"
address = "127.0.0.1:)" + std::to_string(sinks[1]->port()) +
                           R"("
[[pool.backend]]
name = "c"
address = "[::1]:9"
)";
        auto loaded = config::load_string(text, "test");
        ASSERT_TRUE(loaded.config) << loaded.diagnostics.format("test");
        auto connector = std::make_unique<smtplb::testing::ScriptedConnector>();
        scripted = connector.get();
        balancer = std::make_unique<io::Balancer>(io, *loaded.config, std::move(connector));
        std::string error;
        ASSERT_TRUE(balancer->start(error)) << error;
    }

    virtual std::string pool_extra() const { return ""; }

    std::vector<int> run_client(const std::string& source, int messages) {
        std::vector<int> codes;
        std::thread client([&] {
            codes = converse(balancer->bound_ports().front(), source, messages);
            io.stop();
        });
        io.restart();
        io.run_for(std::chrono::seconds(20));
        client.join();
        return codes;
    }
    std::string record_path(int sink) const {
        return ::testing::TempDir() + "transparent_test_sink" + std::to_string(::getpid()) + "_" +
               std::to_string(sink) + ".jsonl";
    }
    std::vector<std::string> recorded_clients() const {
        std::vector<std::string> out;
        for (int i = 0; i < 2; ++i) {
            std::ifstream in(record_path(i));
            for (std::string line; std::getline(in, line);)
                out.emplace_back(boost::json::parse(line).as_object().at("client").as_string());
        }
        std::sort(out.begin(), out.end());
        return out;
    }

    void TearDown() override {
        if (!balancer) return;
        balancer->stop();
        balancer->abort_sessions();
        for (auto& s : sinks)
            s->stop();
        io.restart();
        io.run_for(std::chrono::seconds(2));
        balancer.reset();
        sinks.clear();
        for (int i = 0; i < 2; ++i)
            std::remove(record_path(i).c_str());
    }

    io::asio::io_context io{1};
    std::vector<std::unique_ptr<tools::Sink>> sinks;
    smtplb::testing::ScriptedConnector* scripted = nullptr;
    std::unique_ptr<io::Balancer> balancer;
};

}  // namespace

TEST_F(TransparentRelay, EachConnectionComesFromItsOwnClientsAddress) {
    std::vector<std::string> expected;
    std::size_t connects_before = 0;
    int session = 0;
    for (const char* source : {"127.0.0.5", "127.0.0.6", "127.0.0.5"}) {
        EXPECT_EQ(run_client(source, 3), (std::vector<int>{250, 250, 250})) << source;
        for (int i = 0; i < 3; ++i)
            expected.push_back(source);
        // A connection from one client's address never carries another's
        // mail; kept idle, it serves that client's next session.
        if (++session < 3)
            EXPECT_GT(scripted->origins.size(), connects_before) << source;
        else
            EXPECT_EQ(scripted->origins.size(), connects_before) << "reused for " << source;
        for (std::size_t i = connects_before; i < scripted->origins.size(); ++i) {
            const auto& from = scripted->origins[i].second;
            EXPECT_TRUE(from.transparent);
            ASSERT_TRUE(from.address);
            EXPECT_EQ(from.address->to_string(), source);
            EXPECT_EQ(from.port, 0);
        }
        connects_before = scripted->origins.size();
    }
    std::sort(expected.begin(), expected.end());
    // The sinks saw each client as the peer (no XCLIENT was sent).
    EXPECT_EQ(recorded_clients(), expected);
}

TEST_F(TransparentRelay, ABackendOfAnotherFamilyIsPassedOverUnjudged) {
    for (int round = 0; round < 3; ++round)
        EXPECT_EQ(run_client("127.0.0.7", 2), (std::vector<int>{250, 250}));
    EXPECT_EQ(scripted->attempts[9], 0);
    const auto& c = balancer->pool("p")->backends()[2];
    EXPECT_EQ(c.health.state(), core::HealthState::Up);
    EXPECT_EQ(c.counters.failed, 0u);
    EXPECT_EQ(sinks[0]->stats().messages + sinks[1]->stats().messages, 6u);
}

namespace {
class TransparentRelayOneIdle : public TransparentRelay {
  protected:
    std::string pool_extra() const override { return "max_idle_connections = 1"; }
};
}  // namespace

TEST_F(TransparentRelayOneIdle, IdleConnectionsPerBackendAreBoundedOverAllClientAddresses) {
    // .5 leaves one idle connection per backend; .6's, newer, take the one
    // place per backend, so .5's next session finds nothing of its own.
    EXPECT_EQ(run_client("127.0.0.5", 2), (std::vector<int>{250, 250}));
    EXPECT_EQ(run_client("127.0.0.6", 2), (std::vector<int>{250, 250}));
    const auto before = scripted->origins.size();
    EXPECT_EQ(run_client("127.0.0.5", 2), (std::vector<int>{250, 250}));
    EXPECT_GT(scripted->origins.size(), before);
    // Now .5's are the newest and stay: its next session opens nothing.
    const auto after = scripted->origins.size();
    EXPECT_EQ(run_client("127.0.0.5", 1), (std::vector<int>{250}));
    EXPECT_EQ(scripted->origins.size(), after);
}
