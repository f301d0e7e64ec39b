#include "io/spool/spool.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "base/text.hpp"
#include "core/received.hpp"
#include "io/spool/posix_spool_files.hpp"

namespace smtplb::io {
namespace {

core::QueueSettings queue_settings(const config::Spool& s) {
    return {s.retry_initial, s.retry_max, s.max_queue_lifetime};
}

// A spool file is its body plus a head that is small next to it.
constexpr std::uint64_t kHeadAllowance = 4096;

}  // namespace

Spool::Spool(asio::io_context& io, const config::Config& config,
             std::unique_ptr<core::SpoolFiles> files)
    : io_(io),
      settings_(config.spool),
      root_(config.server.state_dir + "/spool"),
      files_(files ? std::move(files) : std::make_unique<PosixSpoolFiles>()),
      store_(*files_, root_),
      queue_(clock_, random_, queue_settings(settings_)),
      writers_(std::make_unique<asio::thread_pool>(settings_.writers)) {}

Spool::~Spool() {
    writers_->join();
    if (lock_fd_ >= 0) ::close(lock_fd_);
}

void Spool::configure(const config::Spool& settings) {
    settings_ = settings;
    queue_.set_settings(queue_settings(settings));
}

bool Spool::open(std::string& error) {
    if (weak_from_this().expired()) {  // what the writers hand back would be lost
        error = "internal error: the spool is not held by a shared_ptr";
        return false;
    }
    if (auto ec = store_.prepare()) {
        error = "cannot create the spool under \"" + root_ + "\": " + ec.message();
        return false;
    }
    auto lock_path = root_ + "/lock";
    lock_fd_ = ::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (lock_fd_ < 0 || ::flock(lock_fd_, LOCK_EX | LOCK_NB) != 0) {
        error = "the spool \"" + root_ + "\" is in use by another smtplb (" + std::strerror(errno) +
                ")";
        return false;
    }
    if (auto n = store_.quarantine_incomplete())
        log("event=spool_quarantined files=" + std::to_string(n) +
            " reason=\"never committed (no END record)\"");
    scan();
    return true;
}

void Spool::scan() {
    // Only directory listings: the arrival time is in the ID and the size
    // in the directory entry, so 100 000 files take a fraction of a second,
    // on a writer thread. Files are read and checked when delivered.
    scanning_ = true;
    // Each slice goes back to the loop with a reference to the spool, if it
    // is still owned: the destructor waits for the writers, so it never
    // runs on one of them.
    asio::post(*writers_, [this, weak = weak_from_this(), guard = asio::make_work_guard(io_)] {
        std::error_code ec_queue, ec_hold;
        auto queued = store_.list(core::SpoolArea::Queue, ec_queue);
        auto held = store_.list(core::SpoolArea::Hold, ec_hold);
        // Into the index in slices, so that sessions run between them.
        constexpr std::size_t kSlice = 2000;
        auto total_queued = queued.size(), total_held = held.size();
        auto all = std::make_shared<std::vector<std::pair<core::SpoolFiles::Entry, bool>>>();
        all->reserve(queued.size() + held.size());
        for (auto& e : queued)
            all->emplace_back(std::move(e), false);
        for (auto& e : held)
            all->emplace_back(std::move(e), true);
        for (std::size_t from = 0; from < all->size() || from == 0; from += kSlice) {
            bool last = from + kSlice >= all->size();
            auto self = weak.lock();
            if (!self) return;
            asio::post(io_, [self = std::move(self), this, all, from, last, total_queued,
                             total_held] {
                auto to = std::min(all->size(), from + kSlice);
                auto now_ms = clock_.wall_ms();
                for (auto i = from; i < to; ++i) {
                    const auto& [e, is_held] = (*all)[i];
                    queue_.add(e.name, core::spool_id_time_ms(e.name), e.size, is_held);
                    // A deferred message keeps its next attempt (file mtime),
                    // at most retry_max away (a clock that jumped, a touch).
                    if (e.mtime_ms > now_ms)
                        queue_.postpone(e.name, std::min<std::chrono::milliseconds>(
                                                    std::chrono::milliseconds(e.mtime_ms - now_ms),
                                                    settings_.retry_max));
                }
                if (to > from) wake();
                if (!last) return;
                scanning_ = false;
                log("event=spool_recovered queued=" + std::to_string(total_queued) +
                    " held=" + std::to_string(total_held));
            });
            if (last) break;
        }
    });
}

std::string client_key(const proto::ClientIdentity& id) {
    return id.address.to_string() + " " + std::to_string(id.port) + " " +
           id.local_address.to_string() + " " + std::to_string(id.local_port) + " " + id.helo +
           " " + id.login;
}

bool Spool::has_room(std::uint64_t size) const {
    return queue_.size() + reserved_messages_ < settings_.max_messages &&
           queue_.bytes() + reserved_bytes_ + size + kHeadAllowance <= settings_.max_size;
}

std::string Spool::next_id() {
    auto us = std::chrono::duration_cast<std::chrono::microseconds>(
                  std::chrono::system_clock::now().time_since_epoch())
                  .count();
    // Strictly increasing, also when the clock steps back or many arrive at once.
    if (us <= last_id_us_) {
        if (++id_sequence_ > 0xFFF) {
            ++last_id_us_;
            id_sequence_ = 0;
        }
    } else {
        last_id_us_ = us;
        id_sequence_ = 0;
    }
    return core::make_spool_id(last_id_us_, id_sequence_);
}

awaitable<Spool::Committed> Spool::commit(proto::SpoolEnvelope envelope,
                                          std::vector<proto::Mailbox> recipients,
                                          const proto::BodySource& plain_body,
                                          std::string received_by) {
    Committed out;
    std::uint64_t size = plain_body.size() + kHeadAllowance;
    if (!has_room(plain_body.size())) {
        ++counters_.refused_full;
        out.result.error = std::make_error_code(std::errc::no_space_on_device);
        out.result.stage = "spool full";
        co_return out;
    }
    ++reserved_messages_;
    reserved_bytes_ += size;
    auto id = next_id();
    // smtplb takes responsibility for the message here: it says so, as an
    // MTA does (RFC 5321 §4.4), before anything else reads the file. (One
    // named local, no temporaries: GCC 12's coroutine frames, io/asio.hpp.)
    std::string trace;
    if (!received_by.empty())
        trace = core::received_header(envelope.identity, received_by, id, recipients,
                                      envelope.arrival_ms);
    core::PrefixedBody body(std::move(trace), plain_body);
    auto* store = &store_;
    auto* body_source = &body;
    auto* env = &envelope;
    auto* rcpts = &recipients;
    // Named, not a temporary in the co_await (GCC 12, see io/asio.hpp).
    std::function<core::CommitResult()> work = [store, id, env, rcpts, body_source] {
        return store->commit(id, *env, *rcpts, *body_source);
    };
    auto result = co_await offload<core::CommitResult>(std::move(work));
    --reserved_messages_;
    reserved_bytes_ -= size;
    out.result = result;
    if (result.error) {
        ++counters_.commit_failed;
        log("event=spool_commit_failed stage=\"" + std::string(result.stage) + "\" error=\"" +
            result.error.message() + "\"");
        co_return out;
    }
    ++counters_.spooled;
    out.id = id;
    queue_.add(id, envelope.arrival_ms, result.bytes, false, envelope.pool,
               client_key(envelope.identity));
    wake();
    co_return out;
}

void Spool::discard(const std::string& id, std::shared_ptr<core::SpoolMessage> message) {
    asio::post(
        *writers_, [this, weak = weak_from_this(), id, message = std::move(message)]() mutable {
            message.reset();
            auto ec = store_.remove(core::SpoolArea::Queue, id, false);
            if (!ec || ec == std::errc::no_such_file_or_directory) return;
            if (auto self = weak.lock())  // as in scan()
                asio::post(io_, [self = std::move(self), this, id, ec] {
                    log("event=spool_file_error id=" + id + " error=\"" + ec.message() + "\"");
                });
        });
}

void Spool::remember_next_attempt(const std::string& id, std::int64_t epoch_ms) {
    asio::post(*writers_, [this, id, epoch_ms] { store_.set_next_attempt(id, epoch_ms); });
}

bool Spool::hold(const std::string& id, std::string& error) {
    const auto* entry = queue_.find(id);
    if (!entry) {
        error = "no queued message " + id;
        return false;
    }
    if (entry->state == core::SpoolQueue::State::Held) return true;
    if (entry->state == core::SpoolQueue::State::Busy) {
        error = "message " + id + " is being delivered now; try again in a moment";
        return false;
    }
    if (auto ec = store_.move(id, core::SpoolArea::Queue, core::SpoolArea::Hold)) {
        error = "cannot move " + id + " to hold/: " + ec.message();
        return false;
    }
    queue_.hold(id);
    log("event=spool_hold id=" + id);
    return true;
}

bool Spool::release(const std::string& id, std::string& error) {
    const auto* entry = queue_.find(id);
    if (!entry || entry->state != core::SpoolQueue::State::Held) {
        error = "no held message " + id;
        return false;
    }
    if (auto ec = store_.move(id, core::SpoolArea::Hold, core::SpoolArea::Queue)) {
        error = "cannot move " + id + " back to queue/: " + ec.message();
        return false;
    }
    queue_.release(id);
    log("event=spool_release id=" + id);
    wake();
    return true;
}

bool Spool::remove(const std::string& id, std::string& error) {
    const auto* entry = queue_.find(id);
    if (!entry) {
        error = "no queued message " + id;
        return false;
    }
    if (entry->state == core::SpoolQueue::State::Busy) {
        error = "message " + id + " is being delivered now; try again in a moment";
        return false;
    }
    if (auto ec = store_.remove(area_of(*entry), id)) {
        error = "cannot delete " + id + ": " + ec.message();
        return false;
    }
    queue_.remove(id);
    log("event=spool_delete id=" + id);
    return true;
}

void Spool::drain_soon(const std::string& pool, core::SpoolQueue::DrainCause cause,
                       const std::string& backend) {
    using Cause = core::SpoolQueue::DrainCause;
    if (cause == Cause::SlotFreed && !slot_waiters_.load(std::memory_order_relaxed)) return;
    asio::post(io_, [weak = weak_from_this(), pool, cause, backend] {
        if (auto self = weak.lock()) self->drain(pool, cause, backend);
    });
}

void Spool::drain(const std::string& pool, core::SpoolQueue::DrainCause cause,
                  const std::string& backend) {
    auto due = queue_.drain(pool, cause);
    note_slot_waiters();
    if (due == 0) return;
    ++counters_.drains;
    counters_.drained += due;
    bool returned = cause == core::SpoolQueue::DrainCause::BackendReturned;
    log("event=spool_drain pool=" + base::logfmt_value(pool) +
        " backend=" + base::logfmt_value(backend) +
        " cause=" + (returned ? "backend_returned" : "slot_freed") + " due=" + std::to_string(due));
    wake();
}

void Spool::flush() {
    queue_.flush();
    log("event=spool_flush queued=" + std::to_string(queue_.size()));
    wake();
}

}  // namespace smtplb::io
