#include "core/cluster/node_registry.hpp"

#include <algorithm>
#include <cstdio>

namespace smtplb::core::cluster {

namespace {

std::string trim(std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t'))
        s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r'))
        s.remove_suffix(1);
    return std::string(s);
}

std::string ms_text(base::Clock::Duration d) {
    return std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(d).count());
}

}  // namespace

const std::vector<std::string>& per_node_keys() {
    // What must or may differ between the nodes of one service: who they
    // are (names, addresses they bind or send from), where they keep their
    // files, and how big the machine is.
    static const std::vector<std::string> keys{
        "server.hostname",   "server.state_dir", "server.tracking_log",
        "server.admin",      "server.threads",   "server.busy_poll_us",
        "cluster.node_name", "listener.bind",    "listener.source_address",
    };
    return keys;
}

std::string config_digest(std::string_view effective) {
    const auto& skip = per_node_keys();
    std::uint64_t hash = 0xcbf29ce484222325ULL;  // FNV-1a
    auto feed = [&hash](std::string_view text) {
        for (unsigned char c : text) {
            hash ^= c;
            hash *= 0x100000001b3ULL;
        }
        hash ^= '\n';
        hash *= 0x100000001b3ULL;
    };
    std::string section;
    while (!effective.empty()) {
        auto end = effective.find('\n');
        std::string_view line = effective.substr(0, end);
        effective.remove_prefix(end == std::string_view::npos ? effective.size() : end + 1);
        std::string text = trim(line);
        if (text.empty() || text.front() == '#') continue;
        if (text.front() == '[') {  // "[server]", "[[listener]]", "[[pool.backend]]"
            section = text;
            section.erase(std::remove(section.begin(), section.end(), '['), section.end());
            section.erase(std::remove(section.begin(), section.end(), ']'), section.end());
            feed(text);
            continue;
        }
        auto eq = text.find('=');
        if (eq != std::string::npos) {
            auto key = section + "." + trim(std::string_view(text).substr(0, eq));
            if (std::find(skip.begin(), skip.end(), key) != skip.end()) continue;
        }
        feed(text);
    }
    char out[17];
    std::snprintf(out, sizeof out, "%016llx", static_cast<unsigned long long>(hash));
    return out;
}

NodeTable::NodeTable(std::string self, base::Clock::Duration expiry,
                     base::Clock::Duration forget_after)
    : self_(std::move(self)), expiry_(expiry), forget_after_(forget_after) {}

bool NodeTable::alive(const Known& k, base::Clock::TimePoint now) const {
    return k.key_present && now - k.changed_at <= expiry_;
}

std::vector<RegistryEvent> NodeTable::observe(const std::vector<Heartbeat>& found,
                                              base::Clock::TimePoint now) {
    for (auto& [name, known] : nodes_)
        known.key_present = false;
    for (const auto& heartbeat : found) {
        auto [it, added] = nodes_.try_emplace(heartbeat.node);
        auto& known = it->second;
        // A heartbeat that did not change since the last read is no sign of life.
        if (added || heartbeat.sequence != known.last.sequence ||
            heartbeat.started_ms != known.last.started_ms)
            known.changed_at = now;
        known.last = heartbeat;
        known.key_present = true;
    }
    std::vector<RegistryEvent> events;
    auto self = nodes_.find(self_);
    const std::string self_digest = self == nodes_.end() ? "" : self->second.last.digest;
    std::size_t live = 0;
    for (auto& [name, known] : nodes_) {
        const bool now_alive = alive(known, now);
        if (now_alive) ++live;
        if (name == self_) {
            known.logged_alive = now_alive;
            continue;
        }
        if (now_alive && !known.logged_alive)
            events.push_back(
                {"cluster_node_joined",
                 {{"node", name}, {"version", known.last.version}, {"digest", known.last.digest}}});
        if (!now_alive && known.logged_alive)
            events.push_back({"cluster_node_gone",
                              {{"node", name},
                               {"last_heartbeat_ms", ms_text(now - known.changed_at)},
                               {"reason", known.key_present ? "heartbeat_stale" : "key_expired"}}});
        known.logged_alive = now_alive;
        const bool differs = now_alive && !self_digest.empty() && known.last.digest != self_digest;
        if (differs && known.logged_digest != known.last.digest)
            events.push_back({"cluster_node_config_differs",
                              {{"node", name},
                               {"digest", known.last.digest},
                               {"this_node", self_},
                               {"this_digest", self_digest}}});
        known.logged_digest = differs ? known.last.digest : "";
    }
    live_at_last_read_ = std::max<std::size_t>(1, live);
    return events;
}

std::string NodeTable::majority_digest(base::Clock::TimePoint now) const {
    std::map<std::string, std::size_t> votes;
    for (const auto& [name, known] : nodes_)
        if (alive(known, now) && !known.last.digest.empty()) ++votes[known.last.digest];
    auto self = nodes_.find(self_);
    const std::string self_digest = self == nodes_.end() ? "" : self->second.last.digest;
    std::string best;
    std::size_t most = 0;
    for (const auto& [digest, count] : votes)  // ascending: the smallest wins a tie...
        if (count > most || (count == most && digest == self_digest)) {  // ...but this node's first
            best = digest;
            most = count;
        }
    return best.empty() ? self_digest : best;
}

std::vector<NodeView> NodeTable::view(base::Clock::TimePoint now) const {
    const auto majority = majority_digest(now);
    auto self = nodes_.find(self_);
    const std::string self_digest = self == nodes_.end() ? "" : self->second.last.digest;
    std::vector<NodeView> out;
    for (const auto& [name, known] : nodes_) {
        NodeView v;
        v.last = known.last;
        v.alive = alive(known, now);
        v.self = name == self_;
        v.age = now - known.changed_at;
        v.differs_from_majority = !majority.empty() && known.last.digest != majority;
        v.differs_from_self = !self_digest.empty() && known.last.digest != self_digest;
        out.push_back(std::move(v));
    }
    return out;
}

std::vector<std::string> NodeTable::forget(base::Clock::TimePoint now) {
    std::vector<std::string> gone;
    for (auto it = nodes_.begin(); it != nodes_.end();) {
        if (it->first != self_ && !alive(it->second, now) &&
            now - it->second.changed_at > forget_after_) {
            gone.push_back(it->first);
            it = nodes_.erase(it);
        } else {
            ++it;
        }
    }
    return gone;
}

}  // namespace smtplb::core::cluster
