#include "core/cluster/shared_admin.hpp"

#include <algorithm>

#include "base/text.hpp"

namespace smtplb::core::cluster {

std::string admin_field(const std::string& pool, const std::string& backend) {
    return pool + "/" + backend;
}

Reconciliation reconcile(const std::vector<AdminEntry>& local,
                         const std::map<std::string, std::string>& remote) {
    Reconciliation out;
    for (const auto& entry : local) {
        auto field = admin_field(entry.pool, entry.backend);
        auto it = remote.find(field);
        AdminState wanted = AdminState::Enabled;
        if (it != remote.end()) {
            auto parsed = parse_admin_state(it->second);
            if (!parsed) {
                out.unreadable.push_back(field);
                continue;
            }
            wanted = *parsed;
        }
        if (wanted != entry.state) out.changes.push_back({entry.pool, entry.backend, wanted});
    }
    return out;
}

std::chrono::milliseconds ReconnectBackoff::next() {
    auto now = next_;
    next_ = std::min(max_, next_ * 2);
    return now;
}

std::optional<std::string> LinkState::connected(base::Clock::TimePoint now,
                                                const std::string& redis) {
    auto before = state_;
    auto was = since_;
    state_ = State::Up;
    since_ = now;
    if (before == State::Up) return std::nullopt;
    std::string line = "event=cluster_redis_up redis=" + base::logfmt_value(redis);
    if (before == State::Down) {
        auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(now - was).count();
        line += " down_ms=" + std::to_string(ms) + " action=resynchronising";
    }
    return line;
}

std::optional<std::string> LinkState::lost(base::Clock::TimePoint now, const std::string& redis,
                                           const std::string& reason) {
    if (state_ == State::Down) return std::nullopt;
    state_ = State::Down;
    since_ = now;
    return "event=cluster_redis_down redis=" + base::logfmt_value(redis) +
           " reason=" + base::logfmt_value(reason) + " action=local_admin_state";
}

}  // namespace smtplb::core::cluster
