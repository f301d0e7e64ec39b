#pragma once
#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "base/clock.hpp"
#include "base/counter.hpp"
#include "core/health.hpp"

// The pure half of the nodes' shared administrative state in Redis
// (docs/cluster.md): what Redis's hash means for this node's backends,
// when a read is stale, how long to wait before reconnecting, and which
// switches of the link are worth a log line. No sockets, no clock of its
// own: io/cluster carries it out.
namespace smtplb::core::cluster {

// One backend's administrative state, as set through the admin API.
struct AdminEntry {
    std::string pool;
    std::string backend;
    AdminState state = AdminState::Enabled;
};

// The hash's field for a backend: "POOL/BACKEND". Only ever built from the
// configuration's names, never parsed, so a '/' in a name is harmless.
std::string admin_field(const std::string& pool, const std::string& backend);

// What this node must change so that its backends match Redis's hash.
// Redis wins: a backend whose field is missing is enabled (nobody set it,
// or it was set while Redis was unreachable and stayed local). A value
// that is not a state is left alone and named in `unreadable`.
struct Reconciliation {
    std::vector<AdminEntry> changes;
    std::vector<std::string> unreadable;  // fields whose value made no sense
};
Reconciliation reconcile(const std::vector<AdminEntry>& local,
                         const std::map<std::string, std::string>& remote);

// Reads of the hash that a local write overtook are stale: applying one
// would undo, for a moment, the change this node has just made. A read is
// fresh when no local write was issued after it; the write's own
// announcement triggers the next read.
class ReadGuard {
  public:
    std::uint64_t begin_read() const { return writes_; }
    void wrote() { ++writes_; }
    bool fresh(std::uint64_t token) const { return token == writes_; }

  private:
    std::uint64_t writes_ = 0;
};

// Time between attempts to reach Redis: `initial`, doubling up to `max`,
// back to `initial` once connected.
class ReconnectBackoff {
  public:
    ReconnectBackoff(std::chrono::milliseconds initial, std::chrono::milliseconds max)
        : initial_(initial), max_(max), next_(initial) {}
    std::chrono::milliseconds next();
    void reset() { next_ = initial_; }

  private:
    std::chrono::milliseconds initial_;
    std::chrono::milliseconds max_;
    std::chrono::milliseconds next_;
};

// The link to Redis as the log and the metrics see it: one line when it
// goes (however many reconnects fail afterwards) and one when it returns.
class LinkState {
  public:
    enum class State { Starting, Up, Down };
    // The log line for this switch, if it is one.
    std::optional<std::string> connected(base::Clock::TimePoint now, const std::string& redis);
    std::optional<std::string> lost(base::Clock::TimePoint now, const std::string& redis,
                                    const std::string& reason);
    State state() const { return state_; }
    bool up() const { return state_ == State::Up; }

  private:
    State state_ = State::Starting;
    base::Clock::TimePoint since_{};
};

// What /metrics shows of the cluster link; shared by the generations.
struct ClusterStats {
    std::atomic<bool> redis_up{false};
    base::Counter switched_down = 0;  // lost or never reached, once per switch
    base::Counter switched_up = 0;
    base::Counter request_timeouts = 0;  // requests past their deadline
    base::Counter request_errors = 0;    // error replies, lost connections
    base::Counter admin_applied = 0;     // backends changed here from Redis
    base::Counter admin_local_only = 0;  // set here while Redis was unreachable
    // Redis Sentinel: moves to another master, and the one in use now.
    base::Counter master_changes = 0;
    void set_master(std::string address) {
        std::lock_guard lock(master_mutex_);
        master_ = std::move(address);
    }
    std::string master() const {
        std::lock_guard lock(master_mutex_);
        return master_;
    }

  private:
    mutable std::mutex master_mutex_;
    std::string master_;
};

}  // namespace smtplb::core::cluster
