// The task group a configuration generation owns its coroutines with: it
// counts them until their frames are gone, on any event loop, refuses work
// once closed, tells its tasks to stop, and can be awaited until empty.
#include <gtest/gtest.h>

#include <atomic>
#include <memory>
#include <optional>
#include <thread>

#include "io/runtime/event_loops.hpp"
#include "io/runtime/task_group.hpp"

using namespace smtplb;
using namespace std::chrono_literals;
using io::TaskGroup;

namespace {

// Sets a flag when destroyed: lives in a task's frame, to see that the
// group counts a task until its frame is gone.
struct FrameMark {
    explicit FrameMark(std::shared_ptr<std::atomic<bool>> flag) : flag(std::move(flag)) {}
    FrameMark(FrameMark&&) = default;  // the moved-from one marks nothing
    ~FrameMark() {
        if (flag) *flag = true;
    }
    std::shared_ptr<std::atomic<bool>> flag;
};

// A task that waits until `release` is set (checked on its own loop, every
// millisecond), with a FrameMark in its frame.
io::awaitable<void> parked(std::shared_ptr<std::atomic<bool>> release,
                           std::shared_ptr<std::atomic<bool>> frame_gone) {
    FrameMark mark(std::move(frame_gone));
    io::asio::steady_timer tick(co_await io::asio::this_coro::executor);
    while (!*release) {
        tick.expires_after(1ms);
        auto [ec] = co_await tick.async_wait(io::use_nothrow);
        (void)ec;
    }
}

// Runs group.wait(until) on `main` until it returns (bounded by `limit`).
std::optional<bool> wait_on(io::asio::io_context& main, TaskGroup& group,
                            TaskGroup::Clock::time_point until,
                            std::chrono::milliseconds limit = 10s) {
    std::optional<bool> result;
    io::asio::co_spawn(
        main,
        [&]() -> io::awaitable<void> {
            bool empty = co_await group.wait(until);
            result = empty;
        },
        io::asio::detached);
    auto end = std::chrono::steady_clock::now() + limit;
    main.restart();
    while (!result && std::chrono::steady_clock::now() < end)
        main.run_for(10ms);
    return result;
}

// Awaits the group on `main` and expects it to be found empty.
void expect_emptied(io::asio::io_context& main, TaskGroup& group,
                    TaskGroup::Clock::time_point until = TaskGroup::Clock::time_point::max()) {
    auto result = wait_on(main, group, until);
    ASSERT_TRUE(result.has_value()) << "the wait never returned";
    EXPECT_TRUE(*result);
    EXPECT_EQ(group.size(), 0u);
}

}  // namespace

TEST(TaskGroup, AwaitingAnEmptyGroupReturnsAtOnce) {
    io::asio::io_context main;
    TaskGroup group;
    std::optional<bool> result;
    io::asio::co_spawn(
        main,
        [&]() -> io::awaitable<void> {
            bool empty = co_await group.wait();  // no deadline at all
            result = empty;
        },
        io::asio::detached);
    main.poll();  // only what is ready now: no timer may be involved
    ASSERT_TRUE(result.has_value());
    EXPECT_TRUE(*result);
    EXPECT_EQ(group.size(), 0u);
}

TEST(TaskGroup, CountsUntilTheFrameIsGone) {
    io::asio::io_context main;
    TaskGroup group;
    auto release = std::make_shared<std::atomic<bool>>(false);
    auto gone = std::make_shared<std::atomic<bool>>(false);
    ASSERT_TRUE(group.spawn(main.get_executor(), parked(release, gone)));
    EXPECT_EQ(group.size(), 1u);
    // A deadline that comes first: false, and the task still counts.
    auto result = wait_on(main, group, TaskGroup::Clock::now() + 30ms);
    ASSERT_TRUE(result.has_value());
    EXPECT_FALSE(*result);
    EXPECT_EQ(group.size(), 1u);
    EXPECT_FALSE(*gone);
    *release = true;
    expect_emptied(main, group);
    EXPECT_TRUE(*gone);  // empty means the frame was destroyed before
}

TEST(TaskGroup, TasksOnTwoLoopsCompleteTheGroupWhenBothEnd) {
    io::asio::io_context main;
    io::EventLoops loops(main, 3);
    loops.start();
    TaskGroup group;
    auto release1 = std::make_shared<std::atomic<bool>>(false);
    auto release2 = std::make_shared<std::atomic<bool>>(false);
    auto gone1 = std::make_shared<std::atomic<bool>>(false);
    auto gone2 = std::make_shared<std::atomic<bool>>(false);
    ASSERT_TRUE(group.spawn(loops.loop(1).get_executor(), parked(release1, gone1)));
    ASSERT_TRUE(group.spawn(loops.loop(2).get_executor(), parked(release2, gone2)));
    EXPECT_EQ(group.size(), 2u);

    // The waiter is on loop 0 (the test's thread); the tasks end on two
    // other threads, one after the other.
    std::optional<bool> result;
    std::atomic<bool> first_gone_when_woken = false, second_gone_when_woken = false;
    io::asio::co_spawn(
        main,
        [&]() -> io::awaitable<void> {
            bool empty = co_await group.wait();
            first_gone_when_woken = gone1->load();
            second_gone_when_woken = gone2->load();
            result = empty;
        },
        io::asio::detached);
    main.run_for(20ms);
    EXPECT_FALSE(result.has_value());
    *release1 = true;
    auto until = std::chrono::steady_clock::now() + 10s;
    while (!*gone1 && std::chrono::steady_clock::now() < until)
        main.run_for(5ms);
    ASSERT_TRUE(*gone1);
    main.run_for(20ms);
    EXPECT_FALSE(result.has_value());  // one task left: still waiting
    EXPECT_EQ(group.size(), 1u);
    *release2 = true;
    while (!result && std::chrono::steady_clock::now() < until)
        main.run_for(5ms);
    loops.stop();
    ASSERT_TRUE(result.has_value());
    EXPECT_TRUE(*result);
    EXPECT_TRUE(first_gone_when_woken);
    EXPECT_TRUE(second_gone_when_woken);
    EXPECT_EQ(group.size(), 0u);
}

TEST(TaskGroup, ManyTasksOnSeveralLoopsAreCountedExactly) {
    io::asio::io_context main;
    io::EventLoops loops(main, 3);
    loops.start();
    TaskGroup group;
    std::atomic<int> ran = 0;
    constexpr int kTasks = 3000;
    for (int i = 0; i < kTasks; ++i)
        ASSERT_TRUE(group.spawn(loops.loop(1 + i % 2).get_executor(),
                                [](std::atomic<int>& n) -> io::awaitable<void> {
                                    ++n;
                                    co_return;
                                }(ran)));
    expect_emptied(main, group, TaskGroup::Clock::now() + 10s);
    loops.stop();
    EXPECT_EQ(ran, kTasks);
}

TEST(TaskGroup, WorkAfterCloseIsRefusedAndNeverStarts) {
    io::asio::io_context main;
    TaskGroup group;
    auto gone = std::make_shared<std::atomic<bool>>(false);
    group.close();
    EXPECT_TRUE(group.closed());
    bool started = false;
    auto task = [](bool& flag, FrameMark) -> io::awaitable<void> {
        flag = true;
        co_return;
    };
    FrameMark mark(gone);
    EXPECT_FALSE(group.spawn(main.get_executor(), task(started, std::move(mark))));
    EXPECT_TRUE(*gone);  // the refused task was destroyed unstarted
    EXPECT_FALSE(group.hold());
    EXPECT_EQ(group.size(), 0u);
    main.run();
    EXPECT_FALSE(started);
    expect_emptied(main, group);
}

TEST(TaskGroup, ClosingWithTasksLetsThemFinishButTakesNoMore) {
    io::asio::io_context main;
    TaskGroup group;
    auto release = std::make_shared<std::atomic<bool>>(false);
    auto gone = std::make_shared<std::atomic<bool>>(false);
    ASSERT_TRUE(group.spawn(main.get_executor(), parked(release, gone)));
    auto token = group.hold();
    ASSERT_TRUE(token);
    group.close();
    EXPECT_FALSE(group.spawn(main.get_executor(), parked(release, nullptr)));
    auto copy = token;  // a copy of live work still counts
    EXPECT_EQ(group.size(), 3u);
    token.reset();
    copy.reset();
    *release = true;
    expect_emptied(main, group);
    EXPECT_TRUE(*gone);
}

TEST(TaskGroup, TokensCountLikeTasksAndWakeTheWaiter) {
    io::asio::io_context main;
    TaskGroup group;
    auto token = std::make_unique<TaskGroup::Token>(group.hold());
    ASSERT_TRUE(*token);
    TaskGroup::Token moved = std::move(*token);
    EXPECT_EQ(group.size(), 1u);
    std::thread other([t = std::move(moved)]() mutable {
        std::this_thread::sleep_for(20ms);
        t.reset();  // released on another thread
    });
    expect_emptied(main, group, TaskGroup::Clock::now() + 10s);
    other.join();
}

TEST(TaskGroup, AChildCountsInItsParentAndStopsWithIt) {
    io::asio::io_context main;
    TaskGroup parent;
    TaskGroup child(parent);
    auto release = std::make_shared<std::atomic<bool>>(false);
    ASSERT_TRUE(child.spawn(main.get_executor(), parked(release, nullptr)));
    EXPECT_EQ(child.size(), 1u);
    EXPECT_EQ(parent.size(), 1u);
    auto parent_token = parent.hold();
    EXPECT_EQ(parent.size(), 2u);
    EXPECT_EQ(child.size(), 1u);

    int child_stops = 0;
    auto registration = child.on_stop([&] { ++child_stops; });
    parent.request_stop();
    EXPECT_TRUE(child.stop_requested());
    EXPECT_EQ(child_stops, 1);

    // A closed parent refuses the child's work too.
    parent.close();
    EXPECT_FALSE(child.hold());
    EXPECT_EQ(parent.size(), 2u);
    *release = true;
    expect_emptied(main, child);
    EXPECT_EQ(parent.size(), 1u);
    parent_token.reset();
    expect_emptied(main, parent);
}

TEST(TaskGroup, StopCallbacksRunOnceAndOnlyWhileRegistered) {
    TaskGroup group;
    int first = 0, second = 0, removed = 0;
    auto a = group.on_stop([&] { ++first; });
    auto b = group.on_stop([&] { ++second; });
    auto c = group.on_stop([&] { ++removed; });
    c.reset();
    // A callback that takes a later one off the list: that one does not run.
    TaskGroup::StopCallback late;
    auto d = group.on_stop([&] { late.reset(); });
    late = group.on_stop([&] { ++removed; });
    EXPECT_FALSE(group.stop_requested());
    group.request_stop();
    group.request_stop();
    EXPECT_TRUE(group.stop_requested());
    EXPECT_EQ(first, 1);
    EXPECT_EQ(second, 1);
    EXPECT_EQ(removed, 0);
    // Registered after the stop: runs at once.
    int after = 0;
    auto e = group.on_stop([&] { ++after; });
    EXPECT_EQ(after, 1);
    EXPECT_FALSE(group.closed());  // stopping is not closing
}

TEST(TaskGroup, ATaskDestroyedWithItsLoopLeavesTheGroup) {
    TaskGroup group;
    auto gone = std::make_shared<std::atomic<bool>>(false);
    {
        io::asio::io_context loop;
        auto never = std::make_shared<std::atomic<bool>>(false);
        ASSERT_TRUE(group.spawn(loop.get_executor(), parked(never, gone)));
        loop.run_for(5ms);  // suspended in its wait
        EXPECT_EQ(group.size(), 1u);
    }
    EXPECT_TRUE(*gone);
    EXPECT_EQ(group.size(), 0u);
}

TEST(TaskGroup, AWaiterOutlivesTheGroupSafely) {
    io::asio::io_context main;
    auto group = std::make_unique<TaskGroup>();
    auto token = group->hold();
    std::optional<bool> result;
    io::asio::co_spawn(
        main,
        [&, g = group.get()]() -> io::awaitable<void> {
            bool empty = co_await g->wait();
            result = empty;
        },
        io::asio::detached);
    main.run_for(5ms);
    group.reset();  // closed, its state kept by the token and the waiter
    token.reset();
    main.restart();
    main.run_for(100ms);
    ASSERT_TRUE(result.has_value());
    EXPECT_TRUE(*result);
}

TEST(TaskGroup, ACancellerEndsOneTasksWaitFromAnotherThread) {
    io::asio::io_context main;
    io::EventLoops loops(main, 2);
    loops.start();
    TaskGroup group;
    auto never = std::make_shared<std::atomic<bool>>(false);
    auto gone = std::make_shared<std::atomic<bool>>(false);
    std::atomic<bool> aborted = false;
    auto waits_an_hour = [](std::atomic<bool>& flag) -> io::awaitable<void> {
        co_await io::asio::this_coro::throw_if_cancelled(false);
        io::asio::steady_timer timer(co_await io::asio::this_coro::executor, 1h);
        auto [ec] = co_await timer.async_wait(io::use_nothrow);
        flag = ec == io::asio::error::operation_aborted;
    };
    auto cancel = group.spawn_cancellable(loops.loop(1).get_executor(), waits_an_hour(aborted));
    ASSERT_TRUE(cancel);
    // Another task, not cancelled: it still counts afterwards.
    ASSERT_TRUE(group.spawn(loops.loop(1).get_executor(), parked(never, gone)));
    cancel();  // from this thread; delivered on loop 1
    auto until = std::chrono::steady_clock::now() + 10s;
    while (!(aborted && group.size() == 1) && std::chrono::steady_clock::now() < until)
        std::this_thread::sleep_for(1ms);
    EXPECT_TRUE(aborted);
    EXPECT_EQ(group.size(), 1u);
    cancel();  // after the end: nothing happens
    *never = true;
    expect_emptied(main, group, TaskGroup::Clock::now() + 10s);
    loops.stop();
    EXPECT_TRUE(*gone);

    group.close();
    EXPECT_FALSE(group.spawn_cancellable(main.get_executor(), waits_an_hour(aborted)));
}
