#pragma once
#include <array>
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "base/clock.hpp"
#include "config/config.hpp"
#include "proto/probe.hpp"
#include "proto/reply.hpp"

namespace smtplb::core {

// What the balancer believes about a backend. Busy is back pressure: the
// backend is reachable but defers new mail, so it gets no new transactions
// while the ones it holds finish. Misconfigured: it answers SMTP but refuses
// what this balancer needs of it (XCLIENT from the balancer's address): a
// configuration error on the backend that probes cannot see, so it is left
// out for kMisconfiguredHold before a transaction tries it again; or it
// refuses smtplb's own AUTH (pool.backend.auth), which probes do see.
enum class HealthState { Up, Busy, Down, Misconfigured };
inline constexpr std::chrono::seconds kMisconfiguredHold{60};
// What the administrator decided: drain takes no new transactions but keeps
// probing; maintenance takes none and is not probed.
enum class AdminState { Enabled, Drain, Maintenance };

const char* to_string(HealthState state);
const char* to_string(AdminState state);
std::optional<AdminState> parse_admin_state(std::string_view text);

// How one live transaction step on a backend went (passive health).
enum class LiveOutcome {
    Success,          // 2xx/3xx
    Rejected,         // 5xx for this message: says nothing about the backend
    MessageDeferred,  // 4xx about this sender/recipient/message only
    BackendDeferred,  // 4xx about the backend itself (resources, 421)
    Failed,           // refused connection, timeout, broken or non-SMTP reply
    Misconfigured,    // 5xx to XCLIENT: the backend does not trust the balancer
};

// Whether a live 4xx speaks for the whole backend or only for this message.
// RFC 3463 subjects 3 (mail system) and 4 (network) are about the server;
// 1, 2, 5, 6 and 7 (addresses, mailboxes, protocol, content, policy such as
// greylisting) are about this transaction, so one odd sender cannot take a
// pool out. Without an enhanced code: 421 (closing) and 452 (storage) are
// the server's; others are the message's.
LiveOutcome classify_live(const proto::Reply& reply);

// One line of the health log: a change of state and why.
struct HealthEvent {
    std::string from;
    std::string to;
    std::string source;  // probe | live | admin
    std::string reason;
    std::string reply;               // the reply that caused it, when one did
    std::uint32_t observations = 0;  // consecutive results that led to it
};

// May this change end a wait for the pool (the spool's drain)? True when
// the backend's health went up, or an administrator enabled it again.
bool returns_to_service(const HealthEvent& event);

// The health log's line for a transition, in logfmt (key=value, quoted
// where needed): backends' reply texts are untrusted and are made printable.
std::string health_log_line(const std::string& pool, const std::string& backend,
                            const HealthEvent& event);

// Live reply classes per backend over the last minute, for metrics.
class ReplyRates {
  public:
    enum Class { Positive, Transient, Permanent, Failure, Classes };
    void record(Class c, base::Clock::TimePoint now);
    std::array<std::uint64_t, Classes> last_minute(base::Clock::TimePoint now) const;

  private:
    static constexpr std::size_t kSeconds = 60;
    struct Bucket {
        std::int64_t second = -1;
        std::array<std::uint64_t, Classes> counts{};
    };
    std::array<Bucket, kSeconds> buckets_{};
};

// One backend's health as a state machine, pure: probe results and live
// outcomes go in with the time, transitions come out. Rise/fall hysteresis
// applies to probes; live failures act at once (after passive_fall in a row)
// because a deferring server must stop getting mail within one transaction.
class BackendHealth {
  public:
    explicit BackendHealth(const config::Pool& pool);
    // The time the state is counted from until its first change.
    void started(base::Clock::TimePoint now) { changed_at_ = now; }
    // The state of the same backend in the previous configuration; the
    // settings (rise, fall, slow start...) stay this configuration's.
    void adopt(const BackendHealth& previous);

    HealthState state() const { return state_; }
    AdminState admin() const { return admin_; }
    bool probing() const { return probes_ && admin_ != AdminState::Maintenance; }
    // May a new transaction start on this backend now?
    bool accepts_new(base::Clock::TimePoint now) const;
    // Slow start: the share of its weight a recovered backend gets, 1..1000.
    std::uint32_t weight_permille(base::Clock::TimePoint now) const;

    std::optional<HealthEvent> probe(const proto::ProbeResult& result, base::Clock::TimePoint now);
    std::optional<HealthEvent> live(LiveOutcome outcome, const std::string& reason,
                                    const std::string& reply, base::Clock::TimePoint now);
    std::optional<HealthEvent> set_admin(AdminState admin, base::Clock::TimePoint now);

    const std::optional<proto::ProbeResult>& last_probe() const { return last_probe_; }
    base::Clock::TimePoint changed_at() const { return changed_at_; }
    // When the last probe ended, and the last change of health state (for
    // the dashboard: what happened, not only what is).
    base::Clock::TimePoint last_probe_at() const { return last_probe_at_; }
    const std::optional<HealthEvent>& last_change() const { return last_change_; }
    base::Clock::TimePoint last_change_at() const { return last_change_at_; }
    std::uint32_t probes_failed_in_a_row() const { return bad_probes_; }

  private:
    std::optional<HealthEvent> move_to(HealthState to, const char* source, std::string reason,
                                       std::string reply, std::uint32_t observations,
                                       base::Clock::TimePoint now);

    bool probes_;
    std::uint32_t rise_, fall_, passive_fall_;
    std::chrono::milliseconds down_retry_, slow_start_;
    HealthState state_ = HealthState::Up;
    AdminState admin_ = AdminState::Enabled;
    std::uint32_t good_probes_ = 0, bad_probes_ = 0, live_failures_ = 0;
    base::Clock::TimePoint changed_at_{};
    base::Clock::TimePoint retry_at_{};                // without probes: when to try live again
    base::Clock::TimePoint misconfigured_until_{};     // probes cannot end it before
    std::optional<base::Clock::TimePoint> ramp_from_;  // slow start since
    std::optional<proto::ProbeResult> last_probe_;
    base::Clock::TimePoint last_probe_at_{};
    std::optional<HealthEvent> last_change_;  // of health or admin state
    base::Clock::TimePoint last_change_at_{};
};

}  // namespace smtplb::core
