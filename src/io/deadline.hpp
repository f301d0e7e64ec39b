#pragma once
#include <chrono>
#include <functional>
#include <memory>

#include "io/asio.hpp"

namespace smtplb::io {

class DeadlineService;

// The idle and read timeout of one connection: on_expire (which closes or
// cancels the socket) runs once the current deadline has passed. No timer
// of its own: every Deadline of an io_context is on one list that a single
// shared timer walks every kDeadlineResolution, so a connection's timeout
// costs a few pointers, not a timer and a pending wait (the per-connection
// memory budget), and moving a deadline is a plain store. Timeouts fire up
// to kDeadlineResolution late, which SMTP's second-scale timeouts allow.
class Deadline {
  public:
    using Clock = std::chrono::steady_clock;
    Deadline(const asio::any_io_executor& executor, std::function<void()> on_expire);
    ~Deadline();
    Deadline(const Deadline&) = delete;
    Deadline& operator=(const Deadline&) = delete;

    static std::unique_ptr<Deadline> start(const asio::any_io_executor& executor,
                                           std::function<void()> on_expire) {
        return std::make_unique<Deadline>(executor, std::move(on_expire));
    }
    void expires_after(Millis d) { deadline_ = Clock::now() + d; }
    bool expired() const { return expired_; }
    // Ends the watch; on_expire is not called after this.
    void stop();

  private:
    friend class DeadlineService;
    DeadlineService* service_;
    Deadline* prev_ = nullptr;
    Deadline* next_ = nullptr;
    Clock::time_point deadline_ = Clock::time_point::max();
    std::function<void()> on_expire_;
    bool expired_ = false;
};

constexpr Millis kDeadlineResolution{200};

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
