#include "io/deadline.hpp"

namespace smtplb::io {

std::shared_ptr<Deadline> Deadline::start(asio::any_io_executor executor,
                                          std::function<void()> on_expire) {
    auto d = std::make_shared<Deadline>(executor, std::move(on_expire));
    asio::co_spawn(
        executor, [d]() -> awaitable<void> { co_await d->watch(); }, asio::detached);
    return d;
}

void Deadline::expires_after(Millis d) {
    deadline_ = Clock::now() + d;
    if (deadline_ < armed_for_) timer_.cancel();  // wake the watcher to re-arm earlier
}

void Deadline::stop() {
    stopped_ = true;
    on_expire_ = nullptr;
    timer_.cancel();
}

awaitable<void> Deadline::watch() {
    while (!stopped_) {
        armed_for_ = deadline_;
        timer_.expires_at(armed_for_);
        co_await timer_.async_wait(use_nothrow);
        if (stopped_) break;
        if (Clock::now() >= deadline_) {
            expired_ = true;
            if (auto f = std::move(on_expire_)) f();
            break;
        }
    }
}

Alarm::Alarm(asio::any_io_executor executor, Millis after, std::function<void()> on_expire)
    : timer_(executor), state_(std::make_shared<State>()) {
    state_->on_expire = std::move(on_expire);
    timer_.expires_after(after);
    timer_.async_wait([state = state_](const error_code& ec) {
        if (ec || !state->armed) return;
        state->expired = true;
        state->armed = false;
        if (auto f = std::move(state->on_expire)) f();
    });
}

void Alarm::cancel() {
    if (!state_->armed) return;
    state_->armed = false;
    state_->on_expire = nullptr;
    timer_.cancel();
}

}  // namespace smtplb::io
