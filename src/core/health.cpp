#include "core/health.hpp"

#include <algorithm>

#include "base/text.hpp"

namespace smtplb::core {

const char* to_string(HealthState state) {
    switch (state) {
        case HealthState::Up:
            return "up";
        case HealthState::Busy:
            return "busy";
        case HealthState::Down:
            return "down";
        case HealthState::Misconfigured:
            return "misconfigured";
    }
    return "?";
}

const char* to_string(AdminState state) {
    switch (state) {
        case AdminState::Enabled:
            return "enabled";
        case AdminState::Drain:
            return "drain";
        case AdminState::Maintenance:
            return "maintenance";
    }
    return "?";
}

std::optional<AdminState> parse_admin_state(std::string_view text) {
    if (text == "enable" || text == "enabled") return AdminState::Enabled;
    if (text == "drain") return AdminState::Drain;
    if (text == "maintenance") return AdminState::Maintenance;
    return std::nullopt;
}

LiveOutcome classify_live(const proto::Reply& reply) {
    if (reply.positive()) return LiveOutcome::Success;
    if (reply.permanent()) return LiveOutcome::Rejected;
    if (!reply.transient()) return LiveOutcome::Failed;
    const auto& e = reply.enhanced;  // "4.3.1"
    if (e.size() >= 3 && e[1] == '.') {
        char subject = e[2];
        bool whole_number = e.size() == 3 || e[3] == '.';
        if (whole_number && (subject == '3' || subject == '4')) return LiveOutcome::BackendDeferred;
        return LiveOutcome::MessageDeferred;
    }
    if (reply.code == 421 || reply.code == 452) return LiveOutcome::BackendDeferred;
    return LiveOutcome::MessageDeferred;
}

std::string health_log_line(const std::string& pool, const std::string& backend,
                            const HealthEvent& e) {
    std::string line = "event=health pool=" + base::logfmt_value(pool) +
                       " backend=" + base::logfmt_value(backend) + " from=" + e.from +
                       " to=" + e.to + " source=" + e.source;
    if (e.observations) line += " observations=" + std::to_string(e.observations);
    line += " reason=" + base::logfmt_value(e.reason);
    if (!e.reply.empty()) line += " reply=" + base::logfmt_value(e.reply);
    return line;
}

bool returns_to_service(const HealthEvent& e) {
    if (e.source == "admin") return e.to == to_string(AdminState::Enabled);
    return e.to == to_string(HealthState::Up);
}

void ReplyRates::record(Class c, base::Clock::TimePoint now) {
    auto second = std::chrono::duration_cast<std::chrono::seconds>(now.time_since_epoch()).count();
    auto& bucket = buckets_[static_cast<std::size_t>(second) % kSeconds];
    if (bucket.second != second) {
        bucket.second = second;
        bucket.counts.fill(0);
    }
    ++bucket.counts[c];
}

std::array<std::uint64_t, ReplyRates::Classes> ReplyRates::last_minute(
    base::Clock::TimePoint now) const {
    auto second = std::chrono::duration_cast<std::chrono::seconds>(now.time_since_epoch()).count();
    std::array<std::uint64_t, Classes> sum{};
    for (const auto& bucket : buckets_) {
        if (bucket.second < 0 || bucket.second <= second - static_cast<std::int64_t>(kSeconds))
            continue;
        for (std::size_t i = 0; i < Classes; ++i)
            sum[i] += bucket.counts[i];
    }
    return sum;
}

BackendHealth::BackendHealth(const config::Pool& pool)
    : probes_(pool.health.enabled),
      rise_(pool.health.rise),
      fall_(pool.health.fall),
      passive_fall_(pool.passive_fall),
      down_retry_(pool.down_retry),
      slow_start_(pool.slow_start) {}

void BackendHealth::adopt(const BackendHealth& p) {
    state_ = p.state_;
    admin_ = p.admin_;
    good_probes_ = p.good_probes_;
    bad_probes_ = p.bad_probes_;
    live_failures_ = p.live_failures_;
    changed_at_ = p.changed_at_;
    retry_at_ = p.retry_at_;
    misconfigured_until_ = p.misconfigured_until_;
    ramp_from_ = p.ramp_from_;
    // Probes turned off by a reload: the last result would be shown as
    // current for ever, so it goes.
    if (probes_) {
        last_probe_ = p.last_probe_;
        last_probe_at_ = p.last_probe_at_;
    }
    last_change_ = p.last_change_;
    last_change_at_ = p.last_change_at_;
}

bool BackendHealth::accepts_new(base::Clock::TimePoint now) const {
    if (admin_ != AdminState::Enabled) return false;
    if (state_ == HealthState::Up) return true;
    // Without probes the only way back is a trial transaction (half-open).
    return !probes_ && now >= retry_at_;
}

std::uint32_t BackendHealth::weight_permille(base::Clock::TimePoint now) const {
    if (!ramp_from_ || slow_start_.count() == 0) return 1000;
    auto elapsed = std::chrono::duration_cast<std::chrono::milliseconds>(now - *ramp_from_);
    if (elapsed >= slow_start_) return 1000;
    // From 5%: a recovering backend should see some mail at once, or the
    // first of it would only arrive when the ramp is half over.
    auto share = static_cast<std::uint32_t>(elapsed.count() * 1000 / slow_start_.count());
    return std::max<std::uint32_t>(50, share);
}

namespace {
std::string describe(const std::optional<proto::Reply>& reply) {
    return reply ? reply->summary() : std::string();
}
}  // namespace

std::optional<HealthEvent> BackendHealth::move_to(HealthState to, const char* source,
                                                  std::string reason, std::string reply,
                                                  std::uint32_t observations,
                                                  base::Clock::TimePoint now) {
    if (to == state_) return std::nullopt;
    HealthEvent event{to_string(state_), to_string(to),    source,
                      std::move(reason), std::move(reply), observations};
    if (to == HealthState::Up) ramp_from_ = now;
    state_ = to;
    changed_at_ = now;
    good_probes_ = bad_probes_ = 0;
    if (to == HealthState::Up) live_failures_ = 0;
    last_change_ = event;
    last_change_at_ = now;
    return event;
}

std::optional<HealthEvent> BackendHealth::probe(const proto::ProbeResult& result,
                                                base::Clock::TimePoint now) {
    if (admin_ == AdminState::Maintenance) return std::nullopt;
    last_probe_ = result;
    last_probe_at_ = now;
    std::string reason = "probe " + result.step + ": " + result.reason;
    if (result.verdict == proto::ProbeVerdict::Healthy) {
        bad_probes_ = 0;
        ++good_probes_;
        bool held = state_ == HealthState::Misconfigured && now < misconfigured_until_;
        if (state_ != HealthState::Up && good_probes_ >= rise_ && !held)
            return move_to(HealthState::Up, "probe", reason, describe(result.reply), good_probes_,
                           now);
        return std::nullopt;
    }
    good_probes_ = 0;
    ++bad_probes_;
    if (result.verdict == proto::ProbeVerdict::Misconfigured)
        // smtplb's AUTH refused: every transaction would fail the same way,
        // so at once; a probe that passes again (a fixed password, after a
        // reload) brings it back after `rise`.
        return move_to(HealthState::Misconfigured, "probe", reason, describe(result.reply),
                       bad_probes_, now);
    auto target =
        result.verdict == proto::ProbeVerdict::Busy ? HealthState::Busy : HealthState::Down;
    // Hysteresis guards the way out of service; between busy and down the
    // backend takes no mail either way, so the state follows the latest probe.
    if (state_ == HealthState::Up && bad_probes_ < fall_) return std::nullopt;
    return move_to(target, "probe", reason, describe(result.reply), bad_probes_, now);
}

std::optional<HealthEvent> BackendHealth::live(LiveOutcome outcome, const std::string& reason,
                                               const std::string& reply,
                                               base::Clock::TimePoint now) {
    switch (outcome) {
        case LiveOutcome::Success:
            live_failures_ = 0;
            if (!probes_)
                return move_to(HealthState::Up, "live", "a trial transaction succeeded", reply, 1,
                               now);
            return std::nullopt;
        case LiveOutcome::Rejected:
        case LiveOutcome::MessageDeferred:
            live_failures_ = 0;  // it speaks SMTP and judges mail: nothing wrong with it
            return std::nullopt;
        case LiveOutcome::Misconfigured:
            // At once: every transaction on it would fail the same way.
            live_failures_ = 0;
            good_probes_ = 0;
            misconfigured_until_ = retry_at_ = now + kMisconfiguredHold;
            return move_to(HealthState::Misconfigured, "live", reason, reply, 1, now);
        case LiveOutcome::BackendDeferred:
        case LiveOutcome::Failed:
            break;
    }
    ++live_failures_;
    good_probes_ = 0;
    retry_at_ = now + down_retry_;
    auto target = outcome == LiveOutcome::Failed ? HealthState::Down : HealthState::Busy;
    if (state_ == HealthState::Up && live_failures_ < passive_fall_) return std::nullopt;
    return move_to(target, "live", reason, reply, live_failures_, now);
}

std::optional<HealthEvent> BackendHealth::set_admin(AdminState admin, base::Clock::TimePoint now) {
    if (admin == admin_) return std::nullopt;
    HealthEvent event{
        to_string(admin_), to_string(admin), "admin", "set by the administrator", "", 0};
    if (admin_ == AdminState::Maintenance) {
        // Nothing is known about a backend back from maintenance: with probes
        // it must pass `rise` of them first; without, it starts slowly.
        if (probes_) {
            state_ = HealthState::Down;
            event.reason += "; probes must pass again";
        } else {
            state_ = HealthState::Up;
            ramp_from_ = now;
        }
        good_probes_ = bad_probes_ = live_failures_ = 0;
        changed_at_ = now;
    }
    admin_ = admin;
    last_change_ = event;
    last_change_at_ = now;
    return event;
}

}  // namespace smtplb::core
