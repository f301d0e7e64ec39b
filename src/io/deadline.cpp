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

}  // namespace smtplb::io
