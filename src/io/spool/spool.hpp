#pragma once
#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "base/clock.hpp"
#include "base/random.hpp"
#include "config/config.hpp"
#include "core/spool_queue.hpp"
#include "core/spool_store.hpp"
#include "io/asio.hpp"

namespace smtplb::io {

// One original client connection (address, port, HELO, login): what an
// XCLIENT sets on a backend connection.
std::string client_key(const proto::ClientIdentity& identity);

struct SpoolCounters {
    std::uint64_t spooled = 0;        // acknowledged with 250 after the commit
    std::uint64_t commit_failed = 0;  // 452 4.3.1: write, fsync or rename failed
    std::uint64_t refused_full = 0;   // over max_messages or max_size
    std::uint64_t delivered = 0;      // recipients a backend took from the spool
    std::uint64_t deferred = 0;       // attempts that left recipients for later
    std::uint64_t bounced = 0;        // recipients reported to the sender in a DSN
    std::uint64_t expired = 0;        // messages that reached max_queue_lifetime
    std::uint64_t corrupt = 0;        // files moved to corrupt/ (never delivered)
    std::uint64_t dead = 0;           // files moved to dead/ (no way to bounce)
    std::uint64_t drains = 0;         // a pool returned: its waiting messages made due
    std::uint64_t drained = 0;        // messages those drains made due
};

// The durable queue under state_dir/spool, shared by configuration
// generations (a reload keeps it and its index). The commit protocol and the
// file moves run on a few writer threads, so an fsync never stalls the event
// loop; the index (core::SpoolQueue) lives on the event loop thread.
// Always held by a shared_ptr: what a writer thread hands back to the event
// loop owns the spool until it has run (or been dropped with the loop).
class Spool : public std::enable_shared_from_this<Spool> {
  public:
    using EventLog = std::function<void(const std::string& line)>;
    Spool(asio::io_context& io, const config::Config& config,
          std::unique_ptr<core::SpoolFiles> files = nullptr);
    ~Spool();
    Spool(const Spool&) = delete;
    Spool& operator=(const Spool&) = delete;

    // Creates the areas, takes the lock that keeps a second daemon (or an
    // offline `smtplb queue`) out, quarantines unfinished files and starts
    // reading the queue in the background; new mail is accepted meanwhile.
    bool open(std::string& error);
    const std::string& root() const { return root_; }
    void set_event_log(EventLog log) { event_log_ = std::move(log); }
    void log(const std::string& line) const {
        if (event_log_) event_log_(line);
    }
    // New settings after a reload (limits, backoff, concurrency).
    void configure(const config::Spool& settings);
    const config::Spool& settings() const { return settings_; }

    // Room for one more message of about `size` bytes?
    bool has_room(std::uint64_t size) const;
    struct Committed {
        std::string id;  // empty when not committed
        core::CommitResult result;
    };
    // Writes one message durably; only a result with an id may be answered 250.
    // With `received_by` (this host's name), a Received: header naming the
    // client and the spool id goes in front of the message (core/received);
    // empty for mail smtplb writes itself (a DSN). No default argument: a
    // temporary in a co_await is destroyed twice by GCC 12.
    awaitable<Committed> commit(proto::SpoolEnvelope envelope,
                                std::vector<proto::Mailbox> recipients,
                                const proto::BodySource& body, std::string received_by);

    // Removes a delivered message's file on a writer thread, without waiting:
    // unlinking, and closing the last descriptor of an unlinked file, can
    // wait on the file system's journal, which must not stall the event
    // loop. The index no longer holds the message; if a crash comes first,
    // it is delivered again (a duplicate, never a loss).
    void discard(const std::string& id, std::shared_ptr<core::SpoolMessage> message);
    // Writes a deferred message's next attempt into its file's mtime, on a
    // writer thread, without waiting (a hint that survives a restart).
    void remember_next_attempt(const std::string& id, std::int64_t epoch_ms);

    // Runs `work` on a writer thread and resumes on the event loop.
    template <typename T>
    awaitable<T> offload(std::function<T()> work);

    core::SpoolStore& store() { return store_; }
    core::SpoolQueue& queue() { return queue_; }
    SpoolCounters& counters() { return counters_; }
    bool scanning() const { return scanning_; }
    // Wakes the deliverer of the current generation (new mail, flush, release).
    void set_waker(const void* owner, std::function<void()> waker) {
        waker_owner_ = owner;
        waker_ = std::move(waker);
    }
    void clear_waker(const void* owner) {
        if (waker_owner_ == owner) set_waker(nullptr, nullptr);
    }
    void wake() {
        if (waker_) waker_();
    }
    std::string next_id();
    // A backend of `pool` returned to service, or a connection slot to one
    // freed up (from any thread): the messages that waited for that become
    // due now, on the spool's loop (core::SpoolQueue::drain), and the
    // deliverer is woken. A freed slot costs nothing while no message
    // waits for one.
    void drain_soon(const std::string& pool, core::SpoolQueue::DrainCause cause,
                    const std::string& backend);
    // After a deferral: whether any message now waits for a slot.
    void note_slot_waiters() { slot_waiters_ = queue_.any_slot_waiters(); }

    // Queue administration (`smtplb queue`, the admin API). File moves run
    // on the calling thread: they are rare and take milliseconds. False
    // with the reason (unknown ID, being delivered, a file error).
    bool hold(const std::string& id, std::string& error);
    bool release(const std::string& id, std::string& error);
    bool remove(const std::string& id, std::string& error);
    void flush();
    // Where a queued message's file is now.
    core::SpoolArea area_of(const core::SpoolQueue::Entry& entry) const {
        return entry.state == core::SpoolQueue::State::Held ? core::SpoolArea::Hold
                                                            : core::SpoolArea::Queue;
    }

  private:
    void scan();
    void drain(const std::string& pool, core::SpoolQueue::DrainCause cause,
               const std::string& backend);

    asio::io_context& io_;
    config::Spool settings_;
    std::string root_;
    std::unique_ptr<core::SpoolFiles> files_;
    core::SpoolStore store_;
    base::SystemClock clock_;
    base::DefaultRandom random_;
    core::SpoolQueue queue_;
    std::unique_ptr<asio::thread_pool> writers_;
    int lock_fd_ = -1;
    std::uint64_t reserved_messages_ = 0;
    std::uint64_t reserved_bytes_ = 0;
    std::int64_t last_id_us_ = 0;
    std::uint32_t id_sequence_ = 0;
    bool scanning_ = false;
    std::atomic<bool> slot_waiters_{false};
    SpoolCounters counters_;
    EventLog event_log_;
    std::function<void()> waker_;
    const void* waker_owner_ = nullptr;
};

template <typename T>
awaitable<T> Spool::offload(std::function<T()> work) {
    auto initiate = [this, work = std::move(work)](auto handler) mutable {
        auto io_executor = asio::get_associated_executor(handler, io_.get_executor());
        auto guard = asio::make_work_guard(io_executor);
        asio::post(*writers_, [work = std::move(work), handler = std::move(handler),
                               guard = std::move(guard)]() mutable {
            T result = work();
            auto executor = guard.get_executor();
            asio::post(executor,
                       [handler = std::move(handler), result = std::move(result)]() mutable {
                           std::move(handler)(std::move(result));
                       });
        });
    };
    // Not a coroutine itself: the awaitable comes straight from Asio.
    return asio::async_initiate<decltype(use_awaitable), void(T)>(std::move(initiate),
                                                                  use_awaitable);
}

}  // namespace smtplb::io
