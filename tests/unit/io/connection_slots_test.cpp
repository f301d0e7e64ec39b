// Connection slots under a backend's max_connections, across event loops:
// a waiter is woken by a connection closed on another loop, gives up after
// connection_wait without touching the backend's health, and leaves the
// list when its loop goes away.
#include <gtest/gtest.h>

#include <atomic>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "base/clock.hpp"
#include "io/backend/connection_cache.hpp"
#include "io/backend/connection_slots.hpp"
#include "io/runtime/task_group.hpp"
#include "mocks/scripted_random.hpp"

using namespace smtplb;
using namespace std::chrono_literals;

namespace {

class Slots : public ::testing::Test {
  protected:
    void make_pool(std::uint32_t max_connections, io::Millis wait) {
        config::Pool p;
        p.name = "p";
        p.health.enabled = false;
        p.connection_wait = wait;
        config::Backend b;
        b.name = "b0";
        b.max_connections = max_connections;
        p.backends.push_back(b);
        pool = std::make_unique<core::Pool>(p, clock, random);
        slots->watch(*pool);
    }

    // reserve() on `io` (its loop's cache, if any, found by the slots), its
    // result kept in `out` once it is done.
    void spawn_reserve(io::asio::io_context& io, std::optional<io::ConnectionSlot>& out) {
        io::asio::co_spawn(
            io,
            [this, &out]() -> io::awaitable<void> {
                auto slot = co_await slots->reserve(*pool, 0, nullptr);
                out = std::move(slot);
            },
            io::asio::detached);
    }

    // Takes the only slot of a backend with max_connections 1, on a loop of its own.
    void hold_the_only_slot(std::optional<io::ConnectionSlot>& held, io::Millis wait) {
        make_pool(1, wait);
        io::asio::io_context here;
        spawn_reserve(here, held);
        here.run();
        ASSERT_TRUE(held && *held);
    }

    // Polls (at most 10 s) until a transaction waits for a slot.
    bool wait_for_waiter() {
        for (int i = 0; i < 1000 && !slots->waiting(*pool, 0); ++i)
            std::this_thread::sleep_for(10ms);
        return slots->waiting(*pool, 0);
    }

    std::vector<std::string> lines() {
        std::lock_guard lock(log_mutex);
        return log;
    }

    base::SystemClock clock;
    smtplb::testing::ScriptedRandom random{{0}};
    std::mutex log_mutex;
    std::vector<std::string> log;
    std::shared_ptr<io::ConnectionSlots> slots =
        std::make_shared<io::ConnectionSlots>([this](const std::string& line) {
            std::lock_guard lock(log_mutex);
            log.push_back(line);
        });
    std::unique_ptr<core::Pool> pool;
};

TEST_F(Slots, AWaiterOnAnotherLoopTakesTheSlotGivenBackOnThisOne) {
    std::optional<io::ConnectionSlot> held, waited;
    hold_the_only_slot(held, 60s);  // only a wake-up can end the wait in time for the test
    io::asio::io_context there;
    EXPECT_EQ(pool->backend(0).active_connections, 1u);

    spawn_reserve(there, waited);
    std::thread loop([&] { there.run(); });  // returns once the waiter is done
    ASSERT_TRUE(wait_for_waiter());
    EXPECT_FALSE(waited);
    held.reset();  // the connection closes here: the waiter's loop hears of it
    loop.join();
    ASSERT_TRUE(waited);
    EXPECT_TRUE(*waited) << waited->failure();
    EXPECT_EQ(pool->backend(0).active_connections, 1u);  // the waiter's slot now
    EXPECT_FALSE(slots->waiting(*pool, 0));
    waited.reset();
    EXPECT_EQ(pool->backend(0).active_connections, 0u);
    EXPECT_EQ(pool->backend(0).counters.connection_waits, 1u);
    EXPECT_EQ(pool->backend(0).counters.connection_wait_timeouts, 0u);
    ASSERT_EQ(lines().size(), 1u);
    EXPECT_NE(lines()[0].find("event=backend_connections_at_max pool=p backend=b0 "
                              "max_connections=1"),
              std::string::npos)
        << lines()[0];
}

TEST_F(Slots, AWaitThatRunsOutIsRefusedCountedAndLeavesHealthAlone) {
    make_pool(2, 100ms);
    io::asio::io_context io;
    std::optional<io::ConnectionSlot> first, second, third;
    spawn_reserve(io, first);
    spawn_reserve(io, second);
    spawn_reserve(io, third);
    io.run();
    ASSERT_TRUE(first && *first && second && *second && third);
    EXPECT_FALSE(*third);
    EXPECT_EQ(third->failure(), "no connection slot within 100ms (max_connections 2)");
    EXPECT_EQ(pool->backend(0).active_connections, 2u);  // the refusal holds none
    EXPECT_EQ(pool->backend(0).counters.connection_wait_timeouts, 1u);
    EXPECT_FALSE(slots->waiting(*pool, 0));
    EXPECT_TRUE(pool->usable(0));
    EXPECT_EQ(pool->backend(0).health.state(), core::HealthState::Up);
    auto all = lines();
    ASSERT_EQ(all.size(), 2u);
    EXPECT_NE(all[1].find("event=connection_wait_timeout pool=p backend=b0 max_connections=2 "
                          "connection_wait=100ms timeouts=1"),
              std::string::npos)
        << all[1];
    // opened(): the connection counts itself from now on, the slot not.
    pool->connection_opened(0);
    first->opened();
    EXPECT_EQ(pool->backend(0).active_connections, 2u);
    first.reset();
    EXPECT_EQ(pool->backend(0).active_connections, 2u);
}

TEST_F(Slots, NoWaitMeansNoQueueAndNoLimitMeansNoCount) {
    make_pool(1, 0ms);
    io::asio::io_context io;
    std::optional<io::ConnectionSlot> held, refused;
    spawn_reserve(io, held);
    spawn_reserve(io, refused);
    io.run();
    ASSERT_TRUE(held && *held && refused);
    EXPECT_FALSE(*refused);
    EXPECT_EQ(pool->backend(0).counters.connection_wait_timeouts, 1u);
    EXPECT_FALSE(slots->waiting(*pool, 0));
    held.reset();
    refused.reset();

    make_pool(0, 0ms);  // no max_connections
    std::optional<io::ConnectionSlot> free_slot;
    spawn_reserve(io, free_slot);
    io.restart();
    io.run();
    ASSERT_TRUE(free_slot && *free_slot);
    EXPECT_EQ(pool->backend(0).active_connections, 0u);
    free_slot.reset();
    EXPECT_EQ(pool->backend(0).active_connections, 0u);
}

TEST_F(Slots, AnAbortEndsAWaitOnAClosingLoop) {
    std::optional<io::ConnectionSlot> held, waited;
    hold_the_only_slot(held, 60s);
    io::asio::io_context there;
    io::TaskGroup tasks;
    auto cache = std::make_shared<io::ConnectionCache>(there.get_executor(), tasks);
    cache->use_slots(slots);
    slots->add_cache(cache);
    spawn_reserve(there, waited);  // its cache is found by its loop
    std::thread loop([&] { there.run(); });
    ASSERT_TRUE(wait_for_waiter());
    cache->set_closing();
    slots->wake_all();
    loop.join();
    ASSERT_TRUE(waited);
    EXPECT_FALSE(*waited);
    EXPECT_EQ(waited->failure(), "shutting down");
    EXPECT_EQ(pool->backend(0).counters.connection_wait_timeouts, 0u);
    EXPECT_EQ(pool->backend(0).active_connections, 1u);
}

TEST_F(Slots, AWaiterWhoseLoopIsGoneIsNeverWoken) {
    std::optional<io::ConnectionSlot> held, waited;
    hold_the_only_slot(held, 60s);
    {
        io::asio::io_context gone;
        spawn_reserve(gone, waited);
        std::thread loop([&] { gone.run_for(300ms); });
        loop.join();
        EXPECT_TRUE(slots->waiting(*pool, 0));
    }  // destroyed with the waiter's coroutine in it
    EXPECT_FALSE(slots->waiting(*pool, 0));
    EXPECT_FALSE(waited);
    held.reset();  // nothing is posted to the loop that is gone (ASan would say)
    EXPECT_EQ(pool->backend(0).active_connections, 0u);
}

}  // namespace
