#pragma once
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <thread>
#include <vector>

#include "io/asio.hpp"

namespace smtplb::io {

// The event loops client sessions run on (server.threads). Loop 0 is the
// daemon's own io_context, which also runs the listeners' accepts, the
// admin API, health probes, the spool and the tracking-log flusher; each
// further loop is an io_context of its own on a thread of its own. A session
// stays on the loop it was given, with its backend connections, so
// everything per connection is single-threaded; what sessions share (pools,
// listener accounting, the tracking log) is locked.
class EventLoops {
  public:
    // Only `main`, run by the caller: no thread is started.
    explicit EventLoops(asio::io_context& main, std::size_t count = 1);
    // Stops and joins the threads it started.
    ~EventLoops();
    EventLoops(const EventLoops&) = delete;
    EventLoops& operator=(const EventLoops&) = delete;

    std::size_t size() const { return 1 + extra_.size(); }
    // How long a loop that has run out of events keeps looking for more
    // before it sleeps (server.busy_poll_us); 0 = sleep at once. Any thread.
    void set_busy_poll(std::chrono::microseconds window) {
        busy_poll_us_.store(window.count(), std::memory_order_relaxed);
    }
    asio::io_context& loop(std::size_t index) { return index == 0 ? main_ : *extra_[index - 1]; }
    // The loop for the next accepted connection, in turn. Called from loop 0 only.
    std::size_t next() { return size() == 1 ? 0 : next_++ % size(); }
    void start();
    // Runs loop 0 on the calling thread until it is stopped or out of work.
    void run_main() { run(main_); }
    // From now on a loop's thread ends as soon as its loop has no more work.
    void release();
    // Every thread started has ended (after release(), or stop()).
    bool all_ended() const { return ended_ == threads_.size(); }
    // Stops the loops now, whatever they still hold, and joins the threads.
    void stop();
    // Runs `task` on loop `index` and waits for it (here, when that loop's
    // thread has ended); from loop 0 only. Loops other than 0 never wait
    // for loop 0, so this cannot deadlock.
    void run_on(std::size_t index, const std::function<void()>& task);

  private:
    // Like io_context::run(), with the busy poll before each sleep.
    void run(asio::io_context& context);

    using WorkGuard = asio::executor_work_guard<asio::io_context::executor_type>;
    asio::io_context& main_;
    std::vector<std::unique_ptr<asio::io_context>> extra_;
    std::vector<WorkGuard> guards_;
    std::vector<std::thread> threads_;
    std::atomic<std::size_t> ended_ = 0;
    std::size_t next_ = 0;
    std::atomic<std::int64_t> busy_poll_us_ = 0;
};

// Runs `work` on `loop` and resumes the caller on its own loop with the
// result: how a session reaches what belongs to loop 0 (the spool, the AUTH
// verifier). Straight through when the caller already runs on `loop`.
template <typename T>
awaitable<T> on_loop(asio::io_context& loop, awaitable<T> work) {
    if (loop.get_executor().running_in_this_thread()) co_return co_await std::move(work);
    co_return co_await asio::co_spawn(loop, std::move(work), use_awaitable);
}

}  // namespace smtplb::io
