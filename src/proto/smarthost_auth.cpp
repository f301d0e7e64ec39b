#include "proto/smarthost_auth.hpp"

#include "base/base64.hpp"
#include "base/text.hpp"

namespace smtplb::proto {

const char* to_string(AuthMechanism mechanism) {
    switch (mechanism) {
        case AuthMechanism::Auto:
            return "auto";
        case AuthMechanism::Plain:
            return "plain";
        case AuthMechanism::Login:
            return "login";
    }
    return "?";
}

namespace {
const char* wire_name(AuthMechanism mechanism) {
    return mechanism == AuthMechanism::Login ? "LOGIN" : "PLAIN";
}

std::string offer_text(const std::set<std::string>& offered) {
    std::string out;
    for (const auto& m : offered)
        out += (out.empty() ? "" : " ") + m;
    return base::printable(out);
}
}  // namespace

SmarthostAuth::SmarthostAuth(const AuthCredentials& credentials, const Capabilities& capabilities,
                             bool again)
    : credentials_(credentials), offered_(capabilities.auth_mechanisms), again_(again) {}

SmarthostAuth::Step SmarthostAuth::send(std::string line, std::string redacted) {
    redacted_ = std::move(redacted);
    return Step{Status::Send, std::move(line) + "\r\n", {}, std::nullopt};
}

SmarthostAuth::Step SmarthostAuth::fail(Status status, std::string reason,
                                        std::optional<Reply> reply) {
    done_ = true;
    return Step{status, {}, std::move(reason), std::move(reply)};
}

SmarthostAuth::Step SmarthostAuth::start() {
    if (offered_.empty())
        return fail(Status::Misconfigured,
                    "AUTH not offered (the backend's EHLO announces no AUTH)");
    auto wanted = credentials_.mechanism;
    if (wanted == AuthMechanism::Auto) {
        if (offered_.count("PLAIN"))
            wanted = AuthMechanism::Plain;
        else if (offered_.count("LOGIN"))
            wanted = AuthMechanism::Login;
        else
            return fail(Status::Misconfigured, "AUTH offers neither PLAIN nor LOGIN (offers " +
                                                   offer_text(offered_) + ")");
    } else if (!offered_.count(wire_name(wanted))) {
        return fail(Status::Misconfigured, std::string("AUTH ") + wire_name(wanted) +
                                               " not offered (offers " + offer_text(offered_) +
                                               ")");
    }
    chosen_ = wanted;
    if (wanted == AuthMechanism::Login) return send("AUTH LOGIN", "AUTH LOGIN");
    // RFC 4616: authorisation identity (empty: the same), user name, password.
    std::string message;
    message.reserve(credentials_.username.size() + credentials_.password.size() + 2);
    message += '\0';
    message += credentials_.username;
    message += '\0';
    message += credentials_.password;
    return send("AUTH PLAIN " + base::base64_encode(message), "AUTH PLAIN <credentials>");
}

SmarthostAuth::Step SmarthostAuth::reply(const Reply& reply) {
    if (done_ || chosen_ == AuthMechanism::Auto)
        return fail(Status::Misconfigured,
                    "unexpected reply to AUTH: " + base::printable(reply.summary()), reply);
    if (reply.code == 235 || (reply.code == 503 && again_ && challenges_ == 0)) {
        done_ = true;
        return Step{Status::Authenticated, {}, {}, reply};
    }
    if (reply.code == 334) {
        ++challenges_;
        if (chosen_ == AuthMechanism::Login && challenges_ == 1)
            return send(base::base64_encode(credentials_.username), "<user name>");
        if (chosen_ == AuthMechanism::Login && challenges_ == 2)
            return send(base::base64_encode(credentials_.password), "<password>");
        if (challenges_ <= 3)
            // More than PLAIN or LOGIN ask for: cancelled (RFC 4954 §4); the
            // backend's answer to "*" (501) ends it.
            return send("*", "*");
        return fail(Status::Misconfigured, "AUTH: the backend keeps sending challenges");
    }
    if (reply.transient())
        return fail(Status::Deferred, "AUTH deferred: " + base::printable(reply.summary()), reply);
    if (reply.permanent())
        return fail(Status::Misconfigured, "AUTH refused: " + base::printable(reply.summary()),
                    reply);
    return fail(Status::Misconfigured,
                "AUTH answered " + base::printable(reply.summary()) + ", not 235", reply);
}

}  // namespace smtplb::proto
