#include "io/cluster/redis_limit_store.hpp"

#include <cstdio>

namespace smtplb::io {
namespace {

using core::LimitOp;

// One event's shared limits, atomically, on Redis's clock (microseconds).
// ARGV[1]: the lease TTL in ms; then five per operation (KEYS[i]):
//   kind ('c' consume, 'p' peek, 'a' acquire),
//   rate: cost, T (us per unit), burst, longest hold (us);
//   acquire: max, member, -, -.
// Every operation is checked before anything is written: all or nothing.
// Answers {0, hold_us...} when all passed, {i, retry_us or -1} when the
// i-th did not (-1: waiting will not help).
constexpr const char* kBatchScript = R"lua(
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local ttl = tonumber(ARGV[1])
local out = {0}
local tats = {}
for i = 1, #KEYS do
  local a = 1 + (i - 1) * 5
  local kind = ARGV[a + 1]
  if kind == 'a' then
    redis.call('ZREMRANGEBYSCORE', KEYS[i], '-inf', now)
    if redis.call('ZCARD', KEYS[i]) >= tonumber(ARGV[a + 2]) then return {i, -1} end
    out[i + 1] = 0
  else
    local cost = tonumber(ARGV[a + 2])
    local T = tonumber(ARGV[a + 3])
    local burst = tonumber(ARGV[a + 4])
    local hold = tonumber(ARGV[a + 5])
    if cost > burst then return {i, -1} end
    local tat = tonumber(redis.call('GET', KEYS[i])) or now
    if tat < now then tat = now end
    local after = tat + cost * T
    local early = after - burst * T - now
    if early > hold then return {i, math.ceil(early)} end
    tats[i] = after
    if early > 0 then out[i + 1] = math.ceil(early) else out[i + 1] = 0 end
  end
end
for i = 1, #KEYS do
  local a = 1 + (i - 1) * 5
  local kind = ARGV[a + 1]
  if kind == 'c' then
    redis.call('SET', KEYS[i], string.format('%.3f', tats[i]), 'PX',
               math.ceil((tats[i] - now) / 1000) + 1)
  elseif kind == 'a' then
    redis.call('ZADD', KEYS[i], now + ttl * 1000, ARGV[a + 3])
    if redis.call('PTTL', KEYS[i]) < ttl then redis.call('PEXPIRE', KEYS[i], ttl) end
  end
end
return out
)lua";

// This node's leases, pushed on by another lease_ttl: ARGV[1] the TTL in
// ms, ARGV[i + 1] KEYS[i]'s member. XX: a lease already expired (Redis was
// away longer than the TTL) stays gone.
constexpr const char* kRenewScript = R"lua(
local t = redis.call('TIME')
local ttl = tonumber(ARGV[1])
local until_us = tonumber(t[1]) * 1000000 + tonumber(t[2]) + ttl * 1000
for i = 1, #KEYS do
  redis.call('ZADD', KEYS[i], 'XX', until_us, ARGV[i + 1])
  if redis.call('PTTL', KEYS[i]) < ttl then redis.call('PEXPIRE', KEYS[i], ttl) end
end
return #KEYS
)lua";

std::string micros(double us) {
    char text[64];
    std::snprintf(text, sizeof text, "%.6f", us);
    return text;
}

template <typename D>
long long count_us(D d) {
    return std::chrono::duration_cast<std::chrono::microseconds>(d).count();
}

std::optional<core::LimitBatchResult> parse(const RedisReply& reply, std::size_t ops) {
    if (reply.kind != RedisReply::Kind::Array || reply.elements.empty()) return std::nullopt;
    for (const auto& e : reply.elements)
        if (e.kind != RedisReply::Kind::Integer) return std::nullopt;
    core::LimitBatchResult result;
    const long long refused = reply.elements[0].integer;
    if (refused > 0) {
        if (reply.elements.size() < 2 || static_cast<std::size_t>(refused) > ops)
            return std::nullopt;
        result.refused = static_cast<std::size_t>(refused - 1);
        const long long retry = reply.elements[1].integer;
        result.retry_after = retry < 0 ? core::Gcra::kNever
                                       : std::chrono::duration_cast<base::Clock::Duration>(
                                             std::chrono::microseconds(retry));
        return result;
    }
    if (reply.elements.size() != ops + 1) return std::nullopt;
    result.refused = ops;
    result.ops.resize(ops);
    for (std::size_t i = 0; i < ops; ++i)
        result.ops[i].wait = std::chrono::duration_cast<base::Clock::Duration>(
            std::chrono::microseconds(reply.elements[i + 1].integer));
    return result;
}

}  // namespace

const char* RedisLimitStore::batch_script() {
    return kBatchScript;
}

RedisLimitStore::RedisLimitStore(asio::any_io_executor executor,
                                 std::unique_ptr<RedisClient> client, RedisLimitSettings settings)
    : executor_(std::move(executor)),
      client_(std::move(client)),
      settings_(std::move(settings)),
      renew_timer_(executor_) {
    client_->on_link_change([this](bool up, const std::string&) {
        connected_ = up;
        if (up) load_script();
    });
}

// stop() cancels timers and closes sockets: only an allocation failure
// could throw, and that ends the process anyway.
// NOLINTNEXTLINE(bugprone-exception-escape)
RedisLimitStore::~RedisLimitStore() {
    stop();
}

void RedisLimitStore::start() {
    running_ = true;
    client_->start();
    renew();
}

void RedisLimitStore::stop() {
    if (!running_) return;
    running_ = false;
    renew_timer_.cancel();
    client_->stop();
    connected_ = false;
}

void RedisLimitStore::load_script() {
    ++round_trips_;
    std::weak_ptr<RedisLimitStore> self = weak_from_this();
    client_->command({"SCRIPT", "LOAD", kBatchScript}, [self](const RedisReply& reply) {
        auto store = self.lock();
        if (store && reply.kind == RedisReply::Kind::String) store->sha_ = reply.text;
    });
}

void RedisLimitStore::execute(std::vector<std::string> names, core::LimitBatch batch, Done done) {
    asio::post(executor_, [self = shared_from_this(), names = std::move(names),
                           batch = std::move(batch), done = std::move(done)]() mutable {
        if (!self->running_ || !self->client_->connected()) {
            done(std::nullopt, RedisReply::Kind::Disconnected);
            return;
        }
        std::vector<std::string> args;  // after EVALSHA/EVAL and the script
        std::vector<Lease> leases;
        args.push_back(std::to_string(batch.ops.size()));
        const std::string prefix = self->settings_.key_prefix + ":limit:";
        for (const auto& op : batch.ops)
            args.push_back(prefix + names[op.limit] + ":" + op.key);
        args.push_back(std::to_string(self->settings_.lease_ttl.count()));
        for (const auto& op : batch.ops) {
            if (op.kind == LimitOp::Kind::Acquire) {
                auto member = self->settings_.node + ":" + std::to_string(self->next_lease_++);
                leases.push_back({static_cast<std::size_t>(&op - batch.ops.data()), member,
                                  prefix + names[op.limit] + ":" + op.key});
                args.insert(args.end(), {"a", std::to_string(op.max), member, "0", "0"});
                continue;
            }
            const double period_us = static_cast<double>(count_us(op.gcra->period()));
            args.insert(args.end(),
                        {op.kind == LimitOp::Kind::Consume ? "c" : "p", std::to_string(op.cost),
                         micros(period_us / static_cast<double>(op.gcra->count())),
                         std::to_string(op.gcra->burst()), std::to_string(count_us(op.max_wait))});
        }
        const std::size_t ops = batch.ops.size();
        self->send(std::move(args), std::move(done), std::move(leases), ops);
    });
}

void RedisLimitStore::send(std::vector<std::string> args, Done done, std::vector<Lease> leases,
                           std::size_t ops) {
    // EVALSHA once the script is loaded; EVAL (which loads it too) before
    // that, and again when Redis answers NOSCRIPT (restarted, flushed).
    std::vector<std::string> command;
    if (sha_.empty())
        command = {"EVAL", kBatchScript};
    else
        command = {"EVALSHA", sha_};
    command.insert(command.end(), args.begin(), args.end());
    ++round_trips_;
    std::weak_ptr<RedisLimitStore> self = weak_from_this();
    client_->command(
        std::move(command), [self, args = std::move(args), done = std::move(done),
                             leases = std::move(leases), ops](const RedisReply& reply) mutable {
            auto store = self.lock();
            if (!store) return;
            if (reply.kind == RedisReply::Kind::Error && reply.text.rfind("NOSCRIPT", 0) == 0) {
                store->sha_.clear();
                store->load_script();
                store->send(std::move(args), std::move(done), std::move(leases), ops);
                return;
            }
            auto result = parse(reply, ops);
            if (!result) {
                done(std::nullopt,
                     reply.kind == RedisReply::Kind::Array ? RedisReply::Kind::Error : reply.kind);
                return;
            }
            // Passed: the leases are this node's to renew and to release. (A
            // request that timed out may still have taken some: they expire.)
            if (result->refused == ops) {
                for (auto& lease : leases) {
                    result->ops[lease.op].lease = lease.member;
                    store->held_[lease.member] = lease.key;
                }
                store->leases_held_ = store->held_.size();
            }
            done(std::move(result), reply.kind);
        });
}

void RedisLimitStore::release(std::size_t, std::string_view lease) {
    asio::post(executor_, [self = shared_from_this(), member = std::string(lease)] {
        auto it = self->held_.find(member);
        if (it == self->held_.end()) return;
        auto key = it->second;
        self->held_.erase(it);
        self->leases_held_ = self->held_.size();
        if (!self->running_ || !self->client_->connected()) return;  // it expires
        ++self->round_trips_;
        self->client_->command({"ZREM", key, member}, [](const RedisReply&) {});
    });
}

void RedisLimitStore::renew() {
    if (!running_) return;
    renew_timer_.expires_after(settings_.lease_ttl / 3);
    std::weak_ptr<RedisLimitStore> self = weak_from_this();
    renew_timer_.async_wait([self](const std::error_code& ec) {
        auto store = self.lock();
        if (ec || !store || !store->running_) return;
        if (!store->held_.empty() && store->client_->connected()) {
            std::vector<std::string> command{"EVAL", kRenewScript,
                                             std::to_string(store->held_.size())};
            for (const auto& [member, key] : store->held_)
                command.push_back(key);
            command.push_back(std::to_string(store->settings_.lease_ttl.count()));
            for (const auto& [member, key] : store->held_)
                command.push_back(member);
            ++store->round_trips_;
            store->client_->command(std::move(command), [](const RedisReply&) {});
        }
        store->renew();
    });
}

}  // namespace smtplb::io
