#include "io/runtime/task_group.hpp"

#include <algorithm>
#include <map>
#include <mutex>
#include <vector>

namespace smtplb::io {

namespace {

// A coroutine in wait(): its timer is woken, on its own executor, when the
// group becomes empty.
struct Waiter {
    explicit Waiter(const asio::any_io_executor& executor) : timer(executor) {}
    asio::steady_timer timer;
};

}  // namespace

struct TaskGroup::State {
    std::shared_ptr<State> parent;
    mutable std::mutex mutex;
    std::size_t count = 0;
    bool closed = false;
    bool stop_requested = false;
    std::uint64_t next_callback = 1;
    std::map<std::uint64_t, std::function<void()>> callbacks;
    std::vector<std::shared_ptr<Waiter>> waiters;

    // Counts one more task here and in the parents; false when one of them
    // is closed and `even_if_closed` is not set (a copy of a live token).
    bool add(bool even_if_closed) {
        {
            std::lock_guard guard(mutex);
            if (closed && !even_if_closed) return false;
            ++count;
        }
        if (parent && !parent->add(even_if_closed)) {
            release_here();
            return false;
        }
        return true;
    }

    void release() {
        release_here();
        if (parent) parent->release();
    }

    void release_here() {
        std::vector<std::shared_ptr<Waiter>> wake;
        {
            std::lock_guard guard(mutex);
            if (--count == 0) wake = waiters;
        }
        // Each on its own executor, where its coroutine runs: a timer is
        // not thread-safe. An expiry in the past also ends a wait that has
        // not begun yet.
        for (auto& w : wake)
            asio::post(w->timer.get_executor(),
                       [w] { w->timer.expires_at(Clock::time_point::min()); });
    }

    void request_stop() {
        std::vector<std::uint64_t> ids;
        {
            std::lock_guard guard(mutex);
            if (stop_requested) return;
            stop_requested = true;
            for (const auto& [id, callback] : callbacks)
                ids.push_back(id);
        }
        // One at a time, unlocked: a callback may register or remove others
        // (one removed by an earlier callback does not run).
        for (auto id : ids) {
            std::function<void()> callback;
            {
                std::lock_guard guard(mutex);
                auto it = callbacks.find(id);
                if (it == callbacks.end()) continue;
                callback = std::move(it->second);
                callbacks.erase(it);
            }
            callback();
        }
    }

    void remove_waiter(const std::shared_ptr<Waiter>& waiter) {
        std::lock_guard guard(mutex);
        std::erase(waiters, waiter);
    }
};

// What a Canceller and its task's completion handler share: the signal
// stays valid until both are gone, whatever ends first.
struct TaskGroup::Canceller::State {
    explicit State(const asio::any_io_executor& executor) : executor(executor) {}
    asio::any_io_executor executor;
    asio::cancellation_signal signal;
    bool ended = false;  // on the task's executor only
};

void TaskGroup::Canceller::operator()() const {
    if (!state_) return;
    asio::post(state_->executor, [state = state_] {
        if (!state->ended) state->signal.emit(asio::cancellation_type::terminal);
    });
}

TaskGroup::Token::Token(const Token& other) : state_(other.state_) {
    if (state_) state_->add(true);
}

TaskGroup::Token& TaskGroup::Token::operator=(const Token& other) {
    if (this != &other) *this = Token(other);
    return *this;
}

// Only an allocation failure in waking the group's waiters can throw here,
// and that ends the process anyway.
// NOLINTNEXTLINE(bugprone-exception-escape)
TaskGroup::Token& TaskGroup::Token::operator=(Token&& other) noexcept {
    if (this != &other) {
        reset();
        state_ = std::move(other.state_);
    }
    return *this;
}

void TaskGroup::Token::reset() {
    if (auto state = std::move(state_)) state->release();
}

TaskGroup::StopCallback::StopCallback(StopCallback&& other) noexcept
    : state_(std::move(other.state_)), id_(other.id_) {}

TaskGroup::StopCallback& TaskGroup::StopCallback::operator=(StopCallback&& other) noexcept {
    if (this != &other) {
        reset();
        state_ = std::move(other.state_);
        id_ = other.id_;
    }
    return *this;
}

void TaskGroup::StopCallback::reset() {
    if (auto state = std::move(state_)) {
        std::lock_guard guard(state->mutex);
        state->callbacks.erase(id_);
    }
}

TaskGroup::TaskGroup() : state_(std::make_shared<State>()) {}

TaskGroup::TaskGroup(TaskGroup& parent) : TaskGroup() {
    state_->parent = parent.state_;
    parent_stop_ = parent.on_stop([state = state_] { state->request_stop(); });
}

TaskGroup::~TaskGroup() {
    close();
}

bool TaskGroup::spawn(const asio::any_io_executor& executor, awaitable<void> task) {
    Token token = hold();
    if (!token) return false;
    // The handler runs (or is destroyed unrun, with its loop) after the
    // task's frame is gone: only then does the token leave the count.
    asio::co_spawn(executor, std::move(task),
                   [token = std::move(token)](const std::exception_ptr&) {});
    return true;
}

TaskGroup::Canceller TaskGroup::spawn_cancellable(const asio::any_io_executor& executor,
                                                  awaitable<void> task) {
    Token token = hold();
    if (!token) return Canceller();
    auto state = std::make_shared<Canceller::State>(executor);
    auto slot = state->signal.slot();
    asio::co_spawn(executor, std::move(task),
                   asio::bind_cancellation_slot(
                       slot, [token = std::move(token), state](const std::exception_ptr&) {
                           state->ended = true;
                       }));
    return Canceller(std::move(state));
}

TaskGroup::Token TaskGroup::hold() {
    if (!state_->add(false)) return Token();
    return Token(state_);
}

void TaskGroup::close() {
    std::lock_guard guard(state_->mutex);
    state_->closed = true;
}

bool TaskGroup::closed() const {
    std::lock_guard guard(state_->mutex);
    return state_->closed;
}

std::size_t TaskGroup::size() const {
    std::lock_guard guard(state_->mutex);
    return state_->count;
}

void TaskGroup::request_stop() {
    state_->request_stop();
}

bool TaskGroup::stop_requested() const {
    std::lock_guard guard(state_->mutex);
    return state_->stop_requested;
}

TaskGroup::StopCallback TaskGroup::on_stop(std::function<void()> callback) {
    {
        std::lock_guard guard(state_->mutex);
        if (!state_->stop_requested) {
            auto id = state_->next_callback++;
            state_->callbacks.emplace(id, std::move(callback));
            return StopCallback(state_, id);
        }
    }
    callback();
    return StopCallback();
}

awaitable<bool> TaskGroup::wait(Clock::time_point until) {
    auto state = state_;  // the group may go while this waits
    auto waiter = std::make_shared<Waiter>(co_await asio::this_coro::executor);
    struct Registration {
        std::shared_ptr<State> state;
        std::shared_ptr<Waiter> waiter;
        ~Registration() {
            if (waiter) state->remove_waiter(waiter);
        }
    } registration{state, nullptr};
    for (;;) {
        bool empty = false;
        {
            std::lock_guard guard(state->mutex);
            empty = state->count == 0;
            if (!empty && !registration.waiter) {
                state->waiters.push_back(waiter);
                registration.waiter = waiter;
            }
        }
        if (empty) co_return true;
        if (Clock::now() >= until) co_return false;
        // Woken early when the count reaches zero; it may have gone up
        // again by the time this runs, hence the loop.
        waiter->timer.expires_at(until);
        auto [ec] = co_await waiter->timer.async_wait(use_nothrow);
        (void)ec;
    }
}

}  // namespace smtplb::io
