#include "io/front/session_auth.hpp"

#include <algorithm>

#include "base/text.hpp"
#include "io/backend/transaction_executor.hpp"
#include "io/balancer.hpp"
#include "io/front/listener.hpp"

namespace smtplb::io {

using proto::Reply;

awaitable<Reply> check_credentials(Listener& listener, TransactionExecutor& relay,
                                   proto::ServerEvent& ev) {
    auto& balancer = listener.balancer();
    auto& counters = listener.counters;
    auto address = relay.identity().address.to_string();
    auto& throttle = listener.auth_throttle();
    auto log = [&](const char* result, const std::string& why) {
        // The login is logged (it is what an administrator searches for);
        // the password never is.
        balancer.log(std::string("event=auth listener=") + listener.config().name +
                     " client=" + address + " login=" + base::logfmt_value(ev.login) +
                     " mechanism=" + ev.mechanism + " result=" + result +
                     (why.empty() ? "" : " reason=" + base::logfmt_value(why)));
    };
    if (throttle.blocked(address, ev.login)) {
        std::fill(ev.password.begin(), ev.password.end(), '\0');
        ++counters.auth_throttled;
        log("throttled", "");
        co_return Reply::make(454, "4.7.0", "Too many failed authentications; try again later");
    }
    AuthRequest request{ev.login, std::move(ev.password), relay.identity()};
    std::string why;
    auto verdict = co_await listener.auth_verifier().verify(request, why);
    std::fill(request.password.begin(), request.password.end(), '\0');
    switch (verdict) {
        case AuthVerdict::Ok:
            throttle.succeeded(address);
            relay.set_login(ev.login);
            ++counters.auth_ok;
            log("ok", "");
            co_return Reply::make(235, "2.7.0", "Authentication successful");
        case AuthVerdict::Fail:
            throttle.failed(address, ev.login);
            ++counters.auth_failed;
            log("failed", "");
            co_return Reply::make(535, "5.7.8", "Authentication credentials invalid");
        case AuthVerdict::TempFail:
            break;
    }
    ++counters.auth_tempfailed;
    log("tempfailed", why);
    co_return Reply::make(454, "4.7.0", "Temporary authentication failure");
}

}  // namespace smtplb::io
