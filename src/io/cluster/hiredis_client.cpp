#include "io/cluster/hiredis_client.hpp"

#include "io/cluster/redis_tls_bridge.hpp"

#include <hiredis/async.h>
#include <hiredis/hiredis.h>

namespace smtplb::io {

using SteadyClock = std::chrono::steady_clock;

RedisReply to_redis_reply(const void* hiredis_reply) {
    const auto* r = static_cast<const redisReply*>(hiredis_reply);
    RedisReply out;
    switch (r->type) {
        case REDIS_REPLY_STRING:
        case REDIS_REPLY_STATUS:
            out.kind = RedisReply::Kind::String;
            out.text.assign(r->str, r->len);
            break;
        case REDIS_REPLY_ERROR:
            out.kind = RedisReply::Kind::Error;
            out.text.assign(r->str, r->len);
            break;
        case REDIS_REPLY_INTEGER:
            out.kind = RedisReply::Kind::Integer;
            out.integer = r->integer;
            break;
        case REDIS_REPLY_ARRAY:
            out.kind = RedisReply::Kind::Array;
            for (std::size_t i = 0; i < r->elements; ++i)
                out.elements.push_back(to_redis_reply(r->element[i]));
            break;
        default:
            out.kind = RedisReply::Kind::Nil;
    }
    return out;
}

// hiredis's event hooks on an Asio descriptor: hiredis says when it wants
// to read or write, the descriptor waits for readiness and hands it back.
// The descriptor never owns the socket (hiredis closes it): it is released
// at cleanup, when hiredis frees the context, after which nothing here
// touches the context again (`closed`).
class HiredisConnection::Watcher : public std::enable_shared_from_this<Watcher> {
  public:
    Watcher(const asio::any_io_executor& executor, redisAsyncContext* ac)
        : descriptor_(executor, ac->c.fd), ac_(ac) {}

    void want_read(bool on) {
        reading_ = on;
        if (on) arm(asio::posix::descriptor_base::wait_read);
    }
    void want_write(bool on) {
        writing_ = on;
        if (on) arm(asio::posix::descriptor_base::wait_write);
    }
    void close() {
        closed_ = true;
        error_code ignored;
        descriptor_.cancel(ignored);
        (void)descriptor_.release();
    }

  private:
    void arm(asio::posix::descriptor_base::wait_type type) {
        bool read = type == asio::posix::descriptor_base::wait_read;
        bool& armed = read ? read_armed_ : write_armed_;
        if (armed || closed_) return;
        armed = true;
        descriptor_.async_wait(type, [self = shared_from_this(), read](error_code ec) {
            (read ? self->read_armed_ : self->write_armed_) = false;
            if (ec || self->closed_) return;
            bool wanted = read ? self->reading_ : self->writing_;
            if (!wanted) return;
            if (read)
                redisAsyncHandleRead(self->ac_);
            else
                redisAsyncHandleWrite(self->ac_);
            // The context may be gone now (an error freed it): closed_ says so.
            if (self->closed_) return;
            if (read ? self->reading_ : self->writing_)
                self->arm(read ? asio::posix::descriptor_base::wait_read
                               : asio::posix::descriptor_base::wait_write);
        });
    }

    asio::posix::stream_descriptor descriptor_;
    redisAsyncContext* ac_;
    bool reading_ = false;
    bool writing_ = false;
    bool read_armed_ = false;
    bool write_armed_ = false;
    bool closed_ = false;
};

HiredisConnection::HiredisConnection(const asio::any_io_executor& executor,
                                     HiredisSettings settings, Ready ready)
    : executor_(executor),
      settings_(std::move(settings)),
      ready_change_(std::move(ready)),
      retry_timer_(executor),
      deadline_timer_(executor),
      connect_timer_(executor),
      backoff_(settings_.backoff_initial, settings_.backoff_max) {}

// Stopping cancels timers and closes sockets: only an allocation failure
// could throw, and that ends the process anyway.
// NOLINTNEXTLINE(bugprone-exception-escape)
HiredisConnection::~HiredisConnection() {
    ready_change_ = nullptr;
    stop();
}

void HiredisConnection::use_channel(const std::string& channel, RedisClient::Message on_message) {
    channel_ = channel;
    on_message_ = std::move(on_message);
}

void HiredisConnection::start() {
    if (running_) return;
    running_ = true;
    connect();
}

void HiredisConnection::stop() {
    running_ = false;
    retry_timer_.cancel();
    connect_timer_.cancel();
    deadline_timer_.cancel();
    // Nothing is called back after stop(): its owner may be going.
    pending_.clear();
    if (ac_) {
        drop_reason_ = "stopped";
        redisAsyncFree(ac_);  // pending callbacks run with no reply: Disconnected
    }
    ac_ = nullptr;
    if (bridge_) bridge_->close();
    bridge_.reset();
}

void HiredisConnection::connect() {
    if (!running_ || ac_) return;
    drop_reason_.clear();
    redisAsyncContext* ac = nullptr;
    if (settings_.tls) {
        // hiredis 0.14 has no TLS: it goes through this process's bridge.
        if (!bridge_) {
            auto bridge =
                std::make_shared<RedisTlsBridge>(executor_, settings_.tls, settings_.tls_name);
            std::string error;
            if (!bridge->open(error)) return retry_later(error);
            bridge_ = std::move(bridge);
        }
        bridge_->set_target(settings_.redis);
        ac = redisAsyncConnectUnix(bridge_->path().c_str());
    } else {
        ac = redisAsyncConnect(settings_.redis.host.c_str(), settings_.redis.port);
    }
    if (!ac) return retry_later("out of memory");
    if (ac->err) {
        std::string reason = ac->errstr;
        redisAsyncFree(ac);
        return retry_later(reason);
    }
    ac_ = ac;
    ac->data = this;
    watcher_ = std::make_shared<Watcher>(executor_, ac);
    ac->ev.data = this;
    // Hooks may come while hiredis frees the context, after the watcher went.
    ac->ev.addRead = [](void* p) { static_cast<HiredisConnection*>(p)->watch(true, true); };
    ac->ev.delRead = [](void* p) { static_cast<HiredisConnection*>(p)->watch(true, false); };
    ac->ev.addWrite = [](void* p) { static_cast<HiredisConnection*>(p)->watch(false, true); };
    ac->ev.delWrite = [](void* p) { static_cast<HiredisConnection*>(p)->watch(false, false); };
    ac->ev.cleanup = &HiredisConnection::cleanup;
    redisAsyncSetConnectCallback(ac, &HiredisConnection::on_connect);
    // The handshake is queued now; its first write completes the connect.
    if (!settings_.password.empty()) send({"AUTH", settings_.password}, kAuth);
    if (channel_.empty())
        send({"PING"}, kPing);
    else
        send({"SUBSCRIBE", channel_}, kSubscription);
    connect_timer_.expires_after(settings_.connect_timeout);
    connect_timer_.async_wait([weak = weak_from_this()](error_code ec) {
        auto self = weak.lock();
        if (ec || !self || self->ready_) return;
        self->drop("no answer within " + std::to_string(self->settings_.connect_timeout.count()) +
                   " ms of connecting");
    });
}

void HiredisConnection::watch(bool read, bool on) {
    if (!watcher_) return;
    if (read)
        watcher_->want_read(on);
    else
        watcher_->want_write(on);
}

void HiredisConnection::send(const std::vector<std::string>& args, std::uintptr_t id) {
    std::vector<const char*> argv;
    std::vector<std::size_t> lengths;
    for (const auto& a : args) {
        argv.push_back(a.data());
        lengths.push_back(a.size());
    }
    // hiredis hands the private data back with the reply: the request's id.
    // NOLINTNEXTLINE(performance-no-int-to-ptr)
    redisAsyncCommandArgv(ac_, &HiredisConnection::on_reply, reinterpret_cast<void*>(id),
                          static_cast<int>(argv.size()), argv.data(), lengths.data());
}

void HiredisConnection::command(const std::vector<std::string>& args, RedisClient::Done done) {
    if (!ac_ || !ready_) {
        // Never from inside the call: the caller may hold a lock or be mid-change.
        asio::post(executor_, [weak = weak_from_this(), done = std::move(done)] {
            auto self = weak.lock();
            if (!self || !self->running_) return;  // stopped: nothing is called back
            RedisReply r;
            r.kind = RedisReply::Kind::Disconnected;
            r.text = "not connected to Redis";
            done(r);
        });
        return;
    }
    auto id = next_id_++;
    auto now = SteadyClock::now();
    pending_.emplace(id, Pending{now, now + settings_.timeout, std::move(done)});
    send(args, id);
    if (pending_.size() == 1) arm_deadlines();
}

void HiredisConnection::on_connect(const redisAsyncContext* ac, int status) {
    auto* self = static_cast<HiredisConnection*>(ac->data);
    if (status == REDIS_OK) return;  // ready once the handshake is answered
    // hiredis frees the context after this: cleanup() follows.
    self->drop_reason_ = ac->errstr[0] ? ac->errstr : "connect failed";
}

void HiredisConnection::on_reply(redisAsyncContext* ac, void* reply, void* privdata) {
    auto* self = static_cast<HiredisConnection*>(ac->data);
    auto id = reinterpret_cast<std::uintptr_t>(privdata);
    if (id == kSubscription) return self->channel_reply(reply);
    if (id == kAuth || id == kPing) {
        if (!reply) return;
        auto r = to_redis_reply(reply);
        if (r.kind == RedisReply::Kind::Error)
            self->drop((id == kAuth ? "AUTH refused: " : "PING refused: ") + r.text);
        else if (id == kPing)
            self->became_ready();
        return;
    }
    self->reply(id, reply);
}

void HiredisConnection::reply(std::uintptr_t id, void* raw) {
    auto it = pending_.find(id);
    if (it == pending_.end()) return;
    auto done = std::move(it->second.done);
    pending_.erase(it);
    if (!done) return;  // it timed out already
    RedisReply r;
    if (raw) {
        r = to_redis_reply(raw);
    } else {
        r.kind = RedisReply::Kind::Disconnected;
        r.text = "the connection to Redis was lost";
    }
    done(r);
}

void HiredisConnection::channel_reply(void* raw) {
    if (!raw) return;  // the connection is going
    auto r = to_redis_reply(raw);
    if (r.kind == RedisReply::Kind::Error) return drop("SUBSCRIBE refused: " + r.text);
    if (r.kind != RedisReply::Kind::Array || r.elements.size() < 3) return;
    const auto& type = r.elements[0].text;
    if (type == "subscribe")
        became_ready();
    else if (type == "message" && on_message_)
        on_message_(r.elements[2].text);
}

void HiredisConnection::became_ready() {
    if (ready_) return;
    ready_ = true;
    connect_timer_.cancel();
    backoff_.reset();
    if (ready_change_) ready_change_(true, "");
}

void HiredisConnection::drop(const std::string& reason) {
    if (!ac_) return;
    drop_reason_ = reason;
    // Not from inside hiredis's own call stack: it frees the context.
    asio::post(executor_, [weak = weak_from_this(), ac = ac_] {
        auto self = weak.lock();
        if (self && self->ac_ == ac) redisAsyncFree(ac);
    });
}

void HiredisConnection::cleanup(void* privdata) {
    static_cast<HiredisConnection*>(privdata)->gone();
}

// hiredis is freeing the context (an error, Redis closed it, or stop()):
// every callback with a request has run by now.
void HiredisConnection::gone() {
    std::string reason = drop_reason_;
    if (reason.empty()) reason = ac_ && ac_->err ? ac_->errstr : "Redis closed the connection";
    // Through the TLS bridge hiredis only sees its end close: say why.
    if (bridge_ && !bridge_->last_failure().empty())
        reason = "TLS to Redis: " + bridge_->take_failure();
    if (watcher_) watcher_->close();
    watcher_.reset();
    ac_ = nullptr;
    ready_ = false;
    connect_timer_.cancel();
    // Requests that timed out and never got an answer are forgotten with it.
    pending_.clear();
    if (!running_) return;
    // Each failed attempt is reported, not only the loss of a working
    // connection: the link state makes one log line of them.
    auto self = shared_from_this();
    asio::post(executor_, [self, reason] { self->retry_later(reason); });
}

void HiredisConnection::retry_later(const std::string& reason) {
    if (!running_) return;
    if (ready_change_) ready_change_(false, reason);
    retry_timer_.expires_after(backoff_.next());
    retry_timer_.async_wait([weak = weak_from_this()](error_code ec) {
        auto self = weak.lock();
        if (!ec && self) self->connect();
    });
}

void HiredisConnection::arm_deadlines() {
    if (pending_.empty()) return;
    // The oldest request is first (ids grow, every request has the same timeout).
    const auto& oldest = pending_.begin()->second;
    SteadyClock::time_point at = oldest.issued + settings_.stall;
    for (const auto& [id, p] : pending_)
        if (p.done) {
            at = std::min(at, p.deadline);
            break;
        }
    deadline_timer_.expires_at(at);
    deadline_timer_.async_wait([weak = weak_from_this()](error_code ec) {
        auto self = weak.lock();
        if (!ec && self) self->expire();
    });
}

void HiredisConnection::expire() {
    auto now = SteadyClock::now();
    if (pending_.empty()) return;
    if (now >= pending_.begin()->second.issued + settings_.stall) {
        return drop("no reply for " + std::to_string(settings_.stall.count()) + " ms");
    }
    std::vector<RedisClient::Done> late;
    for (auto& [id, p] : pending_) {
        if (p.deadline > now) break;
        if (p.done) late.push_back(std::move(p.done));
    }
    arm_deadlines();
    for (auto& done : late) {
        RedisReply r;
        r.kind = RedisReply::Kind::Timeout;
        r.text = "no reply within " + std::to_string(settings_.timeout.count()) + " ms";
        done(r);
    }
}

HiredisClient::HiredisClient(const asio::any_io_executor& executor, HiredisSettings settings)
    : commands_(std::make_shared<HiredisConnection>(
          executor, settings,
          [this](bool up, const std::string& reason) { connection_changed(up, reason); })) {
    subscriber_ = std::make_shared<HiredisConnection>(
        executor, std::move(settings),
        [this](bool up, const std::string& reason) { connection_changed(up, reason); });
}

// Stopping cancels timers and closes sockets: only an allocation failure
// could throw, and that ends the process anyway.
// NOLINTNEXTLINE(bugprone-exception-escape)
HiredisClient::~HiredisClient() {
    link_change_ = nullptr;
    stop();
}

void HiredisClient::start() {
    commands_->start();
    if (subscribed_) subscriber_->start();
}

void HiredisClient::stop() {
    commands_->stop();
    subscriber_->stop();
}

bool HiredisClient::connected() const {
    return commands_->ready() && (!subscribed_ || subscriber_->ready());
}

void HiredisClient::command(std::vector<std::string> args, Done done) {
    commands_->command(args, std::move(done));
}

void HiredisClient::subscribe(const std::string& channel, Message on_message) {
    subscribed_ = true;
    subscriber_->use_channel(channel, std::move(on_message));
}

void HiredisClient::connection_changed(bool up, const std::string& reason) {
    if (!link_change_) return;
    if (!up) return link_change_(false, reason);
    if (connected()) link_change_(true, "");
}

}  // namespace smtplb::io
