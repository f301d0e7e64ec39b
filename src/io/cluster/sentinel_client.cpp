#include "io/cluster/sentinel_client.hpp"

namespace smtplb::io {
namespace {

constexpr Millis kRoleRetry{100};
// How long after a +switch-master a sentinel naming the old master is
// taken as not yet told (they learn of it from each other within seconds).
constexpr Millis kSwitchSettles{10000};

}  // namespace

SentinelClient::SentinelClient(const asio::any_io_executor& executor, SentinelSettings settings,
                               ClientFactory factory)
    : executor_(executor), settings_(std::move(settings)), factory_(std::move(factory)) {}

SentinelClient::~SentinelClient() {
    link_change_ = nullptr;
    master_change_ = nullptr;
    unanswered_ = nullptr;
    stop();
    *alive_ = false;
}

void SentinelClient::start() {
    if (running_) return;
    running_ = true;
    if (sentinels_.empty()) {
        for (const auto& at : settings_.sentinels) {
            auto s = factory_(at, true);
            // Several sentinels announce the same switch: the first one moves
            // the node, the others find it there already.
            s->subscribe("+switch-master",
                         [this](const std::string& message) { switch_message(message); });
            // A sentinel that becomes reachable may know the master nobody
            // did; while none is, a round that fails says so (once).
            s->on_link_change([this](bool up, const std::string&) {
                if (!master_client_) discover(up ? "a sentinel became reachable" : "starting");
            });
            sentinels_.push_back(std::move(s));
        }
    }
    for (auto& s : sentinels_)
        s->start();
    if (master_client_) master_client_->start();
    // Asked once the sentinels' links stand (their link changes), not now.
}

void SentinelClient::stop() {
    running_ = false;
    outstanding_.clear();  // nothing is called back after stop()
    for (auto& s : sentinels_)
        s->stop();
    if (master_client_) master_client_->stop();
    confirmed_ = false;
    discovering_ = false;
}

bool SentinelClient::connected() const {
    return master_client_ && confirmed_ && master_client_->connected();
}

void SentinelClient::command(std::vector<std::string> args, Done done) {
    if (!connected()) {
        asio::post(executor_, [alive = std::weak_ptr<bool>(alive_), this, done = std::move(done)] {
            if (alive.expired() || !running_) return;
            RedisReply r;
            r.kind = RedisReply::Kind::Disconnected;
            r.text = master_ ? "not connected to the master" : "no master known yet";
            done(r);
        });
        return;
    }
    // Held here as well: a move drops the old master's client, which calls
    // nothing back, and each request must still be answered once.
    auto id = next_request_++;
    outstanding_.emplace(id, std::move(done));
    master_client_->command(std::move(args), [this, id](const RedisReply& reply) {
        auto it = outstanding_.find(id);
        if (it == outstanding_.end()) return;
        auto done = std::move(it->second);
        outstanding_.erase(it);
        if (is_demoted_error(reply)) lost_master("the master answered " + reply.text);
        done(reply);
    });
}

void SentinelClient::subscribe(const std::string& channel, Message on_message) {
    channels_[channel] = std::move(on_message);
}

void SentinelClient::link(bool up, const std::string& reason) {
    if (link_change_) link_change_(up, reason);
}

void SentinelClient::later(Millis delay, std::function<void()> then) {
    auto timer = std::make_shared<asio::steady_timer>(executor_, delay);
    timer->async_wait(
        [timer, alive = std::weak_ptr<bool>(alive_), this, then = std::move(then)](error_code ec) {
            if (ec || alive.expired() || !running_) return;
            then();
        });
}

void SentinelClient::discover(const std::string& why) {
    if (!running_) return;
    if (discovering_) {
        rediscover_ = true;
        return;
    }
    discovering_ = true;
    rediscover_ = false;
    ask(0, why, "");
}

// Asks the sentinels one after the other, from the one that answered last,
// until one names a master.
void SentinelClient::ask(std::size_t asked, const std::string& why, const std::string& failures) {
    if (!running_) return;
    if (asked == sentinels_.size()) {
        discovering_ = false;
        // Something changed meanwhile (a sentinel came up): a round at once.
        if (rediscover_) return discover(why);
        if (!unanswered_logged_ && unanswered_) unanswered_(failures);
        unanswered_logged_ = true;
        later(settings_.retry, [this, why] { discover(why); });
        return;
    }
    auto index = (preferred_ + asked) % sentinels_.size();
    auto switches = switches_;
    sentinels_[index]->command(
        {"SENTINEL", "get-master-addr-by-name", settings_.master_name},
        [this, index, asked, why, failures, switches](const RedisReply& reply) {
            auto found = master_address(reply);
            bool stale = found && switched_from_ && same_address(*found, *switched_from_) &&
                         std::chrono::steady_clock::now() < switched_at_ + kSwitchSettles;
            if (!found || stale) {
                auto what = stale ? "names the master before the switch"
                            : reply.kind == RedisReply::Kind::Nil ? "does not know the master"
                            : reply.text.empty()                  ? "gave no address"
                                                                  : reply.text;
                auto failed = failures + (failures.empty() ? "" : "; ") +
                              settings_.sentinels[index].to_string() + ": " + what;
                return ask(asked + 1, why, failed);
            }
            preferred_ = index;
            unanswered_logged_ = false;
            discovering_ = false;
            // A switch announced meanwhile is newer than this answer.
            if (switches == switches_) use_master(*found, why);
            if (rediscover_) discover(why);
        });
}

void SentinelClient::use_master(const base::HostPort& at, const std::string& why) {
    if (master_ && same_address(*master_, at)) {
        // The same server: its client reconnects by itself; one that said
        // it is a replica is asked again after a while (a stale sentinel,
        // or a failover the sentinels have not decided yet).
        if (master_client_ && master_client_->connected() && !confirmed_)
            later(settings_.retry, [this] { check_role(); });
        return;
    }
    std::string from = master_ ? master_->to_string() : "";
    bool was_up = connected();
    fail_outstanding();
    if (master_client_) master_client_->stop();
    // Not destroyed from inside its own callbacks: this runs in a sentinel's.
    if (master_client_)
        asio::post(executor_, [old = std::shared_ptr<RedisClient>(std::move(master_client_))] {});
    master_ = at;
    confirmed_ = false;
    auto generation = ++generation_;
    master_client_ = factory_(at, false);
    for (const auto& [channel, on_message] : channels_) {
        master_client_->subscribe(
            channel, [this, generation, name = channel](const std::string& m) {
                if (generation != generation_) return;
                if (auto it = channels_.find(name); it != channels_.end() && it->second)
                    it->second(m);
            });
    }
    master_client_->on_link_change([this, generation](bool up, const std::string& reason) {
        if (generation == generation_) master_link(up, reason);
    });
    if (master_change_) master_change_(from, at.to_string(), why);
    if (was_up) link(false, "the master moved to " + at.to_string() + " (" + why + ")");
    if (running_) master_client_->start();
}

void SentinelClient::master_link(bool up, const std::string& reason) {
    if (up) return check_role();
    bool was = confirmed_;
    confirmed_ = false;
    link(false, reason);
    // The master may have gone for good: the sentinels know where it is now.
    if (was || !discovering_) discover("the link to the master was lost: " + reason);
}

// The sentinels may name a demoted server (stale, or a failover under
// way): a master is used only once it says it is one.
void SentinelClient::check_role() {
    if (!master_client_ || !master_client_->connected()) return;
    auto generation = generation_;
    master_client_->command({"ROLE"}, [this, generation](const RedisReply& reply) {
        if (generation != generation_ || !running_) return;
        auto role = role_of(reply);
        if (role == RedisRole::Master) {
            if (confirmed_) return;
            confirmed_ = true;
            if (connected()) link(true, "");
            return;
        }
        if (!reply.answered() || reply.kind == RedisReply::Kind::Error) {
            // Slow, or the link is going (its own callback follows).
            if (reply.kind == RedisReply::Kind::Timeout)
                later(kRoleRetry, [this] { check_role(); });
            return;
        }
        lost_master(master() + " is not the master (ROLE says " +
                    (reply.elements.empty() ? "nothing" : reply.elements[0].text) + ")");
    });
}

void SentinelClient::lost_master(const std::string& reason) {
    if (confirmed_) {
        confirmed_ = false;
        link(false, reason);
    }
    discover(reason);
}

void SentinelClient::switch_message(const std::string& message) {
    auto change = parse_switch_master(message);
    if (!change || change->name != settings_.master_name) return;
    ++switches_;  // a sentinel's answer still on its way is older
    // The sentinels learn of a failover one after the other: for a while
    // one may still name the old master, which must not take the node back.
    switched_from_ = change->from;
    switched_at_ = std::chrono::steady_clock::now();
    use_master(change->to, "+switch-master from the sentinels");
}

void SentinelClient::fail_outstanding() {
    auto lost = std::move(outstanding_);
    outstanding_.clear();
    for (auto& [id, done] : lost) {
        asio::post(executor_, [alive = std::weak_ptr<bool>(alive_), this, done = std::move(done)] {
            if (alive.expired() || !running_) return;
            RedisReply r;
            r.kind = RedisReply::Kind::Disconnected;
            r.text = "the master moved";
            done(r);
        });
    }
}

}  // namespace smtplb::io
