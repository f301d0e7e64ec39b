// The io layer in process: a Balancer in front of built-in sinks, with the
// BackendConnector replaced by a scripted one, driven by a small client.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <boost/json.hpp>
#include <cctype>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <sstream>
#include <thread>

#include "admin/metrics.hpp"
#include "config/loader.hpp"
#include "io/balancer.hpp"
#include "io/runtime/sockets.hpp"
#include "io/spool/posix_spool_files.hpp"
#include "io/spool/spool.hpp"
#include "mocks/scripted_connector.hpp"
#include "proto/backend_session.hpp"
#include "tools/sink.hpp"

using namespace smtplb;
using Step = proto::BackendSession::Step;

namespace {

struct Outcome {
    int rcpt = 0;
    int final_reply = 0;
    std::string rcpt_text;
};

// One message over one connection from `source`; records the RCPT and
// final reply codes.
io::awaitable<void> send_one(std::uint16_t port, Outcome& out,
                             const std::string& source = "127.0.0.1") {
    auto executor = co_await io::asio::this_coro::executor;
    io::tcp::socket socket(executor);
    socket.open(io::tcp::v4());
    socket.bind({io::asio::ip::make_address(source), 0});
    auto [ec] = co_await socket.async_connect({io::asio::ip::make_address("127.0.0.1"), port},
                                              io::use_nothrow);
    if (ec) co_return;
    proto::BackendSession smtp;
    auto next = [&]() -> io::awaitable<std::optional<proto::BackendSession::Completion>> {
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
    smtp.send(Step::Ehlo, "EHLO " + source + ".example\r\n");
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

// Runs one client on the loop until it is done (at most 20 s).
Outcome run_client(io::asio::io_context& io, std::uint16_t port,
                   const std::string& source = "127.0.0.1") {
    Outcome out;
    io::asio::co_spawn(
        io,
        [&]() -> io::awaitable<void> {
            co_await send_one(port, out, source);
            io.stop();
        },
        io::asio::detached);
    io.restart();
    io.run_for(std::chrono::seconds(20));
    return out;
}

class RelayWithScriptedConnector : public ::testing::Test {
  protected:
    void SetUp() override {
        for (int i = 0; i < 2; ++i) {
            tools::SinkOptions o;
            o.listen = *base::HostPort::parse("127.0.0.1:0");
            // As strict as Postfix: XCLIENT only while the current client
            // is authorised (127.0.0.1, the balancer), so a backend
            // connection that speaks for one client cannot take another's.
            o.xclient_strict = true;
            o.record_path = record_path(i);
            sinks.push_back(std::make_unique<tools::Sink>(io, o));
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

    Outcome run_one(const std::string& source = "127.0.0.1") {
        return run_client(io, balancer->bound_ports().front(), source);
    }
    std::string record_path(int sink) const {
        return ::testing::TempDir() + "relay_test_sink" + std::to_string(::getpid()) + "_" +
               std::to_string(sink) + ".jsonl";
    }
    // The client address and HELO each sink recorded, message by message.
    std::vector<std::string> recorded_clients() const {
        std::vector<std::string> out;
        for (int i = 0; i < 2; ++i) {
            std::ifstream in(record_path(i));
            for (std::string line; std::getline(in, line);) {
                auto o = boost::json::parse(line).as_object();
                out.push_back(std::string(o.at("client").as_string()) + " " +
                              std::string(o.at("helo").as_string()));
            }
        }
        std::sort(out.begin(), out.end());
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
        for (int i = 0; i < 2; ++i)
            std::remove(record_path(i).c_str());
    }

    io::asio::io_context io{1};
    std::vector<std::unique_ptr<tools::Sink>> sinks;
    smtplb::testing::ScriptedConnector* scripted = nullptr;
    std::unique_ptr<io::Balancer> balancer;
};

}  // namespace

TEST_F(RelayWithScriptedConnector, EachClientReachesAStrictBackendUnderItsOwnIdentity) {
    // Clients one after another, two backends: connections are reused, and
    // none may carry a message under another client's identity.
    std::vector<std::string> expected;
    for (const char* source : {"127.0.0.5", "127.0.0.6", "127.0.0.7", "127.0.0.5", "127.0.0.8"}) {
        auto out = run_one(source);
        EXPECT_EQ(out.final_reply, 250) << source << ": " << out.rcpt_text;
        expected.push_back(std::string(source) + " " + source + ".example");
    }
    std::sort(expected.begin(), expected.end());
    EXPECT_EQ(recorded_clients(), expected);
    for (const auto& pool : balancer->pools())
        for (const auto& b : pool->backends())
            EXPECT_EQ(b.health.state(), core::HealthState::Up) << b.config.name;
}

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

namespace {

// The real file layer, except that the next `failures` fsyncs of a spool
// file fail with `error` (a full disk, an I/O error).
class FailingSyncFiles final : public core::SpoolFiles {
  public:
    explicit FailingSyncFiles(std::errc error) : error_(error) {}
    int failures = 1;

    std::unique_ptr<Writer> create(const std::string& path, std::error_code& ec) override {
        auto writer = real_.create(path, ec);
        if (!writer) return nullptr;
        return std::make_unique<FailingWriter>(std::move(writer), *this);
    }
    std::unique_ptr<Reader> open(const std::string& p, std::error_code& ec) override {
        return real_.open(p, ec);
    }
    std::error_code rewrite_byte(const std::string& p, std::uint64_t o, char b) override {
        return real_.rewrite_byte(p, o, b);
    }
    std::error_code rename(const std::string& a, const std::string& b) override {
        return real_.rename(a, b);
    }
    std::error_code remove(const std::string& p) override { return real_.remove(p); }
    std::error_code sync_dir(const std::string& d) override { return real_.sync_dir(d); }
    std::error_code make_dir(const std::string& d) override { return real_.make_dir(d); }
    std::error_code set_mtime(const std::string& p, std::int64_t ms) override {
        return real_.set_mtime(p, ms);
    }
    std::vector<Entry> list(const std::string& d, std::error_code& ec) override {
        return real_.list(d, ec);
    }

  private:
    class FailingWriter final : public Writer {
      public:
        FailingWriter(std::unique_ptr<Writer> real, FailingSyncFiles& owner)
            : real_(std::move(real)), owner_(owner) {}
        std::error_code write(std::string_view bytes) override { return real_->write(bytes); }
        std::error_code sync() override {
            if (owner_.failures > 0) {
                --owner_.failures;
                return std::make_error_code(owner_.error_);
            }
            return real_->sync();
        }

      private:
        std::unique_ptr<Writer> real_;
        FailingSyncFiles& owner_;
    };
    io::PosixSpoolFiles real_;
    std::errc error_;
};

}  // namespace

// The delivery contract when the disk fails: an fsync error (ENOSPC, EIO)
// while spooling gives 452 4.3.1 and leaves no file; the next message,
// with the disk back, is spooled and acknowledged.
TEST(SpoolFaults, AFailedFsyncAnswers452AndLeavesNothing) {
    for (auto error : {std::errc::no_space_on_device, std::errc::io_error}) {
        io::asio::io_context io{1};
        char dir_template[] = "/tmp/smtplb-spool-fault-XXXXXX";
        std::string state_dir = ::mkdtemp(dir_template);
        std::string text = R"([server]
hostname = "lb.test"
tracking_log = ""
state_dir = ")" + state_dir +
                           R"("
admin = ""
[[listener]]
name = "t"
bind = "127.0.0.1:0"
accepted_domains = ["example.net"]
pool = "p"
[[pool]]
name = "p"
on_unavailable = "spool"
health = { enabled = false }
[[pool.backend]]
name = "down"
address = "127.0.0.1:9"
)";
        auto loaded = config::load_string(text, "test");
        ASSERT_TRUE(loaded.config) << loaded.diagnostics.format("test");
        auto connector = std::make_unique<smtplb::testing::ScriptedConnector>();
        connector->refuse_ports = {9};
        io::Balancer balancer(io, *loaded.config, std::move(connector));
        auto files = std::make_unique<FailingSyncFiles>(error);
        balancer.use_spool(std::make_shared<io::Spool>(io, *loaded.config, std::move(files)));
        std::string start_error;
        ASSERT_TRUE(balancer.start(start_error)) << start_error;
        auto send = [&] { return run_client(io, balancer.bound_ports().front()); };
        auto first = send();
        EXPECT_EQ(first.rcpt, 250);  // spooling: no backend can verify it
        EXPECT_EQ(first.final_reply, 452);
        auto count = [&](const char* area) {
            std::error_code ec;
            io::PosixSpoolFiles real;
            return real.list(state_dir + "/spool/" + area, ec).size();
        };
        EXPECT_EQ(count("queue"), 0u);
        EXPECT_EQ(count("tmp"), 0u);
        auto second = send();
        EXPECT_EQ(second.final_reply, 250);
        EXPECT_EQ(count("queue"), 1u);
        EXPECT_EQ(balancer.spool()->counters().commit_failed, 1u);
        balancer.stop();
        balancer.abort_sessions();
        io.restart();
        io.run_for(std::chrono::milliseconds(500));
        std::filesystem::remove_all(state_dir);
    }
}

namespace {

// A backend that closes, without answering, a connection that already
// carried a message when the next MAIL comes on it: what smtplb sees of a
// reused connection the backend closed while it sat idle (a stale one).
// `on_mail` runs at every MAIL, before the answer or the close.
class ClosingBackend {
  public:
    explicit ClosingBackend(io::asio::io_context& io)
        : acceptor_(io, {io::asio::ip::make_address("127.0.0.1"), 0}) {
        io::asio::co_spawn(io, accept_loop(), io::asio::detached);
    }
    std::uint16_t port() const { return acceptor_.local_endpoint().port(); }
    void stop() { acceptor_.close(); }
    std::function<void()> on_mail;
    int delivered = 0;
    int closed_stale = 0;

  private:
    io::awaitable<void> accept_loop() {
        for (;;) {
            auto [ec, socket] = co_await acceptor_.async_accept(io::use_nothrow);
            if (ec) co_return;
            io::asio::co_spawn(acceptor_.get_executor(), serve(std::move(socket)),
                               io::asio::detached);
        }
    }
    io::awaitable<void> serve(io::tcp::socket socket) {
        std::string in;
        auto say = [&](std::string text) -> io::awaitable<bool> {
            auto [ec, n] =
                co_await io::asio::async_write(socket, io::asio::buffer(text), io::use_nothrow);
            co_return !ec;
        };
        auto line = [&]() -> io::awaitable<std::optional<std::string>> {
            for (;;) {
                if (auto end = in.find("\r\n"); end != std::string::npos) {
                    auto l = in.substr(0, end);
                    in.erase(0, end + 2);
                    co_return l;
                }
                char buffer[4096];
                auto [ec, n] =
                    co_await socket.async_read_some(io::asio::buffer(buffer), io::use_nothrow);
                if (ec) co_return std::nullopt;
                in.append(buffer, n);
            }
        };
        if (!co_await say("220 closing.test ESMTP\r\n")) co_return;
        int carried = 0;
        while (auto l = co_await line()) {
            auto verb = l->substr(0, 4);
            for (auto& ch : verb)
                ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
            std::string reply = "250 2.0.0 Ok\r\n";
            if (verb == "EHLO") {
                reply = "250-closing.test\r\n250 8BITMIME\r\n";
            } else if (verb == "MAIL") {
                if (on_mail) on_mail();
                if (carried > 0) {
                    ++closed_stale;
                    co_return;  // closed, unanswered
                }
            } else if (verb == "DATA") {
                if (!co_await say("354 go ahead\r\n")) co_return;
                while (auto body = co_await line())
                    if (*body == ".") break;
                ++carried;
                ++delivered;
                reply = "250 2.0.0 Ok: queued as C" + std::to_string(delivered) + "\r\n";
            } else if (verb == "QUIT") {
                co_await say("221 2.0.0 Bye\r\n");
                co_return;
            }
            if (!co_await say(reply)) co_return;
        }
    }
    io::tcp::acceptor acceptor_;
};

// Every counter sample in a /metrics text, by series ("name{labels}").
std::map<std::string, double> counter_samples(const std::string& text) {
    std::set<std::string> counters;
    std::map<std::string, double> out;
    std::istringstream lines(text);
    for (std::string l; std::getline(lines, l);) {
        if (l.rfind("# TYPE ", 0) == 0) {
            std::istringstream f(l.substr(7));
            std::string name, type;
            f >> name >> type;
            if (type == "counter") counters.insert(name);
            continue;
        }
        if (l.empty() || l[0] == '#') continue;
        auto space = l.rfind(' ');
        auto series = l.substr(0, space);
        if (counters.count(series.substr(0, series.find('{'))))
            out[series] = std::stod(l.substr(space + 1));
    }
    return out;
}

}  // namespace

// A reused connection found closed is retried on a fresh one as the same
// attempt: smtplb_backend_attempts_started_total counts it once, and no
// scrape (taken at each MAIL the backend sees and, meanwhile, from another
// thread as the admin listener would) shows any counter lower than before.
TEST(StaleRetry, MetricsCountersNeverGoDown) {
    io::asio::io_context io{1};
    ClosingBackend backend(io);
    auto loaded = config::load_string(R"([server]
hostname = "lb.test"
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
health = { enabled = false }
[[pool.backend]]
name = "closing"
address = "127.0.0.1:)" + std::to_string(backend.port()) +
                                          "\"\n",
                                      "test");
    ASSERT_TRUE(loaded.config) << loaded.diagnostics.format("test");
    io::Balancer balancer(io, *loaded.config);
    std::string error;
    ASSERT_TRUE(balancer.start(error)) << error;

    std::mutex mutex;
    std::map<std::string, double> last;
    std::vector<std::string> went_down;
    int scrapes = 0;
    auto scrape = [&] {
        // Scrapes one at a time, each compared with the one before it.
        std::lock_guard guard(mutex);
        auto now = counter_samples(admin::metrics_text(balancer));
        for (const auto& [series, value] : now) {
            auto before = last.find(series);
            if (before != last.end() && value < before->second)
                went_down.push_back(series + " " + std::to_string(before->second) + " -> " +
                                    std::to_string(value));
        }
        for (const auto& [series, value] : now)
            last[series] = value;
        ++scrapes;
    };
    backend.on_mail = scrape;
    std::atomic<bool> done = false;
    std::thread scraper([&] {
        while (!done) {
            scrape();
            // Room for the loop between scrapes (std::mutex is not fair).
            std::this_thread::sleep_for(std::chrono::microseconds(200));
        }
    });

    constexpr int kMessages = 50;
    for (int i = 0; i < kMessages; ++i) {
        auto out = run_client(io, balancer.bound_ports().front());
        EXPECT_EQ(out.final_reply, 250) << "message " << i << ": " << out.rcpt_text;
        scrape();
    }
    done = true;
    scraper.join();

    EXPECT_EQ(backend.delivered, kMessages);
    EXPECT_EQ(backend.closed_stale, kMessages - 1);  // every message after the first
    const auto& b = balancer.pool("p")->backends()[0];
    EXPECT_EQ(b.counters.attempts, std::uint64_t{kMessages});
    EXPECT_EQ(b.counters.delivered, std::uint64_t{kMessages});
    EXPECT_EQ(b.counters.failed, 0u);  // a stale connection is not the backend's fault
    const std::string started =
        R"(smtplb_backend_attempts_started_total{pool="p",backend="closing"})";
    ASSERT_TRUE(last.count(started)) << "not exported";
    EXPECT_EQ(last[started], kMessages);
    EXPECT_TRUE(went_down.empty()) << went_down.size() << " drops, first: " << went_down.front();
    EXPECT_GT(scrapes, 2 * kMessages);

    balancer.stop();
    balancer.abort_sessions();
    backend.stop();
    io.restart();
    io.run_for(std::chrono::milliseconds(500));
}
