#pragma once
#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/limits/limit_batch.hpp"
#include "core/limits/limit_store.hpp"
#include "io/asio.hpp"
#include "io/cluster/cluster_messages.hpp"
#include "io/cluster/place_pools.hpp"
#include "io/cluster/redis_client.hpp"

namespace smtplb::io {

struct RedisLimitSettings {
    std::string key_prefix = "smtplb";
    std::string node = "node";
    std::chrono::milliseconds lease_ttl{15000};
};

// The shared limits' state in Redis (docs/cluster.md, "Shared limits"): a
// Lua script runs each core::LimitBatch atomically with Redis's own clock
// (TIME), so that the nodes' clocks do not matter. A rate key is a string
// holding its TAT in microseconds, expiring once it has recovered; a
// concurrency key a sorted set of leases NODE:ID scored by their expiry,
// renewed by this node every lease_ttl/3 in one request, so that a node
// that dies frees its places within lease_ttl.
//
// One script call at a time, and at most one per kMinCallInterval: the
// batches that come meanwhile wait and go together in the next call (each
// still all or nothing, run in order), with the leases given back since.
// Under load a call carries many transactions' events, so round trips per
// transaction fall below one, for at most kMinCallInterval more per event;
// an idle node sends each batch at once. A lease given back while nothing
// else goes waits kReleaseDelay for company.
//
// Every call is made on `executor`, the client's (the first loop): hiredis
// is single-threaded. Sessions on the other loops hop onto it (execute()
// posts there) and back (the caller's completion is posted to the caller's
// executor). One client for all loops: one connection.
//
// As a LimitStore only release() matters (LimitLease gives a place back
// through it); the rest answers as a store that remembers nothing.
class RedisLimitStore final : public core::LimitStore,
                              public std::enable_shared_from_this<RedisLimitStore> {
  public:
    using Done = std::function<void(std::optional<core::LimitBatchResult>, RedisReply::Kind)>;

    RedisLimitStore(asio::any_io_executor executor, std::unique_ptr<RedisClient> client,
                    RedisLimitSettings settings);
    ~RedisLimitStore() override;

    void start();  // connects; renews the held leases until stop()
    void stop();
    bool connected() const { return connected_.load(); }
    // Runs `batch` for limits named `names` (by the batch's indexes): any
    // thread; `done` on the client's executor, exactly once.
    void execute(std::vector<std::string> names, core::LimitBatch batch, Done done);

    // Redis round trips made, and the leases this node holds now.
    std::uint64_t round_trips() const { return round_trips_.load(); }
    std::size_t leases_held() const { return leases_held_.load(); }

    // LimitStore: release() is the fire-and-forget ZREM of a lease.
    core::GcraDecision rate(std::size_t, std::string_view, const core::Gcra&, TimePoint,
                            std::uint64_t, core::Gcra::Duration) override {
        return {true};
    }
    core::GcraDecision peek_rate(std::size_t, std::string_view, const core::Gcra&, TimePoint,
                                 std::uint64_t, core::Gcra::Duration) override {
        return {true};
    }
    void refund_rate(std::size_t, std::string_view, const core::Gcra&, TimePoint,
                     std::uint64_t) override {}
    core::AcquireResult acquire(std::size_t, std::string_view, std::uint32_t) override {
        return core::AcquireResult::AtLimit;
    }
    void release(std::size_t limit, std::string_view lease) override;
    std::uint32_t in_use(std::size_t, std::string_view) override { return 0; }
    void expire(TimePoint) override {}
    core::LimitStoreStats stats(std::size_t) override { return {}; }
    std::vector<core::LimitKeyState> nearest(std::size_t, const core::Gcra*, TimePoint,
                                             std::size_t) override {
        return {};
    }

    // The script (tests: it parses; docs).
    static const char* batch_script();

    // The most batches one script call carries; the rest wait for the next.
    static constexpr std::size_t kMaxBatchesPerCall = 64;
    static constexpr std::chrono::microseconds kMinCallInterval{100};
    static constexpr std::chrono::milliseconds kReleaseDelay{100};

  private:
    struct Lease {
        std::size_t op;  // the operation sent that takes it
        std::string member;
        std::string key;
    };
    // One event's batch, waiting for or in a script call: the operations
    // sent (a concurrency place a pool here had is not).
    struct Queued {
        std::vector<std::string> keys;   // one per operation sent
        std::vector<std::string> args;   // their count, then six per operation
        std::vector<std::size_t> index;  // each one's index in the event's batch
        std::vector<Lease> leases;
        std::vector<std::pair<std::size_t, std::string>> local;  // places from pools
        std::size_t ops = 0;                                     // sent
        std::size_t total = 0;                                   // in the event's batch
        Done done;
    };
    using Call = std::shared_ptr<std::vector<Queued>>;
    void flush();
    void send(Call call, std::vector<std::string> command_args);
    void answer(const Call& call, const RedisReply& reply);
    void fail_all(RedisReply::Kind kind);
    void give_back_local(Queued& q);
    // Pools no longer in use: removed from Redis with the next call.
    void give_back_pools(std::chrono::steady_clock::time_point now);
    void load_script();
    void renew();

    asio::any_io_executor executor_;
    std::unique_ptr<RedisClient> client_;
    RedisLimitSettings settings_;
    std::string sha_;  // of batch_script(), as SCRIPT LOAD answers it
    asio::steady_timer renew_timer_;
    using SteadyTime = std::chrono::steady_clock::time_point;
    // Sends what waits at `at` (or sooner, if already asked to).
    void flush_at(SteadyTime at);
    asio::steady_timer flush_timer_;
    std::optional<SteadyTime> flush_due_;  // when the armed timer fires
    SteadyTime last_call_{};               // when the last script call went
    SteadyTime first_release_{};           // when the oldest waiting release came
    std::vector<Queued> queued_;
    Call in_flight_;  // the batches of the call Redis has not answered yet
    std::vector<std::pair<std::string, std::string>> releases_;  // key, member: to ZREM
    // Held leases: member -> Redis key (on the executor only).
    std::map<std::string, std::string> held_;
    PlacePools pools_;
    std::uint64_t next_lease_ = 1;
    bool running_ = false;
    std::atomic<bool> connected_{false};
    std::atomic<std::uint64_t> round_trips_{0};
    std::atomic<std::size_t> leases_held_{0};
};

}  // namespace smtplb::io
