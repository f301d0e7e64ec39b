#include "proto/backend_session.hpp"

namespace smtplb::proto {

void BackendSession::send(Step step, std::string_view line) {
    output_.append(line);
    expected_.push_back(step);
}

std::optional<BackendSession::Completion> BackendSession::next() {
    if (!failure_.empty()) return std::nullopt;
    auto reply = parser_.next();
    if (!reply) {
        if (parser_.error()) failure_ = parser_.error_text();
        return std::nullopt;
    }
    if (expected_.empty()) {
        failure_ = "unexpected reply: " + reply->summary();
        return std::nullopt;
    }
    Step step = expected_.front();
    expected_.pop_front();
    if (step == Step::Ehlo && reply->code == 250) caps_ = Capabilities::from_ehlo(*reply);
    // Whatever XCLIENT changed, the backend forgets the EHLO state with it.
    if (step == Step::Xclient && reply->code == 220) caps_ = {};
    return Completion{step, std::move(*reply)};
}

bool BackendSession::tls_started() {
    if (parser_.buffered() > 0 || !expected_.empty()) {
        failure_ = "reply injected after the 220 to STARTTLS";
        return false;
    }
    parser_ = ReplyParser();
    caps_ = {};
    output_.clear();
    return true;
}

}  // namespace smtplb::proto
