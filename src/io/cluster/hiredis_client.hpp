#pragma once
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <string>

#include "base/network.hpp"
#include "core/cluster/shared_admin.hpp"
#include "io/asio.hpp"
#include "io/cluster/redis_client.hpp"
#include "io/runtime/tls.hpp"

struct redisAsyncContext;

namespace smtplb::io {

struct HiredisSettings {
    base::HostPort redis;
    std::string password;  // AUTH when not empty
    Millis timeout{5};     // each command's deadline
    // How long connecting (and AUTH, PING or SUBSCRIBE) may take.
    Millis connect_timeout{1000};
    Millis backoff_initial{100};
    Millis backoff_max{5000};
    // A connection with a request unanswered this long is dropped and made
    // again: a Redis that stopped answering looks like one that went away.
    Millis stall{1000};
    // TLS ([cluster] tls): through a RedisTlsBridge, the certificate
    // verified for tls_name (the address's host when empty).
    TlsContext tls;
    std::string tls_name;
};

class HiredisConnection;
class RedisTlsBridge;

// RedisClient over hiredis's asynchronous API, driven by the Asio loop of
// `executor` (one thread: every call and callback happens there). Two
// connections: one for commands, pipelined, one for the subscription.
class HiredisClient final : public RedisClient {
  public:
    HiredisClient(const asio::any_io_executor& executor, HiredisSettings settings);
    ~HiredisClient() override;
    HiredisClient(const HiredisClient&) = delete;
    HiredisClient& operator=(const HiredisClient&) = delete;

    void start() override;
    void stop() override;
    bool connected() const override;
    void command(std::vector<std::string> args, Done done) override;
    void subscribe(const std::string& channel, Message on_message) override;
    void on_link_change(LinkChange change) override { link_change_ = std::move(change); }

  private:
    void connection_changed(bool up, const std::string& reason);

    std::shared_ptr<HiredisConnection> commands_;
    std::shared_ptr<HiredisConnection> subscriber_;  // used once subscribe() was called
    bool subscribed_ = false;
    LinkChange link_change_;
};

// One hiredis context and what keeps it going: reconnection with backoff,
// the deadlines of its requests, the hand-off to the Asio loop.
class HiredisConnection : public std::enable_shared_from_this<HiredisConnection> {
  public:
    using Ready = std::function<void(bool ready, const std::string& reason)>;
    HiredisConnection(const asio::any_io_executor& executor, HiredisSettings settings, Ready ready);
    ~HiredisConnection();

    // Subscriber connections: this channel instead of commands.
    void use_channel(const std::string& channel, RedisClient::Message on_message);
    void start();
    void stop();
    bool ready() const { return ready_; }
    void command(const std::vector<std::string>& args, RedisClient::Done done);

  private:
    struct Pending {
        std::chrono::steady_clock::time_point issued;
        std::chrono::steady_clock::time_point deadline;
        RedisClient::Done done;  // empty once it timed out: the late reply is dropped
    };
    class Watcher;

    void connect();
    void watch(bool read, bool on);
    void send(const std::vector<std::string>& args, std::uintptr_t id);
    void became_ready();
    void drop(const std::string& reason);
    void gone();
    void retry_later(const std::string& reason);
    void arm_deadlines();
    void expire();
    void reply(std::uintptr_t id, void* raw);
    void channel_reply(void* raw);

    static void on_connect(const redisAsyncContext* ac, int status);
    static void on_reply(redisAsyncContext* ac, void* reply, void* privdata);
    static void cleanup(void* privdata);

    asio::any_io_executor executor_;
    HiredisSettings settings_;
    Ready ready_change_;
    std::string channel_;
    RedisClient::Message on_message_;
    redisAsyncContext* ac_ = nullptr;
    std::shared_ptr<Watcher> watcher_;
    std::shared_ptr<RedisTlsBridge> bridge_;  // with TLS: made at the first connect
    asio::steady_timer retry_timer_;
    asio::steady_timer deadline_timer_;
    asio::steady_timer connect_timer_;
    core::cluster::ReconnectBackoff backoff_;
    std::map<std::uintptr_t, Pending> pending_;
    std::uintptr_t next_id_ = kFirstId;
    std::string drop_reason_;  // why this side closed it, when it did
    bool running_ = false;
    bool ready_ = false;

    static constexpr std::uintptr_t kAuth = 1;
    static constexpr std::uintptr_t kPing = 2;          // the commands connection is usable
    static constexpr std::uintptr_t kSubscription = 3;  // SUBSCRIBE and its messages
    static constexpr std::uintptr_t kFirstId = 16;
};

// A reply of hiredis's, copied into a RedisReply (tests: reply parsing).
RedisReply to_redis_reply(const void* hiredis_reply);

}  // namespace smtplb::io
