// BackendConnection's AUTH with smtplb's own account (pool.backend.auth):
// the exchange is proto::SmarthostAuth's; this moves its lines.
#include "io/backend/backend_connection.hpp"
#include "proto/smarthost_auth.hpp"

namespace smtplb::io {

awaitable<BackendConnection::Auth> BackendConnection::authenticate(Millis timeout) {
    const auto& auth = pool_.backend(backend_).config.auth;
    if (!auth || authenticated_) co_return Auth::Ready;
    if (!stream_.active() && !auth->allow_plaintext) {
        // Opportunistic TLS that did not happen: the password stays here.
        failure_ = "AUTH needs TLS and STARTTLS did not happen: the password is not sent";
        co_return Auth::Misconfigured;
    }
    proto::SmarthostAuth sasl(auth->credentials, protocol_.capabilities(), ever_authenticated_);
    auto step = sasl.start();
    while (step.status == proto::SmarthostAuth::Status::Send) {
        protocol_.send(proto::BackendSession::Step::Auth, step.line);
        auto reply = co_await next(timeout);
        if (!reply) co_return Auth::Broken;
        step = sasl.reply(reply->reply);
    }
    switch (step.status) {
        case proto::SmarthostAuth::Status::Authenticated:
            authenticated_ = ever_authenticated_ = true;
            co_return Auth::Ready;
        case proto::SmarthostAuth::Status::Deferred:
            failure_ = step.reason;
            refusal_ = step.reply;
            co_return Auth::Deferred;
        default:
            failure_ = step.reason;
            refusal_ = step.reply;
            co_return Auth::Misconfigured;
    }
}

}  // namespace smtplb::io
