#include "core/delivery.hpp"

namespace smtplb::core {

Verdict classify(const proto::Reply& reply) {
    if (reply.positive()) return Verdict::Accepted;
    if (reply.permanent()) return Verdict::Rejected;
    return Verdict::TryElsewhere;
}

proto::Reply no_backend_reply() {
    return proto::Reply::make(451, "4.4.1", "No mail server is available now, try again later");
}

proto::Reply relay_reply(const proto::Reply& r) {
    proto::Reply out = r;
    if (out.enhanced.empty()) out.enhanced = std::to_string(r.klass()) + ".0.0";
    if (out.lines.empty()) out.lines.emplace_back();
    return out;
}

proto::Reply deferral_reply(const proto::Reply& r) {
    auto out = relay_reply(r);
    if (out.code == 421) out.code = 451;
    return out;
}

}  // namespace smtplb::core
