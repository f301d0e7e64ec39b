// A [[limit]]'s hold (a tarpit): a timer on the session's loop, which a
// stopping generation cuts short rather than waits for.
#include <gtest/gtest.h>

#include <optional>
#include <thread>

#include "io/front/session_limits.hpp"
#include "io/runtime/task_group.hpp"

using namespace smtplb;
using namespace std::chrono_literals;

namespace {

// Runs hold_reply(group, d) on `io` until it has returned, at most `limit`.
std::optional<bool> hold(io::asio::io_context& io, io::TaskGroup& group, base::Clock::Duration d,
                         std::chrono::milliseconds limit = 10s) {
    std::optional<bool> result;
    io::asio::co_spawn(
        io,
        [&]() -> io::awaitable<void> {
            bool full = co_await io::hold_reply(group, d);
            result = full;
        },
        io::asio::detached);
    auto end = std::chrono::steady_clock::now() + limit;
    io.restart();
    while (!result && std::chrono::steady_clock::now() < end)
        io.run_for(10ms);
    return result;
}

TEST(HoldReply, EndsWhenItsTimeIsUp) {
    io::asio::io_context io;
    io::TaskGroup group;
    EXPECT_EQ(hold(io, group, 1ms), std::optional<bool>(true));
}

TEST(HoldReply, AStopFromAnotherThreadCutsItShort) {
    io::asio::io_context io;
    io::TaskGroup group;
    std::thread stopper([&] {
        std::this_thread::sleep_for(20ms);
        group.request_stop();
    });
    // An hour's hold: cut short, not waited for.
    auto result = hold(io, group, std::chrono::hours(1));
    stopper.join();
    EXPECT_EQ(result, std::optional<bool>(false));
}

TEST(HoldReply, AfterAStopNothingIsHeld) {
    io::asio::io_context io;
    io::TaskGroup group;
    group.request_stop();
    EXPECT_EQ(hold(io, group, std::chrono::hours(1)), std::optional<bool>(false));
}

}  // namespace
