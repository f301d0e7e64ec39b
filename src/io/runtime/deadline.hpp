#pragma once
#include <chrono>
#include <functional>
#include <memory>

#include "io/asio.hpp"

namespace smtplb::io {

class DeadlineService;

// The timeout of one step of a connection (a read, a write, a wait for a
// reply): on_expire (which closes or cancels the socket) runs once the
// current deadline has passed. Each expires_after arms it for one step; it
// fires at most once per arming, and a Deadline that fired fires again once
// re-armed. Between steps it can be suspended, so that time spent waiting
// on something else (a client session waiting on a backend) does not count.
// No timer of its own: every Deadline of an io_context is on one list that
// a single shared timer walks every kDeadlineResolution, so a connection's
// timeout costs a few pointers, not a timer and a pending wait (the
// per-connection memory budget), and moving a deadline is a plain store.
// Timeouts fire up to kDeadlineResolution late, which SMTP's second-scale
// timeouts allow.
class Deadline {
  public:
    using Clock = std::chrono::steady_clock;
    // Starts suspended: nothing fires before the first expires_after.
    Deadline(const asio::any_io_executor& executor, std::function<void()> on_expire);
    ~Deadline();
    Deadline(const Deadline&) = delete;
    Deadline& operator=(const Deadline&) = delete;

    static std::unique_ptr<Deadline> start(const asio::any_io_executor& executor,
                                           std::function<void()> on_expire) {
        return std::make_unique<Deadline>(executor, std::move(on_expire));
    }
    // Arms it for a step that must end within `d` from now (re-arms it
    // after it fired; moves it when it is armed already).
    void expires_after(Millis d) {
        deadline_ = Clock::now() + d;
        expired_ = false;
    }
    // Arms it to fire at `at` (a step that began earlier).
    void expires_at(Clock::time_point at) {
        deadline_ = at;
        expired_ = false;
    }
    // Not waiting for the peer now: nothing fires until the next
    // expires_after. expired() still tells about the last step.
    void suspend() { deadline_ = Clock::time_point::max(); }
    bool armed() const { return deadline_ != Clock::time_point::max(); }
    // The last armed step ran out of time (until the next expires_after).
    bool expired() const { return expired_; }
    // Ends the watch for good; on_expire is not called after this.
    void stop();

  private:
    friend class DeadlineService;
    DeadlineService* service_;
    Deadline* prev_ = nullptr;
    Deadline* next_ = nullptr;
    Clock::time_point deadline_ = Clock::time_point::max();
    std::function<void()> on_expire_;
    bool expired_ = false;
    bool stopped_ = false;
};

constexpr Millis kDeadlineResolution{200};

// Arms a Deadline for one step (the scope of this object) and suspends it
// when the step ends, however it ends.
class DeadlineStep {
  public:
    DeadlineStep(Deadline& deadline, Millis budget) : deadline_(deadline) {
        deadline_.expires_after(budget);
    }
    ~DeadlineStep() { deadline_.suspend(); }
    DeadlineStep(const DeadlineStep&) = delete;
    DeadlineStep& operator=(const DeadlineStep&) = delete;

  private:
    Deadline& deadline_;
};

// A one-shot timer for short operations (a connect, a probe): on_expire
// runs when `after` passes, unless cancelled or destroyed first. Cheaper
// than Deadline (no coroutine, one timer wait) and safe to destroy while
// its handler is queued.
class Alarm {
  public:
    Alarm(const asio::any_io_executor& executor, Millis after, std::function<void()> on_expire);
    ~Alarm() { cancel(); }
    Alarm(const Alarm&) = delete;
    Alarm& operator=(const Alarm&) = delete;
    void cancel();
    bool expired() const { return state_->expired; }

  private:
    struct State {
        bool armed = true;
        bool expired = false;
        std::function<void()> on_expire;
    };
    asio::steady_timer timer_;
    std::shared_ptr<State> state_;
};

}  // namespace smtplb::io
