#pragma once
#include <chrono>
#include <functional>
#include <memory>

#include "io/asio.hpp"

namespace smtplb::io {

// One timer per connection that calls on_expire (which closes the socket)
// when the current deadline passes. Moving the deadline later is a plain
// store: the timer wakes at the old time and sleeps again, so the hot path
// does no timer work. Only moving it earlier re-arms the timer.
class Deadline : public std::enable_shared_from_this<Deadline> {
  public:
    using Clock = std::chrono::steady_clock;
    Deadline(asio::any_io_executor executor, std::function<void()> on_expire)
        : timer_(executor), on_expire_(std::move(on_expire)) {}

    static std::shared_ptr<Deadline> start(asio::any_io_executor executor,
                                           std::function<void()> on_expire);
    void expires_after(Millis d);
    bool expired() const { return expired_; }
    // Ends the watchdog; on_expire is not called after this.
    void stop();

  private:
    awaitable<void> watch();

    asio::steady_timer timer_;
    std::function<void()> on_expire_;
    Clock::time_point deadline_ = Clock::time_point::max();
    Clock::time_point armed_for_ = Clock::time_point::max();
    bool stopped_ = false;
    bool expired_ = false;
};

// A one-shot timer for short operations (a connect, a probe): on_expire
// runs when `after` passes, unless cancelled or destroyed first. Cheaper
// than Deadline (no coroutine, one timer wait) and safe to destroy while
// its handler is queued.
class Alarm {
  public:
    Alarm(asio::any_io_executor executor, Millis after, std::function<void()> on_expire);
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
