#pragma once
#include <deque>
#include <string>
#include <vector>

#include "io/cluster/redis_client.hpp"

namespace smtplb::testing {

// A RedisClient the test drives: it records each command, answers it when
// told (or with Disconnected while "down"), and plays link changes and
// published messages. Everything happens inside the test's own calls.
class MockRedisClient final : public io::RedisClient {
  public:
    struct Sent {
        std::vector<std::string> args;
        Done done;
    };

    void start() override { started = true; }
    void stop() override {
        started = false;
        sent.clear();  // nothing is called back after stop()
    }
    bool connected() const override { return up; }
    void command(std::vector<std::string> args, Done done) override {
        history.push_back(args);
        if (!up) {
            io::RedisReply r;
            r.kind = io::RedisReply::Kind::Disconnected;
            done(r);
            return;
        }
        sent.push_back({std::move(args), std::move(done)});
    }
    void subscribe(const std::string& ch, Message on_message) override {
        channel = ch;
        message_ = std::move(on_message);
    }
    void on_link_change(LinkChange change) override { link_ = std::move(change); }

    // The test's side.
    void go_up() {
        up = true;
        if (link_) link_(true, "");
    }
    void go_down(const std::string& reason) {
        up = false;
        // Requests in flight are lost with the connection.
        auto lost = std::move(sent);
        sent.clear();
        for (auto& s : lost) {
            io::RedisReply r;
            r.kind = io::RedisReply::Kind::Disconnected;
            s.done(r);
        }
        if (link_) link_(false, reason);
    }
    void publish(const std::string& text) {
        if (message_) message_(text);
    }
    // Answers the oldest request not yet answered.
    std::vector<std::string> answer(const io::RedisReply& reply) {
        auto s = std::move(sent.front());
        sent.pop_front();
        s.done(reply);
        return s.args;
    }
    static io::RedisReply hash(const std::vector<std::pair<std::string, std::string>>& fields) {
        io::RedisReply r;
        r.kind = io::RedisReply::Kind::Array;
        for (const auto& [k, v] : fields) {
            io::RedisReply key, value;
            key.kind = value.kind = io::RedisReply::Kind::String;
            key.text = k;
            value.text = v;
            r.elements.push_back(key);
            r.elements.push_back(value);
        }
        return r;
    }
    static io::RedisReply integer(long long n) {
        io::RedisReply r;
        r.kind = io::RedisReply::Kind::Integer;
        r.integer = n;
        return r;
    }
    static io::RedisReply timeout() {
        io::RedisReply r;
        r.kind = io::RedisReply::Kind::Timeout;
        return r;
    }

    bool started = false;
    bool up = false;
    std::string channel;
    std::deque<Sent> sent;
    std::vector<std::vector<std::string>> history;

  private:
    Message message_;
    LinkChange link_;
};

}  // namespace smtplb::testing
