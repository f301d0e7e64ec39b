#include "io/runtime/event_loops.hpp"

#include <future>

namespace smtplb::io {

EventLoops::EventLoops(asio::io_context& main, std::size_t count) : main_(main) {
    for (std::size_t i = 1; i < count; ++i) {
        // One thread runs each: the hint lets Asio skip the locking that
        // several threads on one io_context would need.
        extra_.push_back(std::make_unique<asio::io_context>(1));
        guards_.push_back(asio::make_work_guard(*extra_.back()));
    }
}

EventLoops::~EventLoops() {
    stop();
    // Handlers left on the loops are destroyed with them. The balancer
    // generations go first: their sockets and timers belong to these loops.
    extra_.clear();
}

void EventLoops::start() {
    for (auto& loop : extra_)
        threads_.emplace_back([this, &context = *loop] {
            run(context);
            ++ended_;
        });
}

void EventLoops::run(asio::io_context& context) {
    // Waking a thread that sleeps in epoll_wait costs more than the few
    // microseconds in which, on a busy machine, the next event usually
    // comes: a loop that has just run out of events looks again (poll(),
    // which never blocks) for a moment before it sleeps. Measured in
    // docs/decisions.md ("Busy poll").
    while (!context.stopped()) {
        const std::chrono::microseconds window{busy_poll_us_.load(std::memory_order_relaxed)};
        // run_one() runs queued handlers and sleeps in epoll when there are
        // none: as run() does.
        if (window.count() == 0) {
            context.run_one();
            continue;
        }
        if (context.poll() > 0) continue;
        bool ran = false;
        const auto until = std::chrono::steady_clock::now() + window;
        while (!ran && !context.stopped() && std::chrono::steady_clock::now() < until)
            ran = context.poll() > 0;
        if (!ran) context.run_one();  // out of work, the context stops instead
    }
}

void EventLoops::release() {
    guards_.clear();
}

void EventLoops::stop() {
    guards_.clear();
    for (auto& loop : extra_)
        loop->stop();
    for (auto& thread : threads_)
        thread.join();
    threads_.clear();
}

void EventLoops::run_on(std::size_t index, const std::function<void()>& task) {
    if (index == 0 || threads_.empty()) {
        task();
        return;
    }
    std::promise<void> done;
    auto finished = done.get_future();
    asio::post(loop(index), [&] {
        task();
        done.set_value();
    });
    while (finished.wait_for(std::chrono::milliseconds(10)) != std::future_status::ready) {
        // Released and out of work, the loop's thread has ended (or is
        // ending) and runs nothing more: the task runs here instead.
        if (loop(index).stopped()) {
            task();
            return;
        }
    }
}

}  // namespace smtplb::io
