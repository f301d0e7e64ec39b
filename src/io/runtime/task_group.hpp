#pragma once
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>

#include "io/asio.hpp"

namespace smtplb::io {

// Owns coroutines the way a scope owns objects: what is spawned into a
// group is counted until its frame is gone, and whoever owns what those
// frames refer to waits for the group to be empty before letting it go
// (no timer that guesses when they are done). Tasks may run on any event
// loop: the count is thread-safe.
//
// - spawn() starts a coroutine on an executor, counted until its frame has
//   been destroyed (it ended, or its loop was destroyed with it suspended).
// - hold() counts work that is not one coroutine (a chain of completion
//   handlers sharing an object, a handler posted to another loop) for as
//   long as the returned Token (or a copy of it) lives.
// - spawn_cancellable() is spawn() with a Canceller: a cancellation signal
//   for that one task (what it awaits then ends with operation_aborted).
// - close() refuses new work from then on: spawn() returns false and
//   destroys the task without starting it, hold() returns an empty Token.
//   A closed group found empty stays empty.
// - request_stop() asks the tasks to stop: each registered on_stop()
//   callback runs once, on the calling thread. It does not close the group.
// - wait() resumes the caller once the group is empty, or at a deadline.
//
// A child group (constructed with a parent) counts its tasks in the parent
// too, refuses work once either is closed, and is asked to stop with it.
//
// The group may be destroyed with tasks still counted (its state is shared
// with their tokens), but what they refer to must then outlive them.
class TaskGroup {
    struct State;

  public:
    using Clock = std::chrono::steady_clock;

    // One unit of counted work; copies count too. Empty when refused.
    class Token {
      public:
        Token() = default;
        Token(const Token& other);
        Token& operator=(const Token& other);
        Token(Token&& other) noexcept = default;
        Token& operator=(Token&& other) noexcept;
        ~Token() { reset(); }
        explicit operator bool() const { return state_ != nullptr; }
        void reset();

      private:
        friend class TaskGroup;
        explicit Token(std::shared_ptr<State> state) : state_(std::move(state)) {}
        std::shared_ptr<State> state_;
    };

    // An on_stop() callback's registration: destroying it takes the callback
    // off the list. Destroy it on the thread that requests the stop (or
    // make the callback safe to run until then).
    class StopCallback {
      public:
        StopCallback() = default;
        StopCallback(StopCallback&& other) noexcept;
        StopCallback& operator=(StopCallback&& other) noexcept;
        ~StopCallback() { reset(); }
        void reset();

      private:
        friend class TaskGroup;
        StopCallback(std::shared_ptr<State> state, std::uint64_t id)
            : state_(std::move(state)), id_(id) {}
        std::shared_ptr<State> state_;
        std::uint64_t id_ = 0;
    };

    // Ends one task's current wait: terminal cancellation, emitted on the
    // task's executor. From any thread, any number of times, also once the
    // task has ended (then it does nothing). Empty when the spawn was
    // refused. A task that wants to wind down by itself rather than throw
    // at its next co_await sets this_coro::throw_if_cancelled(false).
    class Canceller {
      public:
        Canceller() = default;
        void operator()() const;
        explicit operator bool() const { return state_ != nullptr; }

      private:
        friend class TaskGroup;
        struct State;
        explicit Canceller(std::shared_ptr<State> state) : state_(std::move(state)) {}
        std::shared_ptr<State> state_;
    };

    TaskGroup();
    explicit TaskGroup(TaskGroup& parent);
    // Closes the group; tasks still counted go on (see above).
    ~TaskGroup();
    TaskGroup(const TaskGroup&) = delete;
    TaskGroup& operator=(const TaskGroup&) = delete;

    // Starts `task` on `executor`, counted; false (and `task` destroyed
    // unstarted) when the group is closed. What the task throws is dropped,
    // as with asio::detached.
    bool spawn(const asio::any_io_executor& executor, awaitable<void> task);
    Canceller spawn_cancellable(const asio::any_io_executor& executor, awaitable<void> task);
    Token hold();
    void close();
    bool closed() const;
    // Tasks counted now (in a parent: with those of its children).
    std::size_t size() const;

    void request_stop();
    bool stop_requested() const;
    // Runs `callback` at request_stop(), or now when a stop was requested.
    [[nodiscard]] StopCallback on_stop(std::function<void()> callback);

    // True once the group is empty; false when `until` came first. The
    // caller's executor must not run it on two threads at once (an event
    // loop, or a strand).
    awaitable<bool> wait(Clock::time_point until = Clock::time_point::max());

  private:
    std::shared_ptr<State> state_;
    StopCallback parent_stop_;
};

}  // namespace smtplb::io
