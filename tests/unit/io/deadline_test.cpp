// The shared-timer Deadline on a real io_context: it fires once its time has
// passed (within the resolution), moving it later postpones it, stop() and
// destruction cancel it, and a callback may end the Deadline walked next.
#include <gtest/gtest.h>

#include <memory>

#include "io/deadline.hpp"

using namespace smtplb;
using namespace std::chrono_literals;

namespace {

// Runs the context until `done` or `limit` passes; returns whether done.
template <typename Done>
bool run_until(io::asio::io_context& io, Done done, std::chrono::milliseconds limit) {
    auto until = std::chrono::steady_clock::now() + limit;
    while (!done() && std::chrono::steady_clock::now() < until)
        io.run_for(10ms);
    return done();
}

}  // namespace

TEST(Deadline, FiresOnceAfterItsTimeAndNotBefore) {
    io::asio::io_context io;
    int fired = 0;
    io::Deadline d(io.get_executor(), [&] { ++fired; });
    d.expires_after(300ms);
    io.run_for(100ms);
    EXPECT_EQ(fired, 0);
    EXPECT_TRUE(run_until(
        io, [&] { return fired > 0; }, 5s));
    EXPECT_TRUE(d.expired());
    io.run_for(500ms);
    EXPECT_EQ(fired, 1);
}

TEST(Deadline, MovingItLaterPostponesIt) {
    io::asio::io_context io;
    bool fired = false;
    io::Deadline d(io.get_executor(), [&] { fired = true; });
    d.expires_after(250ms);
    io.run_for(100ms);
    d.expires_after(10s);
    io.run_for(600ms);
    EXPECT_FALSE(fired);
    d.expires_after(0ms);
    EXPECT_TRUE(run_until(
        io, [&] { return fired; }, 5s));
}

TEST(Deadline, StopAndDestructionCancelIt) {
    io::asio::io_context io;
    bool stopped_fired = false, destroyed_fired = false;
    io::Deadline stopped(io.get_executor(), [&] { stopped_fired = true; });
    stopped.expires_after(0ms);
    stopped.stop();
    {
        io::Deadline destroyed(io.get_executor(), [&] { destroyed_fired = true; });
        destroyed.expires_after(0ms);
    }
    io.run_for(600ms);
    EXPECT_FALSE(stopped_fired);
    EXPECT_FALSE(destroyed_fired);
    EXPECT_FALSE(stopped.expired());
}

TEST(Deadline, ACallbackMayEndTheDeadlinesWalkedAfterIt) {
    io::asio::io_context io;
    int fired = 0;
    // Newest first on the list: `first` is walked before `second`.
    auto second = std::make_unique<io::Deadline>(io.get_executor(), [&] { ++fired; });
    io::Deadline first(io.get_executor(), [&] {
        ++fired;
        second.reset();
    });
    first.expires_after(0ms);
    second->expires_after(0ms);
    EXPECT_TRUE(run_until(
        io, [&] { return fired > 0; }, 5s));
    io.run_for(500ms);
    EXPECT_EQ(fired, 1);
    EXPECT_EQ(second, nullptr);
}
