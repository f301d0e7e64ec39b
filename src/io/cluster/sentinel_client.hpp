#pragma once
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "base/network.hpp"
#include "io/asio.hpp"
#include "io/cluster/cluster_messages.hpp"
#include "io/cluster/redis_client.hpp"

// Redis Sentinel (docs/cluster.md "Redis Sentinel"): the master is
// whichever the sentinels name, and it moves when they fail over.
namespace smtplb::io {

struct SentinelSettings {
    std::vector<base::HostPort> sentinels;
    std::string master_name;
    // Between rounds of questions when no sentinel named a usable master.
    Millis retry{250};
};

// A RedisClient whose server is the master the sentinels name. It asks
// them in turn (SENTINEL get-master-addr-by-name, each with the short
// deadline of its connection), connects to the address given, checks with
// ROLE that it is the master, and follows failovers: at once on a
// +switch-master message (subscribed on every sentinel), and by asking
// again whenever the master's link is lost, it says it is a replica or it
// answers READONLY. To its user it is one client whose link goes down and
// up again when the master moves (the up path re-reads the shared state).
// Every call and callback happens on the loop of `executor`.
class SentinelClient final : public RedisClient {
  public:
    // A client for one server: a sentinel (subscribed to +switch-master)
    // or a master; hiredis in the daemon, mocks in tests.
    using ClientFactory =
        std::function<std::unique_ptr<RedisClient>(const base::HostPort& at, bool to_sentinel)>;
    // The master moved (from is empty the first time one is found).
    using MasterChange = std::function<void(const std::string& from, const std::string& to,
                                            const std::string& reason)>;
    // No sentinel named a usable master this round (once until one does).
    using Unanswered = std::function<void(const std::string& reason)>;

    SentinelClient(const asio::any_io_executor& executor, SentinelSettings settings,
                   ClientFactory factory);
    ~SentinelClient() override;
    SentinelClient(const SentinelClient&) = delete;
    SentinelClient& operator=(const SentinelClient&) = delete;

    void on_master_change(MasterChange change) { master_change_ = std::move(change); }
    void on_unanswered(Unanswered unanswered) { unanswered_ = std::move(unanswered); }

    void start() override;
    void stop() override;
    bool connected() const override;
    void command(std::vector<std::string> args, Done done) override;
    void subscribe(const std::string& channel, Message on_message) override;
    void on_link_change(LinkChange change) override { link_change_ = std::move(change); }

    // The master in use ("" before one is found).
    std::string master() const { return master_ ? master_->to_string() : ""; }

  private:
    void discover(const std::string& why);
    void ask(std::size_t asked, const std::string& why, const std::string& failures);
    void use_master(const base::HostPort& at, const std::string& why);
    void master_link(bool up, const std::string& reason);
    void check_role();
    void lost_master(const std::string& reason);
    void switch_message(const std::string& message);
    void fail_outstanding();
    void later(Millis delay, std::function<void()> then);
    void link(bool up, const std::string& reason);

    asio::any_io_executor executor_;
    SentinelSettings settings_;
    ClientFactory factory_;
    MasterChange master_change_;
    Unanswered unanswered_;
    LinkChange link_change_;
    std::map<std::string, Message> channels_;
    std::vector<std::unique_ptr<RedisClient>> sentinels_;
    std::size_t preferred_ = 0;  // the sentinel that answered last is asked first
    std::optional<base::HostPort> master_;
    std::unique_ptr<RedisClient> master_client_;
    std::uint64_t generation_ = 0;  // of master_client_: callbacks of an older one are dropped
    std::uint64_t switches_ = 0;    // +switch-master messages: older answers are stale
    std::optional<base::HostPort> switched_from_;  // by the last +switch-master
    std::chrono::steady_clock::time_point switched_at_{};
    bool confirmed_ = false;  // ROLE said master
    bool discovering_ = false;
    bool rediscover_ = false;  // asked for while a round was under way
    bool unanswered_logged_ = false;
    bool running_ = false;
    std::map<std::uint64_t, Done> outstanding_;
    std::uint64_t next_request_ = 1;
    std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace smtplb::io
