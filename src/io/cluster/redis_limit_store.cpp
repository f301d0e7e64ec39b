#include "io/cluster/redis_limit_store.hpp"

#include <algorithm>
#include <cstdio>
#include <iterator>

namespace smtplb::io {
namespace {

using core::LimitOp;

// Several events' shared limits, each batch atomically and in order, on
// Redis's clock (microseconds), after giving back the leases released since
// the last call. ARGV[1]: the lease TTL in ms; ARGV[2]: the batches;
// ARGV[3]: the releases R, their keys KEYS[1..R] and members ARGV[4..3+R].
// Then per batch its operation count n and six per operation (its key
// next in KEYS): kind ('c' consume, 'p' peek, 'a' acquire),
//   rate: cost, T (us per unit), burst, longest hold (us), extra;
//   acquire: max, member, extra, -, -.
// A consume counts `extra` units more if cost + extra pass at once (no
// hold): the node holds them for later (core::RateGrants). An acquire
// takes up to `extra` places more if they fit: then its member, in the
// key's grant set KEY:g, is MEMBER*W for the W places it stands for
// (PlacePools); a place counts once whichever set holds it.
// In a batch every operation is checked before anything is written: all
// or nothing. Answers per batch {0, hold_us, granted...} (2n + 1 values)
// when all passed, {i, retry_us or -1} when the i-th did not (-1: waiting
// will not help).
constexpr const char* kBatchScript = R"lua(
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local ttl = tonumber(ARGV[1])
local batches = tonumber(ARGV[2])
local releases = tonumber(ARGV[3])
for r = 1, releases do redis.call('ZREM', KEYS[r], ARGV[3 + r]) end
local out = {}
local k = releases
local a = 3 + releases
for b = 1, batches do
  local n = tonumber(ARGV[a + 1])
  a = a + 1
  local refused, retry = 0, 0
  local holds, tats, grants = {}, {}, {}
  for i = 1, n do
    local key = KEYS[k + i]
    local o = a + (i - 1) * 6
    if ARGV[o + 1] == 'a' then
      local g = key .. ':g'
      redis.call('ZREMRANGEBYSCORE', key, '-inf', now)
      redis.call('ZREMRANGEBYSCORE', g, '-inf', now)
      local used = redis.call('ZCARD', key)
      for _, m in ipairs(redis.call('ZRANGE', g, 0, -1)) do
        used = used + (tonumber(string.match(m, '%*(%d+)$')) or 1)
      end
      local max = tonumber(ARGV[o + 2])
      if used >= max then
        refused, retry = i, -1
        break
      end
      holds[i] = 0
      grants[i] = math.max(0, math.min(tonumber(ARGV[o + 4]), max - used - 1))
    else
      local cost = tonumber(ARGV[o + 2])
      local T = tonumber(ARGV[o + 3])
      local burst = tonumber(ARGV[o + 4])
      local hold = tonumber(ARGV[o + 5])
      local extra = tonumber(ARGV[o + 6])
      if cost > burst then
        refused, retry = i, -1
        break
      end
      local tat = tonumber(redis.call('GET', key)) or now
      if tat < now then tat = now end
      grants[i] = 0
      if extra > 0 and cost + extra <= burst and
         tat + (cost + extra) * T - burst * T - now <= 0 then
        grants[i] = extra
      end
      local after = tat + (cost + grants[i]) * T
      local early = after - burst * T - now
      if early > hold then
        refused, retry = i, math.ceil(early)
        break
      end
      tats[i] = after
      if early > 0 then holds[i] = math.ceil(early) else holds[i] = 0 end
    end
  end
  if refused == 0 then
    out[#out + 1] = 0
    for i = 1, n do
      local key = KEYS[k + i]
      local o = a + (i - 1) * 6
      local kind = ARGV[o + 1]
      if kind == 'c' then
        redis.call('SET', key, string.format('%.3f', tats[i]), 'PX',
                   math.ceil((tats[i] - now) / 1000) + 1)
      elseif kind == 'a' then
        local set, member = key, ARGV[o + 3]
        if grants[i] > 0 then
          set, member = key .. ':g', member .. '*' .. (grants[i] + 1)
        end
        redis.call('ZADD', set, now + ttl * 1000, member)
        if redis.call('PTTL', set) < ttl then redis.call('PEXPIRE', set, ttl) end
      end
      out[#out + 1] = holds[i]
      out[#out + 1] = grants[i]
    end
  else
    out[#out + 1] = refused
    out[#out + 1] = retry
  end
  k = k + n
  a = a + n * 6
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

}  // namespace

const char* RedisLimitStore::batch_script() {
    return kBatchScript;
}

RedisLimitStore::RedisLimitStore(asio::any_io_executor executor,
                                 std::unique_ptr<RedisClient> client, RedisLimitSettings settings)
    : executor_(std::move(executor)),
      client_(std::move(client)),
      settings_(std::move(settings)),
      renew_timer_(executor_),
      flush_timer_(executor_) {
    client_->on_link_change([this](bool up, const std::string&) {
        connected_ = up;
        if (up) load_script();
        // What Redis held may be gone (restarted): no pool takes anyone new.
        if (!up) pools_.stop_taking(std::chrono::steady_clock::now());
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
    flush_timer_.cancel();
    flush_due_.reset();
    client_->stop();
    connected_ = false;
    // The client calls nothing back after stop(): what waits is told here.
    fail_all(RedisReply::Kind::Disconnected);
    releases_.clear();
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
        const auto now = std::chrono::steady_clock::now();
        Queued q;
        q.total = batch.ops.size();
        q.done = std::move(done);
        const std::string prefix = self->settings_.key_prefix + ":limit:";
        q.args.push_back("");  // the operations sent, below
        for (std::size_t i = 0; i < q.total; ++i) {
            const auto& op = batch.ops[i];
            auto key = prefix + names[op.limit] + ":" + op.key;
            if (op.kind == LimitOp::Kind::Acquire) {
                if (auto lease = self->pools_.take(key, now)) {
                    q.local.emplace_back(i, std::move(*lease));
                    continue;
                }
                // Ahead: as many as this node holds on the key now, at most op.extra.
                const auto extra = std::min<std::uint64_t>(op.extra, self->pools_.open(key));
                auto member = self->settings_.node + ":" + std::to_string(self->next_lease_++);
                q.leases.push_back({q.keys.size(), member, key});
                q.args.insert(q.args.end(), {"a", std::to_string(op.max), member,
                                             std::to_string(extra), "0", "0"});
            } else {
                const double period_us = static_cast<double>(count_us(op.gcra->period()));
                q.args.insert(
                    q.args.end(),
                    {op.kind == LimitOp::Kind::Consume ? "c" : "p", std::to_string(op.cost),
                     micros(period_us / static_cast<double>(op.gcra->count())),
                     std::to_string(op.gcra->burst()), std::to_string(count_us(op.max_wait)),
                     std::to_string(op.kind == LimitOp::Kind::Consume ? op.extra : 0)});
            }
            q.keys.push_back(std::move(key));
            q.index.push_back(i);
        }
        q.ops = q.keys.size();
        q.args.front() = std::to_string(q.ops);
        if (q.ops == 0) {
            // Met from the places held here: no round trip.
            core::LimitBatchResult all;
            all.refused = q.total;
            all.ops.resize(q.total);
            for (auto& [i, lease] : q.local)
                all.ops[i].lease = std::move(lease);
            q.done(std::move(all), RedisReply::Kind::Array);
            return;
        }
        self->queued_.push_back(std::move(q));
        self->flush();
    });
}

void RedisLimitStore::flush_at(SteadyTime at) {
    if (flush_due_ && *flush_due_ <= at) return;
    flush_due_ = at;
    flush_timer_.expires_at(at);  // cancels a later one: its wait ends aborted
    std::weak_ptr<RedisLimitStore> weak = weak_from_this();
    flush_timer_.async_wait([weak](const std::error_code& ec) {
        auto store = weak.lock();
        if (ec || !store) return;
        store->flush_due_.reset();
        if (store->running_) store->flush();
    });
}

void RedisLimitStore::flush() {
    if (in_flight_ || (queued_.empty() && releases_.empty())) return;
    if (!running_ || !client_->connected()) {
        fail_all(RedisReply::Kind::Disconnected);
        releases_.clear();  // they expire
        return;
    }
    const auto now = std::chrono::steady_clock::now();
    if (queued_.empty() && now < first_release_ + kReleaseDelay) {
        flush_at(first_release_ + kReleaseDelay);  // a release alone waits for company
        return;
    }
    if (now < last_call_ + kMinCallInterval) {
        flush_at(last_call_ + kMinCallInterval);
        return;
    }
    last_call_ = now;
    auto call = std::make_shared<std::vector<Queued>>();
    const std::size_t take = std::min(queued_.size(), kMaxBatchesPerCall);
    call->insert(call->end(), std::make_move_iterator(queued_.begin()),
                 std::make_move_iterator(queued_.begin() + static_cast<std::ptrdiff_t>(take)));
    queued_.erase(queued_.begin(), queued_.begin() + static_cast<std::ptrdiff_t>(take));
    // After EVALSHA/EVAL and the script: the keys, then the arguments.
    std::size_t keys = releases_.size();
    for (const auto& q : *call)
        keys += q.keys.size();
    std::vector<std::string> args;
    args.push_back(std::to_string(keys));
    for (const auto& [key, member] : releases_)
        args.push_back(key);
    for (const auto& q : *call)
        args.insert(args.end(), q.keys.begin(), q.keys.end());
    args.push_back(std::to_string(settings_.lease_ttl.count()));
    args.push_back(std::to_string(call->size()));
    args.push_back(std::to_string(releases_.size()));
    for (const auto& [key, member] : releases_)
        args.push_back(member);
    for (const auto& q : *call)
        args.insert(args.end(), q.args.begin(), q.args.end());
    releases_.clear();
    send(std::move(call), std::move(args));
}

void RedisLimitStore::send(Call call, std::vector<std::string> args) {
    // EVALSHA once the script is loaded; EVAL (which loads it too) before
    // that, and again when Redis answers NOSCRIPT (restarted, flushed).
    std::vector<std::string> command;
    if (sha_.empty())
        command = {"EVAL", kBatchScript};
    else
        command = {"EVALSHA", sha_};
    command.insert(command.end(), args.begin(), args.end());
    ++round_trips_;
    in_flight_ = call;
    std::weak_ptr<RedisLimitStore> self = weak_from_this();
    client_->command(
        std::move(command), [self, call, args = std::move(args)](const RedisReply& reply) mutable {
            auto store = self.lock();
            if (!store || store->in_flight_ != call) return;  // stopped meanwhile
            if (reply.kind == RedisReply::Kind::Error && reply.text.rfind("NOSCRIPT", 0) == 0) {
                store->sha_.clear();
                store->load_script();
                store->send(std::move(call), std::move(args));
                return;
            }
            store->in_flight_.reset();
            store->answer(call, reply);
            store->flush();
        });
}

void RedisLimitStore::answer(const Call& call, const RedisReply& reply) {
    std::vector<std::size_t> ops;
    for (const auto& q : *call)
        ops.push_back(q.ops);
    // Every batch's answer, and nothing more: else none is trusted.
    auto results = parse_limit_reply(reply, ops);
    const bool fits = results.has_value();
    const auto failed =
        reply.kind == RedisReply::Kind::Array ? RedisReply::Kind::Error : reply.kind;
    const auto now = std::chrono::steady_clock::now();
    for (std::size_t i = 0; i < call->size(); ++i) {
        auto& q = (*call)[i];
        if (!fits) {
            give_back_local(q);
            q.done(std::nullopt, failed);
            continue;
        }
        auto& sent = (*results)[i];
        core::LimitBatchResult all;
        if (sent.refused < q.ops) {
            give_back_local(q);
            all.refused = q.index[sent.refused];
            all.retry_after = sent.retry_after;
            q.done(std::move(all), reply.kind);
            continue;
        }
        // Passed: the leases are this node's to renew and to release. (A
        // call that timed out may still have taken some: they expire.)
        for (auto& lease : q.leases) {
            auto& op = sent.ops[lease.op];
            if (op.granted > 0) {
                // One member stands for the place and those granted ahead.
                const auto places = static_cast<std::uint32_t>(op.granted + 1);
                auto member = lease.member + "*" + std::to_string(places);
                auto grant_key = lease.key + ":g";
                held_[member] = grant_key;
                op.lease = pools_.add(lease.key, grant_key, member, places, now);
            } else {
                held_[lease.member] = lease.key;
                pools_.opened(lease.key);
                op.lease = lease.member;
            }
        }
        all.refused = q.total;
        all.ops.resize(q.total);
        for (std::size_t j = 0; j < q.ops; ++j)
            all.ops[q.index[j]] = std::move(sent.ops[j]);
        for (auto& [index, lease] : q.local)
            all.ops[index].lease = std::move(lease);
        q.done(std::move(all), reply.kind);
    }
    leases_held_ = held_.size();
}

void RedisLimitStore::fail_all(RedisReply::Kind kind) {
    auto waiting = std::move(queued_);
    queued_.clear();
    if (in_flight_) {
        auto call = std::move(in_flight_);
        in_flight_.reset();
        for (auto& q : *call)
            waiting.push_back(std::move(q));
    }
    for (auto& q : waiting) {
        give_back_local(q);
        q.done(std::nullopt, kind);
    }
}

void RedisLimitStore::give_back_local(Queued& q) {
    for (auto& [index, lease] : q.local)
        pools_.release(lease);
    q.local.clear();
}

void RedisLimitStore::give_back_pools(SteadyTime now) {
    for (auto& [grant_key, member] : pools_.done(now)) {
        held_.erase(member);
        if (releases_.empty()) first_release_ = now;
        releases_.emplace_back(std::move(grant_key), std::move(member));
    }
    leases_held_ = held_.size();
}

void RedisLimitStore::release(std::size_t, std::string_view lease) {
    asio::post(executor_, [self = shared_from_this(), member = std::string(lease)] {
        const auto now = std::chrono::steady_clock::now();
        if (self->pools_.release(member)) {
            self->give_back_pools(now);
        } else {
            auto it = self->held_.find(member);
            if (it == self->held_.end()) return;
            self->pools_.closed(it->second);
            if (self->releases_.empty()) self->first_release_ = now;
            self->releases_.emplace_back(it->second, member);
            self->held_.erase(it);
            self->leases_held_ = self->held_.size();
        }
        if (!self->running_ || !self->client_->connected()) {
            self->releases_.clear();  // they expire
            return;
        }
        self->flush();  // rides with the next batch, or goes alone after kReleaseDelay
    });
}

void RedisLimitStore::renew() {
    if (!running_) return;
    renew_timer_.expires_after(settings_.lease_ttl / 3);
    std::weak_ptr<RedisLimitStore> self = weak_from_this();
    renew_timer_.async_wait([self](const std::error_code& ec) {
        auto store = self.lock();
        if (ec || !store || !store->running_) return;
        store->give_back_pools(std::chrono::steady_clock::now());
        store->flush();
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
