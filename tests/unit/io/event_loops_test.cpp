// Several event loops (server.threads): connections are handed out in turn,
// on_loop() runs work on another loop and comes back to the caller's, and
// what sessions on different loops share (a pool, counters) stays exact when
// two threads use it at once. Run under ThreadSanitizer by sanitize.sh.
#include <gtest/gtest.h>

#include <atomic>
#include <thread>

#include "base/clock.hpp"
#include "base/counter.hpp"
#include "base/random.hpp"
#include "core/pool.hpp"
#include "io/runtime/event_loops.hpp"

using namespace smtplb;
using namespace std::chrono_literals;

TEST(EventLoops, ConnectionsGoToTheLoopsInTurn) {
    io::asio::io_context main;
    io::EventLoops three(main, 3);
    EXPECT_EQ(three.size(), 3u);
    std::vector<std::size_t> order;
    for (int i = 0; i < 6; ++i)
        order.push_back(three.next());
    EXPECT_EQ(order, (std::vector<std::size_t>{0, 1, 2, 0, 1, 2}));
    io::EventLoops one(main);
    EXPECT_EQ(one.next(), 0u);
    EXPECT_EQ(one.next(), 0u);
    EXPECT_EQ(&one.loop(0), &main);
}

TEST(EventLoops, OnLoopRunsTheWorkThereAndResumesTheCallerOnItsOwnLoop) {
    io::asio::io_context main;
    io::EventLoops loops(main, 2);
    loops.start();
    std::thread::id before, inside, after;
    int result = 0;
    bool done = false;
    io::asio::co_spawn(
        loops.loop(1),
        [&]() -> io::awaitable<void> {
            before = std::this_thread::get_id();
            result = co_await io::on_loop(main, [&]() -> io::awaitable<int> {
                inside = std::this_thread::get_id();
                co_return 42;
            }());
            after = std::this_thread::get_id();
            io::asio::post(main, [&] { done = true; });
        },
        io::asio::detached);
    auto until = std::chrono::steady_clock::now() + 10s;
    auto guard = io::asio::make_work_guard(main);
    while (!done && std::chrono::steady_clock::now() < until)
        main.run_for(10ms);
    loops.stop();
    ASSERT_TRUE(done);
    EXPECT_EQ(result, 42);
    EXPECT_EQ(inside, std::this_thread::get_id());  // the test thread runs `main`
    EXPECT_NE(before, inside);
    EXPECT_EQ(before, after);
}

TEST(EventLoops, RunOnWaitsForTheTaskOnItsLoop) {
    io::asio::io_context main;
    io::EventLoops loops(main, 2);
    loops.start();
    std::thread::id ran_on;
    loops.run_on(1, [&] { ran_on = std::this_thread::get_id(); });
    EXPECT_NE(ran_on, std::thread::id());
    EXPECT_NE(ran_on, std::this_thread::get_id());
    loops.release();
    auto until = std::chrono::steady_clock::now() + 10s;
    while (!loops.all_ended() && std::chrono::steady_clock::now() < until)
        std::this_thread::sleep_for(1ms);
    EXPECT_TRUE(loops.all_ended());  // nothing left to do: the thread ended by itself
    loops.stop();
}

// The busy poll changes when a loop sleeps, never what it runs: work posted
// from another thread while it polls or sleeps runs exactly once, timers
// fire, and a released loop still ends once it is out of work.
TEST(EventLoops, BusyPollLosesNothingAndStillEnds) {
    io::asio::io_context main;
    io::EventLoops loops(main, 2);
    loops.set_busy_poll(50us);
    std::atomic<int> ran = 0;
    std::atomic<bool> fired = false;
    io::asio::steady_timer timer(loops.loop(1), 20ms);
    timer.async_wait([&](const io::error_code& ec) { fired = !ec; });
    loops.start();
    constexpr int kTasks = 2000;
    for (int i = 0; i < kTasks; ++i) {
        io::asio::post(loops.loop(1), [&] { ++ran; });
        // Now and then long enough for the loop to give up polling and sleep.
        if (i % 200 == 0) std::this_thread::sleep_for(1ms);
    }
    loops.release();
    auto until = std::chrono::steady_clock::now() + 10s;
    while (!loops.all_ended() && std::chrono::steady_clock::now() < until)
        std::this_thread::sleep_for(1ms);
    EXPECT_TRUE(loops.all_ended());
    loops.stop();
    EXPECT_EQ(ran, kTasks);
    EXPECT_TRUE(fired);
}

TEST(EventLoops, MainLoopWithBusyPollEndsWhenStoppedOrOutOfWork) {
    io::asio::io_context main;
    io::EventLoops loops(main);
    loops.set_busy_poll(1000us);
    int ran = 0;
    io::asio::post(main, [&] { ++ran; });
    io::asio::post(main, [&] { ++ran; });
    loops.run_main();  // out of work: returns
    EXPECT_EQ(ran, 2);
    main.restart();
    auto guard = io::asio::make_work_guard(main);
    std::thread stopper([&] {
        std::this_thread::sleep_for(20ms);
        main.stop();
    });
    loops.run_main();  // never out of work: returns on stop()
    stopper.join();
    EXPECT_TRUE(main.stopped());
}

TEST(SharedState, PicksAndLoadFromTwoThreadsStayExact) {
    config::Pool config;
    config.name = "p";
    config.algorithm = config::Algorithm::LeastPending;
    config.health.enabled = false;
    for (int i = 0; i < 3; ++i) {
        config::Backend b;
        b.name = "b" + std::to_string(i);
        config.backends.push_back(b);
    }
    base::SystemClock clock;
    base::DefaultRandom random(7);
    core::Pool pool(config, clock, random);
    base::Counter messages;
    constexpr int kPerThread = 20000;
    auto work = [&] {
        for (int i = 0; i < kPerThread; ++i) {
            auto chosen = pool.pick(std::nullopt, {});
            ASSERT_TRUE(chosen);
            pool.transaction_started(*chosen);
            pool.connection_opened(*chosen);
            ++pool.backend(*chosen).counters.attempts;
            pool.report(*chosen, core::LiveOutcome::Success, "live MAIL");
            pool.transaction_ended(*chosen);
            pool.connection_closed(*chosen);
            ++messages;
        }
    };
    std::thread a(work), b(work);
    a.join();
    b.join();
    EXPECT_EQ(messages.load(), 2u * kPerThread);
    std::uint64_t attempts = 0;
    auto guard = pool.lock();
    for (const auto& backend : pool.backends()) {
        EXPECT_EQ(backend.pending, 0u);
        EXPECT_EQ(backend.active_connections, 0u);
        attempts += backend.counters.attempts;
    }
    EXPECT_EQ(attempts, 2u * kPerThread);
}
