#include "demo_client.hpp"

#include "io/runtime/sockets.hpp"
#include "proto/backend_session.hpp"

namespace smtplb::app {

using Step = proto::BackendSession::Step;

io::awaitable<DemoOutcome> send_over_one_connection(std::uint16_t port, DemoTraffic traffic,
                                                    std::function<void(int)> progress) {
    DemoOutcome outcome;
    auto executor = co_await io::asio::this_coro::executor;
    io::tcp::socket socket(executor);
    auto [ec] = co_await socket.async_connect({io::asio::ip::make_address("127.0.0.1"), port},
                                              io::use_nothrow);
    if (ec) {
        outcome.error = "connect: " + ec.message();
        co_return outcome;
    }
    io::tune_socket(socket);
    proto::BackendSession smtp;
    auto next = [&]() -> io::awaitable<std::optional<proto::BackendSession::Completion>> {
        auto& out = smtp.output();
        if (!out.empty()) {
            auto [wec, n] =
                co_await io::asio::async_write(socket, io::asio::buffer(out), io::use_nothrow);
            out.clear();
            if (wec) co_return std::nullopt;
        }
        for (;;) {
            if (auto c = smtp.next()) co_return c;
            if (smtp.failed()) co_return std::nullopt;
            auto [rec, bytes] = co_await io::read_some_shared(socket);
            if (rec) co_return std::nullopt;
            smtp.feed(bytes);
        }
    };
    auto greeting = co_await next();
    if (!greeting) {
        outcome.error = "no greeting";
        co_return outcome;
    }
    smtp.send(Step::Ehlo, "EHLO " + traffic.helo + "\r\n");
    co_await next();
    for (int i = 1; i <= traffic.messages; ++i) {
        smtp.send(Step::Mail, "MAIL FROM:<" + traffic.from + ">\r\n");
        smtp.send(Step::Rcpt, "RCPT TO:<" + traffic.to + ">\r\n");
        smtp.send(Step::Data, "DATA\r\n");
        auto mail = co_await next();
        auto rcpt = co_await next();
        auto data = co_await next();
        if (!mail || !rcpt || !data) {
            outcome.error = "connection lost";
            break;
        }
        if (data->reply.code != 354) {
            ++outcome.refused;
            continue;
        }
        smtp.output() += "Subject: demo message " + std::to_string(i) + "\r\nFrom: <" +
                         traffic.from + ">\r\n\r\nHello from the smtplb demo.\r\n.\r\n";
        smtp.expect(Step::Message);
        auto done = co_await next();
        if (!done) {
            outcome.error = "connection lost";
            break;
        }
        if (done->reply.code == 250)
            ++outcome.accepted;
        else
            ++outcome.refused;
        progress(i);
    }
    smtp.send(Step::Quit, "QUIT\r\n");
    co_await next();
    co_return outcome;
}

}  // namespace smtplb::app
