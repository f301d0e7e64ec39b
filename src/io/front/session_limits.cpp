#include "io/front/session_limits.hpp"

#include <chrono>

#include "core/tracking.hpp"
#include "io/balancer.hpp"

namespace smtplb::io {
namespace {

using core::LimitEvent;
using Kind = core::LimitVerdict::Kind;

const char* event_name(LimitEvent event) {
    switch (event) {
        case LimitEvent::Connect:
            return "connect";
        case LimitEvent::Mail:
            return "mail";
        case LimitEvent::Rcpt:
            return "rcpt";
        case LimitEvent::EndOfData:
            return "data";
    }
    return "?";
}

// In place: the subject's strings keep their capacity from one
// transaction to the next.
void assign_address(std::string& out, const proto::Mailbox& mailbox) {
    out.assign(mailbox.local);
    if (mailbox.domain.empty()) return;
    out += '@';
    out += mailbox.domain;
}

// Often enough that idle keys do not pile up between two rate() calls that
// would forget a few of them anyway; rare enough to cost nothing.
constexpr std::chrono::seconds kExpiryInterval{5};

}  // namespace

SessionLimits::SessionLimits(Balancer& balancer, const std::string& listener,
                             const proto::ClientIdentity& client)
    : balancer_(balancer),
      set_(balancer.limits().limits().empty() ? nullptr : balancer.limit_set()),
      shared_(balancer.shared_limits()),
      client_(client) {
    subject_.listener = listener;
}

core::LimitSubject& SessionLimits::subject() {
    // XCLIENT, PROXY and AUTH may have changed who the client is.
    subject_.client = client_.address;
    subject_.auth_user = client_.login;
    subject_.recipient.clear();
    subject_.recipient_domains.clear();
    subject_.bytes = 0;
    return subject_;
}

awaitable<std::optional<proto::Reply>> SessionLimits::connect() {
    if (!set_) co_return std::nullopt;
    subject().sender.reset();
    co_return co_await decide(LimitEvent::Connect, connection_);
}

awaitable<std::optional<proto::Reply>> SessionLimits::mail(const proto::Path& sender,
                                                           std::uint64_t size) {
    transaction_.clear();
    if (!set_) co_return std::nullopt;
    auto& s = subject();
    if (!s.sender) s.sender.emplace();
    if (sender.null)
        s.sender->clear();
    else
        assign_address(*s.sender, sender.mailbox);
    s.bytes = size;
    co_return co_await decide(LimitEvent::Mail, transaction_);
}

awaitable<std::optional<proto::Reply>> SessionLimits::rcpt(const proto::Mailbox& recipient) {
    if (!set_) co_return std::nullopt;
    assign_address(subject().recipient, recipient);
    std::vector<core::LimitLease> none;  // RCPT takes no concurrency
    co_return co_await decide(LimitEvent::Rcpt, none);
}

void SessionLimits::refund_rcpt(const proto::Mailbox& recipient) {
    if (!set_) return;
    auto& s = subject();
    assign_address(s.recipient, recipient);
    set_->refund(LimitEvent::Rcpt, s, balancer_.clock().now());
}

awaitable<std::optional<proto::Reply>> SessionLimits::end_of_data(
    const std::vector<proto::Mailbox>& recipients, std::uint64_t size) {
    if (!set_) co_return std::nullopt;
    auto& s = subject();
    s.bytes = size;
    for (const auto& r : recipients)
        s.recipient_domains.push_back(r.domain);
    std::vector<core::LimitLease> none;
    co_return co_await decide(LimitEvent::EndOfData, none);
}

awaitable<std::optional<proto::Reply>> SessionLimits::decide(LimitEvent event,
                                                             std::vector<core::LimitLease>& keep) {
    const auto now = balancer_.clock().now();
    auto verdict = set_->check(event, subject_, now);
    // [cluster]: the shared limits after this node's own (a refusal here
    // costs no round trip); one refusing there takes back what was counted here.
    if (verdict.kind != Kind::Tempfail && shared_) {
        auto shared = co_await shared_->check(event, subject_, now);
        if (shared.kind == Kind::Tempfail) {
            set_->refund(event, subject_, now);
            verdict = std::move(shared);  // the leases taken here are released
        } else {
            for (auto& lease : shared.leases)
                verdict.leases.push_back(std::move(lease));
            if (shared.hold > verdict.hold) {
                verdict.hold = shared.hold;
                verdict.limit = shared.limit;
                verdict.key = shared.key;
            }
            if (shared.kind == Kind::Delay) verdict.kind = Kind::Delay;
        }
    }
    for (auto& lease : verdict.leases)
        keep.push_back(std::move(lease));
    if (verdict.kind == Kind::Allow) co_return std::nullopt;
    log(event, verdict);
    if (verdict.hold > base::Clock::Duration(0)) {
        bool held = co_await hold_reply(balancer_.sessions(), verdict.hold);
        (void)held;  // cut short by a stop: answered as decided, only sooner
    }
    if (verdict.kind == Kind::Delay) co_return std::nullopt;
    co_return std::move(verdict.reply);
}

void SessionLimits::log(LimitEvent event, const core::LimitVerdict& verdict) const {
    const auto& subject = subject_;
    auto& tracking = balancer_.tracking();
    if (!tracking.enabled()) return;
    core::LimitRecord r;
    r.time_ms = balancer_.clock().wall_ms();
    r.action = verdict.kind == Kind::Tempfail ? "tempfail" : "delay";
    r.event = event_name(event);
    r.limit = verdict.limit;
    r.key = verdict.key;
    r.listener = subject.listener;
    r.client = client_.address.to_string();
    r.client_port = client_.port;
    r.login = subject.auth_user;
    r.has_sender = subject.sender.has_value();
    if (subject.sender) r.sender = *subject.sender;
    r.recipient = subject.recipient;
    r.hold_ms = std::chrono::duration_cast<std::chrono::milliseconds>(verdict.hold).count();
    // A tcp listener has no SMTP to refuse with: it closes.
    if (verdict.kind == Kind::Tempfail && !closes_silently_) r.reply = verdict.reply.summary();
    tracking.write(r.to_json());
}

awaitable<bool> hold_reply(TaskGroup& sessions, base::Clock::Duration how_long) {
    auto executor = co_await asio::this_coro::executor;
    // Shared with the stop callback, which may run on another thread (and
    // so posts the cancel to the timer's own).
    auto timer = std::make_shared<asio::steady_timer>(executor, how_long);
    auto on_stop =
        sessions.on_stop([timer, executor] { asio::post(executor, [timer] { timer->cancel(); }); });
    auto [ec] = co_await timer->async_wait(use_nothrow);
    co_return !ec;
}

awaitable<void> expire_limit_keys(std::shared_ptr<core::LimitSet> limits,
                                  const base::Clock& clock) {
    asio::steady_timer timer(co_await asio::this_coro::executor);
    for (;;) {
        timer.expires_after(kExpiryInterval);
        auto [ec] = co_await timer.async_wait(use_nothrow);
        if (ec) co_return;  // the generation stops
        limits->store().expire(clock.now());
    }
}

}  // namespace smtplb::io
