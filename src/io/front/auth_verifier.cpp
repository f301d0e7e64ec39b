#include "io/front/auth_verifier.hpp"

#include <unistd.h>

#include "base/base64.hpp"
#include "io/backend/backend_connection.hpp"
#include "io/balancer.hpp"
#include "io/runtime/deadline.hpp"
#include "proto/dovecot_auth.hpp"

namespace smtplb::io {
namespace {

using Step = proto::BackendSession::Step;

// AUTH PLAIN on a backend of the pool, over TLS; a backend that cannot
// answer (down, no TLS, no AUTH PLAIN, 4xx) passes the question to the next.
class BackendSaslVerifier final : public AuthVerifier {
  public:
    BackendSaslVerifier(Balancer& balancer, const config::Listener& listener)
        : balancer_(balancer), listener_(listener) {}

    awaitable<AuthVerdict> verify(const AuthRequest& request, std::string& why) override {
        auto* pool = balancer_.pool(listener_.pool);
        std::vector<std::size_t> tried;
        while (pool && tried.size() < pool->config().max_attempts) {
            auto pick = pool->pick(request.client.address, tried);
            if (!pick) break;
            tried.push_back(*pick);
            auto verdict = co_await ask(*pool, *pick, request, why);
            if (verdict != AuthVerdict::TempFail) co_return verdict;
        }
        if (why.empty()) why = "no backend could verify the credentials";
        co_return AuthVerdict::TempFail;
    }

  private:
    awaitable<AuthVerdict> ask(core::Pool& pool, std::size_t backend, const AuthRequest& request,
                               std::string& why) {
        const auto& state = pool.backend(backend);
        auto timeout = listener_.auth.timeout;
        auto [ec, socket] = co_await balancer_.connector().connect(
            state.config.address, listener_.source_address, timeout);
        if (ec) {
            why = state.config.name + ": connect: " + ec.message();
            co_return AuthVerdict::TempFail;
        }
        BackendConnection conn(std::move(socket), pool, backend, listener_.source_address);
        auto tls = balancer_.backend_tls().for_pool(pool.name());
        bool greeted = co_await conn.handshake(balancer_.config().server.hostname, timeout, tls);
        if (!greeted) {
            why = state.config.name + ": " + conn.failure();
            co_return AuthVerdict::TempFail;
        }
        if (!conn.tls_active()) {
            why = state.config.name + ": no TLS, so no password is sent to it";
            co_await conn.quit(timeout);
            co_return AuthVerdict::TempFail;
        }
        if (!conn.protocol().capabilities().auth_mechanisms.count("PLAIN")) {
            why = state.config.name + ": does not offer AUTH PLAIN";
            co_await conn.quit(timeout);
            co_return AuthVerdict::TempFail;
        }
        std::string credentials;
        credentials += '\0';
        credentials += request.login;
        credentials += '\0';
        credentials += request.password;
        std::string command = "AUTH PLAIN " + base::base64_encode(credentials) + "\r\n";
        std::fill(credentials.begin(), credentials.end(), '\0');
        conn.protocol().send(Step::Auth, command);
        std::fill(command.begin(), command.end(), '\0');
        auto reply = co_await conn.next(timeout);
        if (!reply) {
            why = state.config.name + ": " + conn.failure();
            co_return AuthVerdict::TempFail;
        }
        co_await conn.quit(timeout);
        if (reply->reply.code == 235) co_return AuthVerdict::Ok;
        if (reply->reply.permanent()) co_return AuthVerdict::Fail;
        why = state.config.name + ": " + reply->reply.summary();
        co_return AuthVerdict::TempFail;
    }

    Balancer& balancer_;
    const config::Listener& listener_;
};

// Dovecot's auth service: one connection per verification (verifications
// are rare next to messages, and this keeps no state to go stale).
class DovecotVerifier final : public AuthVerifier {
  public:
    DovecotVerifier(Balancer& balancer, const config::Listener& listener)
        : balancer_(balancer), listener_(listener) {}

    awaitable<AuthVerdict> verify(const AuthRequest& request, std::string& why) override {
        const auto& path = listener_.auth.dovecot_socket;
        auto executor = co_await asio::this_coro::executor;
        auto hp = base::HostPort::parse(path);
        bool inet = path.find('/') == std::string::npos && hp && base::IpAddress::parse(hp->host);
        if (inet) {
            auto [ec, connected] =
                co_await balancer_.connector().connect(*hp, std::nullopt, listener_.auth.timeout);
            if (ec) {
                why = "dovecot " + path + ": " + ec.message();
                co_return AuthVerdict::TempFail;
            }
            auto verdict = co_await converse(connected, request, why);
            co_return verdict;
        }
        asio::local::stream_protocol::socket socket(executor);
        Alarm alarm(executor, listener_.auth.timeout, [&socket] {
            error_code ignored;
            socket.close(ignored);
        });
        auto [ec] = co_await socket.async_connect(asio::local::stream_protocol::endpoint(path),
                                                  use_nothrow);
        if (ec) {
            why = "dovecot " + path + ": " + ec.message();
            co_return AuthVerdict::TempFail;
        }
        auto verdict = co_await converse(socket, request, why);
        co_return verdict;
    }

  private:
    template <typename Socket>
    awaitable<AuthVerdict> converse(Socket& socket, const AuthRequest& request, std::string& why) {
        Alarm alarm(socket.get_executor(), listener_.auth.timeout, [&socket] {
            error_code ignored;
            socket.close(ignored);
        });
        proto::DovecotAuthClient client;
        auto hello = proto::DovecotAuthClient::handshake(static_cast<std::uint32_t>(::getpid()));
        auto [wec, wn] = co_await asio::async_write(socket, asio::buffer(hello), use_nothrow);
        std::array<char, 4096> buffer;
        bool sent = false;
        while (!wec) {
            using State = proto::DovecotAuthClient::State;
            auto state = client.state();
            if (state == State::Ok) co_return AuthVerdict::Ok;
            if (state == State::Fail) co_return AuthVerdict::Fail;
            if (state == State::TempFail) {
                why = "dovecot: temporary failure";
                co_return AuthVerdict::TempFail;
            }
            if (state == State::Error) {
                why = "dovecot: " + client.error();
                co_return AuthVerdict::TempFail;
            }
            if (state == State::Ready && !sent) {
                sent = true;
                auto line = client.request(request.login, request.password, request.client, true);
                auto [ec, n] = co_await asio::async_write(socket, asio::buffer(line), use_nothrow);
                std::fill(line.begin(), line.end(), '\0');
                wec = ec;
                continue;
            }
            auto [ec, n] = co_await socket.async_read_some(asio::buffer(buffer), use_nothrow);
            if (ec) {
                why = alarm.expired() ? "dovecot: timeout" : "dovecot: " + ec.message();
                co_return AuthVerdict::TempFail;
            }
            client.feed(std::string_view(buffer.data(), n));
        }
        why = "dovecot: " + wec.message();
        co_return AuthVerdict::TempFail;
    }

    Balancer& balancer_;
    const config::Listener& listener_;
};

}  // namespace

std::unique_ptr<AuthVerifier> make_auth_verifier(Balancer& balancer,
                                                 const config::Listener& listener) {
    if (listener.auth.verifier == config::AuthVerifier::Dovecot)
        return std::make_unique<DovecotVerifier>(balancer, listener);
    return std::make_unique<BackendSaslVerifier>(balancer, listener);
}

}  // namespace smtplb::io
