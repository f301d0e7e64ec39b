#include "core/spool_outcome.hpp"

#include <string>

namespace smtplb::core {

void SpoolOutcome::record(std::size_t recipient, const proto::Reply& reply) {
    if (reply.positive())
        delivered.push_back(recipient);
    else if (reply.permanent())
        failed.emplace_back(recipient, reply);
    else
        deferred.emplace_back(recipient, reply);
}

void SpoolOutcome::expire(std::chrono::milliseconds lifetime) {
    for (auto& [i, reply] : deferred) {
        auto why =
            proto::Reply::make(reply.code ? reply.code : 451, "4.4.7",
                               "message expired after " + std::to_string(lifetime.count() / 1000) +
                                   "s in the queue; last reply: " + reply.summary());
        failed.emplace_back(i, why);
    }
    deferred.clear();
}

void SpoolOutcome::keep_failures_for_later() {
    for (auto& f : failed)
        deferred.push_back(std::move(f));
    failed.clear();
}

SpoolOutcome::Fate SpoolOutcome::fate(bool null_sender) const {
    if (!deferred.empty()) return Fate::Keep;
    if (!failed.empty() && null_sender) return Fate::Dead;
    return Fate::Remove;
}

std::vector<std::pair<std::size_t, proto::SpoolRecord>> SpoolOutcome::marks(
    bool null_sender) const {
    std::vector<std::pair<std::size_t, proto::SpoolRecord>> out;
    if (fate(null_sender) == Fate::Remove) return out;
    for (auto i : delivered)
        out.emplace_back(i, proto::SpoolRecord::Delivered);
    // Bounced ones are marked; in dead/ they stay pending, never reported.
    if (!null_sender)
        for (const auto& [i, reply] : failed)
            out.emplace_back(i, proto::SpoolRecord::Failed);
    return out;
}

const char* SpoolOutcome::result(bool null_sender) const {
    switch (fate(null_sender)) {
        case Fate::Keep:
            return "deferred";
        case Fate::Dead:
            return "dead";
        case Fate::Remove:
            return failed.empty() ? "delivered" : "bounced";
    }
    return "deferred";
}

SpoolReports plan_reports(const SpoolOutcome& outcome,
                          const std::vector<proto::SpoolRecipient>& recipients, bool null_sender,
                          bool relayed_without_dsn, const proto::Reply& final_reply,
                          bool delay_due) {
    SpoolReports out;
    if (null_sender) return out;
    auto params = [&](std::size_t i) -> const proto::RcptParameters& {
        return recipients[i].params;
    };
    for (const auto& [i, reply] : outcome.failed)
        if (params(i).wants_failure()) out.failed.emplace_back(i, reply);
    if (delay_due)
        for (const auto& [i, reply] : outcome.deferred)
            if (recipients[i].state == proto::SpoolRecord::Recipient && params(i).wants_delay())
                out.delayed.emplace_back(i, reply);
    if (relayed_without_dsn)
        for (auto i : outcome.delivered)
            if (params(i).wants_success()) out.relayed.emplace_back(i, final_reply);
    return out;
}

}  // namespace smtplb::core
