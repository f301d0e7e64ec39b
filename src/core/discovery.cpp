#include "core/discovery.hpp"

#include <algorithm>
#include <iterator>
#include <set>
#include <tuple>

namespace smtplb::core {

namespace {

using Kind = DiscoveredBackends::Kind;

std::string backend_name(const config::Discover& d, const DiscoveredHost& h,
                         const base::IpAddress& a) {
    std::string name = h.host;
    if (d.kind == config::DiscoverKind::Srv) name += ":" + std::to_string(h.port);
    return name + "@" + a.to_string();
}

bool same_backends(const std::vector<config::Backend>& a, const std::vector<config::Backend>& b) {
    return std::equal(a.begin(), a.end(), b.begin(), b.end(), [](const auto& x, const auto& y) {
        return x.name == y.name && x.address.to_string() == y.address.to_string() &&
               x.weight == y.weight && x.priority == y.priority;
    });
}

std::set<std::string> names_of(const std::vector<config::Backend>& backends) {
    std::set<std::string> out;
    for (const auto& b : backends)
        out.insert(b.name);
    return out;
}

// Rounded to the nearest second: "wait 1 s" computed a microsecond ago is 1.
std::string seconds_text(base::Clock::Duration d) {
    return std::to_string(std::chrono::round<std::chrono::seconds>(d).count());
}

}  // namespace

DiscoveredBackends backends_from(const config::Discover& d, const DiscoveryAnswer& answer) {
    DiscoveredBackends out;
    const auto what = std::string(config::to_string(d.kind)) + " " + d.name;
    if (answer.status == DnsStatus::TempFail) {
        out.reason = "no answer to " + what;
        return out;
    }
    if (answer.status == DnsStatus::NoName) {
        out.kind = Kind::Empty;
        out.reason = "no " + std::string(config::to_string(d.kind)) + " record for " + d.name;
        out.ttl = answer.negative_ttl;
        return out;
    }
    out.ttl = answer.ttl;
    auto hosts = answer.hosts;
    std::sort(hosts.begin(), hosts.end(), [](const auto& x, const auto& y) {
        return std::tie(x.priority, x.host, x.port) < std::tie(y.priority, y.host, y.port);
    });
    std::set<std::pair<std::string, std::uint16_t>> seen;  // address, port
    for (const auto& h : hosts) {
        // A host that did not answer: the list would be half of the truth,
        // and half would drain the rest. The whole resolution failed.
        if (h.addresses.status == DnsStatus::TempFail) {
            out.kind = Kind::Failed;
            out.backends.clear();
            out.reason = "no answer to the addresses of " + h.host + " (" + what + ")";
            return out;
        }
        if (h.addresses.status != DnsStatus::Ok) continue;  // a host without addresses
        if (h.addresses.ttl) out.ttl = std::min(out.ttl.value_or(UINT32_MAX), *h.addresses.ttl);
        auto addresses = h.addresses.addresses;
        std::sort(addresses.begin(), addresses.end(),
                  [](const auto& x, const auto& y) { return x.to_string() < y.to_string(); });
        for (const auto& a : addresses) {
            if (!seen.emplace(a.to_string(), h.port).second) continue;
            config::Backend b;
            b.name = backend_name(d, h, a);
            b.address = base::HostPort{a.to_string(), h.port};
            b.priority = std::min<std::uint32_t>(h.priority, 65535);
            b.weight = std::clamp<std::uint32_t>(h.weight, 1, 65535);
            b.discovered_from = config::discover_text(d);
            out.backends.push_back(std::move(b));
        }
    }
    if (out.backends.empty()) {
        out.kind = Kind::Empty;
        out.reason =
            hosts.empty() ? what + " names no host" : "no address for the hosts of " + what;
        return out;
    }
    out.kind = Kind::Found;
    return out;
}

PoolDiscovery::PoolDiscovery(std::string pool, config::Discover discover, const base::Clock& clock)
    : pool_(std::move(pool)), discover_(std::move(discover)), clock_(clock) {}

base::Clock::TimePoint PoolDiscovery::after(std::optional<std::uint32_t> ttl, bool failed) const {
    auto wait = std::chrono::duration_cast<config::Millis>(std::chrono::seconds(ttl.value_or(0)));
    if (failed) wait = discover_.min_refresh;
    return clock_.now() + std::clamp(wait, discover_.min_refresh, discover_.max_refresh);
}

PoolDiscovery::Step PoolDiscovery::on_answer(const DiscoveryAnswer& answer) {
    Step step;
    auto found = backends_from(discover_, answer);
    std::vector<std::pair<std::string, std::string>> who{
        {"pool", pool_}, {"discover", config::discover_text(discover_)}};
    if (found.kind != Kind::Found) {
        ++failures_;
        bool first = failing_++ == 0;
        last_error_ = found.reason;
        step.next = next_ = after(found.ttl, found.kind == Kind::Failed);
        if (first) {
            // Once per streak: a DNS server down for an hour is one line.
            DiscoveryEvent e{found.kind == Kind::Failed ? "discovery_failed" : "discovery_empty",
                             who};
            e.fields.emplace_back("reason", found.reason);
            e.fields.emplace_back("keeping", std::to_string(backends_.size()));
            if (!answered_)
                e.fields.emplace_back("note", "the pool has no backend from DNS until it answers");
            e.fields.emplace_back("retry_seconds", seconds_text(next_ - clock_.now()));
            step.events.push_back(std::move(e));
        }
        return step;
    }
    if (failing_ > 0 && answered_) {
        DiscoveryEvent e{"discovery_recovered", who};
        e.fields.emplace_back("failures", std::to_string(failing_));
        step.events.push_back(std::move(e));
    }
    failing_ = 0;
    last_error_.clear();
    step.next = next_ = after(found.ttl, false);
    if (answered_ && same_backends(found.backends, backends_)) return step;
    auto before = names_of(backends_);
    auto now = names_of(found.backends);
    std::set_difference(now.begin(), now.end(), before.begin(), before.end(),
                        std::back_inserter(step.added));
    std::set_difference(before.begin(), before.end(), now.begin(), now.end(),
                        std::back_inserter(step.removed));
    backends_ = std::move(found.backends);
    answered_ = true;
    step.changed = true;
    DiscoveryEvent e{"discovery_changed", who};
    e.fields.emplace_back("backends", std::to_string(backends_.size()));
    auto joined = [](const std::vector<std::string>& names) {
        std::string out;
        for (const auto& n : names)
            out += (out.empty() ? "" : ",") + n;
        return out;
    };
    if (!step.added.empty()) e.fields.emplace_back("added", joined(step.added));
    if (!step.removed.empty()) e.fields.emplace_back("removed", joined(step.removed));
    e.fields.emplace_back("refresh_seconds", seconds_text(next_ - clock_.now()));
    step.events.push_back(std::move(e));
    return step;
}

void add_discovered(config::Pool& pool, const std::vector<config::Backend>& discovered) {
    std::erase_if(pool.backends, [](const auto& b) { return !b.discovered_from.empty(); });
    pool.backends.insert(pool.backends.end(), discovered.begin(), discovered.end());
}

}  // namespace smtplb::core
