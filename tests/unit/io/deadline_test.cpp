// The shared-timer Deadline on a real io_context: it fires once its time has
// passed (within the resolution), moving it later postpones it, stop() and
// destruction cancel it, and a callback may end the Deadline walked next.
// Re-armable: one that fired fires again once re-armed, a suspended one does
// not fire until re-armed, and a callback may re-arm, stop or destroy its own.
#include <gtest/gtest.h>

#include <memory>

#include "io/runtime/deadline.hpp"

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

TEST(Deadline, OneThatFiredFiresAgainOnceReArmed) {
    io::asio::io_context io;
    int fired = 0;
    io::Deadline d(io.get_executor(), [&] { ++fired; });
    d.expires_after(0ms);
    ASSERT_TRUE(run_until(
        io, [&] { return fired == 1; }, 5s));
    EXPECT_TRUE(d.expired());
    EXPECT_FALSE(d.armed());
    // Not again without being re-armed.
    io.run_for(500ms);
    EXPECT_EQ(fired, 1);
    d.expires_after(0ms);
    EXPECT_FALSE(d.expired());  // a new step
    EXPECT_TRUE(run_until(
        io, [&] { return fired == 2; }, 5s));
    EXPECT_TRUE(d.expired());
    d.expires_after(0ms);
    EXPECT_TRUE(run_until(
        io, [&] { return fired == 3; }, 5s));
}

TEST(Deadline, ASuspendedDeadlineDoesNotFireUntilReArmed) {
    io::asio::io_context io;
    int fired = 0;
    io::Deadline d(io.get_executor(), [&] { ++fired; });
    d.expires_after(0ms);
    d.suspend();
    EXPECT_FALSE(d.armed());
    io.run_for(700ms);  // more than three walks of the list
    EXPECT_EQ(fired, 0);
    EXPECT_FALSE(d.expired());
    d.expires_after(0ms);
    EXPECT_TRUE(run_until(
        io, [&] { return fired == 1; }, 5s));
    // Suspended after a step that fired: expired() still tells about it.
    d.suspend();
    EXPECT_TRUE(d.expired());
    io.run_for(500ms);
    EXPECT_EQ(fired, 1);
}

TEST(Deadline, ANewDeadlineWaitsForItsFirstArming) {
    io::asio::io_context io;
    bool fired = false;
    io::Deadline d(io.get_executor(), [&] { fired = true; });
    EXPECT_FALSE(d.armed());
    io.run_for(500ms);
    EXPECT_FALSE(fired);
}

TEST(Deadline, ACallbackMayReArmStopOrDestroyItsOwnDeadline) {
    io::asio::io_context io;
    int rearmed = 0, stopped = 0, destroyed = 0;
    io::Deadline again(io.get_executor(), [&] {
        if (++rearmed < 3) again.expires_after(0ms);
    });
    io::Deadline stopper(io.get_executor(), [&] {
        ++stopped;
        stopper.stop();
    });
    std::unique_ptr<io::Deadline> gone;
    gone = std::make_unique<io::Deadline>(io.get_executor(), [&] {
        ++destroyed;
        gone.reset();
    });
    again.expires_after(0ms);
    stopper.expires_after(0ms);
    gone->expires_after(0ms);
    EXPECT_TRUE(run_until(
        io, [&] { return rearmed == 3 && stopped == 1 && destroyed == 1; }, 5s));
    EXPECT_EQ(gone, nullptr);
    stopper.expires_after(0ms);  // stopped for good
    io.run_for(500ms);
    EXPECT_EQ(rearmed, 3);
    EXPECT_EQ(stopped, 1);
}

// The hold timer counts from a step that began earlier: expires_at a time
// already past fires at the next walk; one in the future waits for it.
TEST(Deadline, ExpiresAtCountsFromAnEarlierStart) {
    io::asio::io_context io;
    int fired = 0;
    io::Deadline d(io.get_executor(), [&] { ++fired; });
    d.expires_at(io::Deadline::Clock::now() - 1s);
    EXPECT_TRUE(run_until(
        io, [&] { return fired == 1; }, 2s));
    d.expires_at(io::Deadline::Clock::now() + 10s);
    io.run_for(500ms);
    EXPECT_EQ(fired, 1);
    EXPECT_TRUE(d.armed());
}
