// The built-in sink's Postfix-strict XCLIENT mode (`smtplb sink
// --xclient-strict`), driven by a raw client. Replies are those a real
// Postfix 3.7 smtpd gave to the same commands (smtpd_authorized_xclient_hosts
// = 127.0.0.1/32).
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <boost/json.hpp>
#include <filesystem>
#include <fstream>
#include <thread>

#include "tools/sink.hpp"

using namespace smtplb;

namespace {

// Blocking SMTP client on loopback; every read times out after 5 s.
class RawClient {
  public:
    RawClient(std::uint16_t port, const char* source = "127.0.0.1") {
        fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
        timeval tv{5, 0};
        ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        sockaddr_in local{};
        local.sin_family = AF_INET;
        ::inet_pton(AF_INET, source, &local.sin_addr);
        ::bind(fd_, reinterpret_cast<sockaddr*>(&local), sizeof local);
        sockaddr_in peer{};
        peer.sin_family = AF_INET;
        peer.sin_port = htons(port);
        ::inet_pton(AF_INET, "127.0.0.1", &peer.sin_addr);
        connected_ = ::connect(fd_, reinterpret_cast<sockaddr*>(&peer), sizeof peer) == 0;
    }
    ~RawClient() { ::close(fd_); }
    bool connected() const { return connected_; }

    // One whole reply, its lines joined by '\n'; "" if the sink said nothing.
    std::string reply() {
        std::string out;
        for (;;) {
            auto crlf = buffer_.find("\r\n");
            if (crlf == std::string::npos) {
                char chunk[4096];
                auto n = ::recv(fd_, chunk, sizeof chunk, 0);
                if (n <= 0) return out;
                buffer_.append(chunk, static_cast<std::size_t>(n));
                continue;
            }
            std::string line = buffer_.substr(0, crlf);
            buffer_.erase(0, crlf + 2);
            out += out.empty() ? line : "\n" + line;
            if (line.size() < 4 || line[3] != '-') return out;
        }
    }
    void send(const std::string& bytes) { ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL); }
    std::string command(const std::string& line) {
        send(line + "\r\n");
        return reply();
    }
    // MAIL, RCPT, DATA and a short message: the final reply.
    std::string message() {
        auto mail = command("MAIL FROM:<a@example.org>");
        if (mail.rfind("250", 0) != 0) return mail;
        command("RCPT TO:<b@example.net>");
        command("DATA");
        return command("Subject: t\r\n\r\nhi\r\n.");
    }

  private:
    int fd_ = -1;
    bool connected_ = false;
    std::string buffer_;
};

bool contains(const std::string& haystack, const std::string& needle) {
    return haystack.find(needle) != std::string::npos;
}

const char* kPostfixEhloXclient =
    "XCLIENT NAME ADDR PROTO HELO REVERSE_NAME PORT LOGIN DESTADDR DESTPORT";

class StrictSink : public ::testing::Test {
  protected:
    void start(bool strict = true, std::vector<std::string> authorized = {}) {
        dir = std::filesystem::temp_directory_path() /
              ("sink_test_" + std::to_string(::getpid()) + "_" +
               ::testing::UnitTest::GetInstance()->current_test_info()->name());
        std::filesystem::remove_all(dir);
        std::filesystem::create_directories(dir);
        tools::SinkOptions o;
        o.listen = *base::HostPort::parse("127.0.0.1:0");
        o.hostname = "sink.test";
        o.record_path = (dir / "record.jsonl").string();
        o.xclient_strict = strict;
        for (const auto& text : authorized)
            o.xclient_authorized.push_back(*base::Cidr::parse(text));
        sink = std::make_unique<tools::Sink>(io, o);
        std::string error;
        ASSERT_TRUE(sink->start(error)) << error;
        port = sink->port();
        thread = std::thread([this] { io.run(); });
    }

    void TearDown() override {
        if (thread.joinable()) {
            io::asio::post(io, [this] { sink->stop(); });
            io.stop();
            thread.join();
        }
        sink.reset();
        std::filesystem::remove_all(dir);
    }

    std::vector<boost::json::object> records() {
        std::vector<boost::json::object> out;
        std::ifstream in(dir / "record.jsonl");
        for (std::string line; std::getline(in, line);)
            out.push_back(boost::json::parse(line).as_object());
        return out;
    }

    io::asio::io_context io{1};
    std::unique_ptr<tools::Sink> sink;
    std::uint16_t port = 0;
    std::thread thread;
    std::filesystem::path dir;
};

std::string str(const boost::json::object& o, const char* key) {
    return std::string(o.at(key).as_string());
}

}  // namespace

TEST_F(StrictSink, AnotherClientsXclientIsRefusedOnTheSameConnection) {
    start();
    RawClient c(port);
    ASSERT_TRUE(c.connected());
    EXPECT_EQ(c.reply(), "220 sink.test ESMTP smtplb");
    EXPECT_TRUE(contains(c.command("EHLO lb.test"), kPostfixEhloXclient));
    // A new session: 220, and the EHLO after it lists no XCLIENT, as the
    // new client (127.0.0.10) is not authorised.
    EXPECT_EQ(c.command("XCLIENT NAME=c10.example ADDR=127.0.0.10 PORT=4000 HELO=h10 PROTO=ESMTP"),
              "220 sink.test ESMTP smtplb sink");
    auto ehlo = c.command("EHLO c10.example");
    EXPECT_TRUE(contains(ehlo, "250-PIPELINING")) << ehlo;
    EXPECT_FALSE(contains(ehlo, "XCLIENT")) << ehlo;
    EXPECT_EQ(c.command("XCLIENT ADDR=127.0.0.11 HELO=h11"),
              "550 5.7.0 Error: insufficient authorization");
    EXPECT_TRUE(contains(c.message(), "250 2.0.0 Ok: queued"));
    EXPECT_EQ(c.command("XCLIENT ADDR=127.0.0.1"), "550 5.7.0 Error: insufficient authorization");

    auto recs = records();
    ASSERT_EQ(recs.size(), 1u);
    EXPECT_EQ(str(recs[0], "client"), "127.0.0.10");
    EXPECT_EQ(str(recs[0], "client_name"), "c10.example");
    EXPECT_EQ(str(recs[0], "client_helo"), "h10");
    // The EHLO after XCLIENT is the HELO name Postfix records.
    EXPECT_EQ(str(recs[0], "helo"), "c10.example");
}

TEST_F(StrictSink, XclientHeloStandsUntilAnEhloAndIsForgottenByTheNextXclient) {
    start(true, {"127.0.0.0/8"});
    RawClient c(port);
    c.reply();
    c.command("EHLO lb.test");
    // Without EHLO after it, the XCLIENT HELO= is the name recorded.
    EXPECT_EQ(c.command("XCLIENT ADDR=127.0.0.20 HELO=h20 REVERSE_NAME=r20.example"),
              "220 sink.test ESMTP smtplb sink");
    EXPECT_TRUE(contains(c.message(), "250 2.0.0 Ok: queued"));
    // 127.0.0.20 is authorised here: XCLIENT is still offered and taken.
    EXPECT_TRUE(contains(c.command("EHLO lb.test"), kPostfixEhloXclient));
    EXPECT_EQ(c.command("XCLIENT ADDR=127.0.0.21"), "220 sink.test ESMTP smtplb sink");
    // HELO forgotten with the new session, none given: MAIL needs one first.
    EXPECT_EQ(c.command("MAIL FROM:<a@example.org>"), "503 5.5.1 Error: send HELO/EHLO first");
    c.command("EHLO c21.example");
    EXPECT_TRUE(contains(c.message(), "250 2.0.0 Ok: queued"));

    auto recs = records();
    ASSERT_EQ(recs.size(), 2u);
    EXPECT_EQ(str(recs[0], "client"), "127.0.0.20");
    EXPECT_EQ(str(recs[0], "helo"), "h20");
    EXPECT_EQ(str(recs[0], "client_reverse_name"), "r20.example");
    EXPECT_EQ(str(recs[1], "client"), "127.0.0.21");
    EXPECT_EQ(str(recs[1], "helo"), "c21.example");
    EXPECT_EQ(str(recs[1], "client_helo"), "");
}

TEST_F(StrictSink, XclientInsideATransactionIsRefused) {
    start();
    RawClient c(port);
    c.reply();
    c.command("EHLO lb.test");
    EXPECT_EQ(c.command("MAIL FROM:<a@example.org>"), "250 2.1.0 Ok");
    EXPECT_EQ(c.command("XCLIENT ADDR=127.0.0.30"),
              "503 5.5.1 Error: MAIL transaction in progress");
    EXPECT_EQ(c.command("RSET"), "250 2.0.0 Ok");
    EXPECT_EQ(c.command("XCLIENT ADDR=127.0.0.30"), "220 sink.test ESMTP smtplb sink");
}

TEST_F(StrictSink, UnauthorisedPeerIsNeitherOfferedNorAllowedXclient) {
    start();
    RawClient c(port, "127.0.0.2");
    ASSERT_TRUE(c.connected());
    c.reply();
    EXPECT_FALSE(contains(c.command("EHLO x.test"), "XCLIENT"));
    EXPECT_EQ(c.command("XCLIENT ADDR=127.0.0.2"), "550 5.7.0 Error: insufficient authorization");
}

TEST_F(StrictSink, AttributesAreCheckedAsPostfixChecksThem) {
    start();
    RawClient c(port);
    c.reply();
    EXPECT_EQ(c.command("XCLIENT"), "501 5.5.4 Syntax: XCLIENT attribute=value...");
    EXPECT_EQ(c.command("XCLIENT FOO=bar"), "501 5.5.4 Bad XCLIENT attribute name: FOO");
    EXPECT_EQ(c.command("XCLIENT ADDR"), "501 5.5.4 Error: attribute=value expected");
    EXPECT_EQ(c.command("XCLIENT ADDR="), "501 5.5.4 Error: attribute=value expected");
    // The limit is on the value as sent (xtext): 150 '+' are 450 bytes.
    std::string pluses;
    for (int i = 0; i < 150; ++i)
        pluses += "+2B";
    EXPECT_EQ(c.command("XCLIENT HELO=" + pluses), "501 5.5.4 Error: attribute value too long");
    EXPECT_EQ(c.command("XCLIENT HELO=" + std::string(256, 'a')),
              "501 5.5.4 Error: attribute value too long");
    EXPECT_EQ(c.command("XCLIENT NAME=bad_name!"), "501 5.5.4 Bad NAME syntax: bad_name!");
    EXPECT_EQ(c.command("XCLIENT ADDR=notanip"), "501 5.5.4 Bad ADDR syntax: notanip");
    EXPECT_EQ(c.command("XCLIENT PORT=123456"), "501 5.5.4 Bad PORT syntax: 123456");
    EXPECT_EQ(c.command("XCLIENT PROTO=FOO"), "501 5.5.4 Bad PROTO syntax: FOO");
    // Refusals change nothing: still authorised.
    EXPECT_EQ(c.command("XCLIENT HELO=" + std::string(255, 'a') +
                        " NAME=[UNAVAILABLE] "
                        "REVERSE_NAME=[TEMPUNAVAIL] ADDR=IPV6:::1 PORT=123 LOGIN=bob "
                        "DESTADDR=127.0.0.1 DESTPORT=25 helo=x+41"),
              "220 sink.test ESMTP smtplb sink");
}

TEST_F(StrictSink, LongLinesAreCutAtPostfixsLineLengthLimit) {
    start();
    RawClient c(port);
    c.reply();
    EXPECT_EQ(c.command("NOOP " + std::string(3000, 'a')), "250 2.0.0 Ok");
    // Postfix ran the first 2048 bytes: the ADDR at the cut is "1.2.3".
    std::string line = "XCLIENT ";
    for (int i = 0; i < 290; ++i)
        line += "HELO=h ";
    line += "ADDR=1.2.3.4";
    EXPECT_EQ(c.command(line), "501 5.5.4 Bad ADDR syntax: 1.2.3");
    EXPECT_TRUE(contains(c.command("EHLO x.test"), kPostfixEhloXclient));
    // 2047 bytes and the CR: still one whole command.
    std::string fits = "XCLIENT ADDR=127.0.0.40";
    for (int i = 0; i < 288; ++i)
        fits += " PORT=1";
    fits += " PORT=12";
    ASSERT_EQ(fits.size(), 2047u);
    EXPECT_EQ(c.command(fits), "220 sink.test ESMTP smtplb sink");
}

TEST_F(StrictSink, DefaultModeStaysLenient) {
    start(false);
    RawClient c(port);
    c.reply();
    EXPECT_TRUE(contains(c.command("EHLO lb.test"), "XCLIENT NAME ADDR PORT PROTO HELO LOGIN"));
    EXPECT_EQ(c.command("XCLIENT ADDR=127.0.0.50"), "220 sink.test ESMTP smtplb sink");
    EXPECT_TRUE(contains(c.command("EHLO c50.test"), "XCLIENT"));
    EXPECT_EQ(c.command("XCLIENT ADDR=127.0.0.51"), "220 sink.test ESMTP smtplb sink");
    EXPECT_TRUE(contains(c.message(), "250 2.0.0 Ok: queued"));
    auto recs = records();
    ASSERT_EQ(recs.size(), 1u);
    EXPECT_EQ(str(recs[0], "client"), "127.0.0.51");
}
