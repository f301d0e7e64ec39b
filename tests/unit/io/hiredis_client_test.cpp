// The hiredis client on the Asio loop against a real redis-server (Debian's
// package; skipped when it is not installed): commands and their
// deadlines, the subscription, losing Redis and reconnecting.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>

#include "io/cluster/hiredis_client.hpp"

using namespace smtplb;
using namespace std::chrono_literals;

namespace {

std::uint16_t free_port() {
    io::asio::io_context io;
    io::tcp::acceptor a(io, io::tcp::endpoint(io::asio::ip::make_address("127.0.0.1"), 0));
    return a.local_endpoint().port();
}

// One redis-server on a loopback port, in a directory of its own.
struct RedisServer {
    explicit RedisServer(std::uint16_t port) : port(port) { start(); }
    ~RedisServer() { stop(); }
    void start() {
        pid = ::fork();
        if (pid == 0) {
            auto p = std::to_string(port);
            ::execlp("redis-server", "redis-server", "--port", p.c_str(), "--bind", "127.0.0.1",
                     "--save", "", "--appendonly", "no", "--dir", "/tmp", "--loglevel", "warning",
                     static_cast<char*>(nullptr));
            ::_exit(127);
        }
    }
    void stop() {
        if (pid <= 0) return;
        ::kill(pid, SIGCONT);
        ::kill(pid, SIGKILL);
        ::waitpid(pid, nullptr, 0);
        pid = -1;
    }
    std::uint16_t port;
    pid_t pid = -1;
};

bool have_redis() {
    return std::system("command -v redis-server >/dev/null 2>&1") == 0;
}

struct HiredisTest : ::testing::Test {
    void SetUp() override {
        if (!have_redis()) GTEST_SKIP() << "redis-server is not installed";
        port = free_port();
        server = std::make_unique<RedisServer>(port);
        io::HiredisSettings s;
        s.redis = base::HostPort{"127.0.0.1", port};
        s.timeout = 200ms;  // generous: a loaded test machine
        s.backoff_initial = 50ms;
        s.backoff_max = 200ms;
        s.stall = 1000ms;
        client = std::make_unique<io::HiredisClient>(io.get_executor(), s);
        client->subscribe("ch", [this](const std::string& m) { messages.push_back(m); });
        client->on_link_change([this](bool up, const std::string& reason) {
            changes.push_back(up ? "up" : "down: " + reason);
        });
        client->start();
    }
    // Runs the loop until `done` or `limit` has passed.
    bool run_until(const std::function<bool()>& done, std::chrono::milliseconds limit = 5s) {
        auto until = std::chrono::steady_clock::now() + limit;
        while (!done() && std::chrono::steady_clock::now() < until) {
            io.restart();
            io.run_for(10ms);
        }
        return done();
    }
    io::RedisReply call(std::vector<std::string> args) {
        std::optional<io::RedisReply> reply;
        client->command(std::move(args), [&](const io::RedisReply& r) { reply = r; });
        run_until([&] { return reply.has_value(); });
        return reply.value_or(io::RedisReply{});
    }

    io::asio::io_context io;
    std::uint16_t port = 0;
    std::unique_ptr<RedisServer> server;
    std::unique_ptr<io::HiredisClient> client;
    std::vector<std::string> messages;
    std::vector<std::string> changes;
};

}  // namespace

TEST_F(HiredisTest, CommandsPipelinedAndPublishedMessages) {
    ASSERT_TRUE(run_until([&] { return client->connected(); }))
        << ::testing::PrintToString(changes);
    EXPECT_EQ(changes.back(), "up");
    // Several at once, answered in order.
    std::vector<io::RedisReply> replies;
    for (int i = 0; i < 50; ++i)
        client->command({"INCR", "n"}, [&](const io::RedisReply& r) { replies.push_back(r); });
    ASSERT_TRUE(run_until([&] { return replies.size() == 50; }));
    for (int i = 0; i < 50; ++i) {
        ASSERT_EQ(replies[i].kind, io::RedisReply::Kind::Integer);
        EXPECT_EQ(replies[i].integer, i + 1);
    }
    EXPECT_EQ(call({"HSET", "h", "f", "v"}).integer, 1);
    auto all = call({"HGETALL", "h"});
    ASSERT_EQ(all.kind, io::RedisReply::Kind::Array);
    ASSERT_EQ(all.elements.size(), 2u);
    EXPECT_EQ(all.elements[1].text, "v");
    EXPECT_EQ(call({"NOSUCHCOMMAND"}).kind, io::RedisReply::Kind::Error);
    EXPECT_EQ(call({"PUBLISH", "ch", "hello"}).integer, 1);  // our own subscriber
    ASSERT_TRUE(run_until([&] { return !messages.empty(); }));
    EXPECT_EQ(messages[0], "hello");
}

TEST_F(HiredisTest, ARedisThatStopsAnsweringMeansTimeoutsThenReconnect) {
    ASSERT_TRUE(run_until([&] { return client->connected(); }));
    ::kill(server->pid, SIGSTOP);
    auto started = std::chrono::steady_clock::now();
    auto r = call({"PING"});
    auto took = std::chrono::steady_clock::now() - started;
    EXPECT_EQ(r.kind, io::RedisReply::Kind::Timeout) << r.text;
    EXPECT_LT(took, 1000ms);  // the deadline (200 ms), not Redis, decided
    // Past `stall`, the connection is dropped as dead.
    ASSERT_TRUE(run_until([&] { return !client->connected(); }, 3s));
    ::kill(server->pid, SIGCONT);
    ASSERT_TRUE(run_until([&] { return client->connected(); }, 5s));
    EXPECT_EQ(call({"PING"}).text, "PONG");
}

TEST_F(HiredisTest, LosingRedisAndGettingItBack) {
    ASSERT_TRUE(run_until([&] { return client->connected(); }));
    server->stop();
    ASSERT_TRUE(run_until([&] { return !client->connected(); }));
    // Without a connection a request fails at once, never waits.
    EXPECT_EQ(call({"PING"}).kind, io::RedisReply::Kind::Disconnected);
    // Reconnects keep failing (each reported) while it is away.
    ASSERT_TRUE(run_until([&] { return changes.size() >= 4; }));
    server->start();
    ASSERT_TRUE(run_until([&] { return client->connected(); }, 5s));
    EXPECT_EQ(changes.back(), "up");
    EXPECT_EQ(call({"PUBLISH", "ch", "again"}).integer, 1);  // subscribed again
    ASSERT_TRUE(run_until([&] { return !messages.empty(); }));
}

TEST_F(HiredisTest, StopCallsNothingBack) {
    ASSERT_TRUE(run_until([&] { return client->connected(); }));
    bool called = false;
    client->command({"PING"}, [&](const io::RedisReply&) { called = true; });
    client->stop();
    run_until([] { return false; }, 100ms);
    EXPECT_FALSE(called);
    EXPECT_FALSE(client->connected());
}
