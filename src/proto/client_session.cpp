#include "proto/client_session.hpp"

namespace smtplb::proto {

void ClientSession::send(Step step, std::string_view line) {
    output_.append(line);
    expected_.push_back(step);
}

std::optional<ClientSession::Completion> ClientSession::next() {
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

}  // namespace smtplb::proto
