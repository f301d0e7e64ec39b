#include "core/audit_routing.hpp"

#include <algorithm>
#include <charconv>
#include <map>
#include <set>
#include <tuple>

#include "base/network.hpp"

namespace smtplb::core {

namespace {

using S = Finding::Severity;

const char* kRecipeDoc = "docs/transparent-routing.md";

// "0x1", "1": a mark as ip, nft and iptables print it.
std::optional<std::uint32_t> parse_mark(std::string_view text) {
    int base = 10;
    if (text.size() > 2 && text[0] == '0' && (text[1] == 'x' || text[1] == 'X')) {
        text.remove_prefix(2);
        base = 16;
    }
    std::uint32_t value = 0;
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value, base);
    if (ec != std::errc() || end == text.data()) return std::nullopt;
    return value;
}

// The number after `key` on a line, up to a space or '/' (iptables' mask).
std::optional<std::uint32_t> mark_after(std::string_view line, std::string_view key) {
    auto at = line.find(key);
    if (at == std::string_view::npos) return std::nullopt;
    auto rest = line.substr(at + key.size());
    return parse_mark(rest.substr(0, rest.find_first_of(" /\t")));
}

bool is_system_table(const std::string& table) {
    return table == "local" || table == "main" || table == "default";
}

bool is_default(const TableRoute& r) {
    return r.dst == "default" || r.dst == (r.v6 ? "::/0" : "0.0.0.0/0");
}

struct Check {
    const RoutingFacts& facts;
    bool v6;
    std::string dev;

    std::string ip() const { return v6 ? "ip -6 " : "ip "; }
    std::string everything() const { return v6 ? "::/0" : "0.0.0.0/0"; }

    bool has_local_default(const std::string& table) const {
        return std::any_of(facts.routes.begin(), facts.routes.end(), [&](const TableRoute& r) {
            return r.v6 == v6 && r.table == table && r.type == "local" && is_default(r);
        });
    }
    // A table of the operator's own (not local/main/default) that already
    // delivers everything locally: the one to point a new rule at.
    std::string local_table() const {
        for (const auto& r : facts.routes)
            if (r.v6 == v6 && r.type == "local" && is_default(r) && !is_system_table(r.table))
                return r.table;
        return kTransparentTable;
    }
    std::string add_local_route(const std::string& table) const {
        return ip() + "route add local " + everything() + " dev lo table " + table;
    }
};

std::string join(const std::vector<std::string>& items, const char* sep) {
    std::string out;
    for (const auto& item : items)
        out += (out.empty() ? "" : sep) + item;
    return out;
}

// One interface facing a listener's backends: a finding when the recipe
// is missing there, nothing when it is in place.
std::optional<Finding> check_interface(const Check& c, const std::string& where) {
    const auto& facts = c.facts;
    std::optional<PolicyRule> iif_without_route, mark_without_netfilter;
    for (const auto& rule : facts.rules) {
        // A rule into the system's own tables is not this recipe, and a local
        // default route there would swallow all traffic: never suggest one.
        if (rule.v6 != c.v6 || is_system_table(rule.table)) continue;
        if (!rule.fwmark && rule.iif == c.dev) {
            if (c.has_local_default(rule.table)) return std::nullopt;
            iif_without_route = rule;
        }
        if (rule.fwmark && (rule.iif.empty() || rule.iif == c.dev) &&
            c.has_local_default(rule.table)) {
            if (!facts.netfilter)
                return Finding{S::Note, where,
                               "`ip rule fwmark " + std::to_string(*rule.fwmark) + " lookup " +
                                   rule.table +
                                   "` is there, but the netfilter rules could not be read to "
                                   "confirm that packets of transparent sockets get that mark",
                               "check `nft list ruleset` (or `iptables-save -t mangle`) for a "
                               "`socket transparent` rule setting mark " +
                                   std::to_string(*rule.fwmark)};
            auto marks = transparent_socket_marks(*facts.netfilter);
            if (std::find(marks.begin(), marks.end(), *rule.fwmark) != marks.end())
                return std::nullopt;
            mark_without_netfilter = rule;
        }
    }
    std::string hangs =
        ": transparent connections to these backends will hang in connect (their replies "
        "to the clients' addresses are routed away from this host)";
    if (iif_without_route)
        return Finding{
            S::Problem, where,
            "`ip rule iif " + c.dev + " lookup " + iif_without_route->table +
                "` is there but table " + iif_without_route->table + " has no local default route" +
                hangs,
            c.add_local_route(iif_without_route->table) + " (persistent: " + kRecipeDoc + ")"};
    if (mark_without_netfilter) {
        auto mark = std::to_string(*mark_without_netfilter->fwmark);
        return Finding{
            S::Problem, where,
            "`ip rule fwmark " + mark + " lookup " + mark_without_netfilter->table +
                "` is there but no netfilter rule marks packets of transparent sockets with " +
                mark + hangs,
            "nft add table inet smtplb && nft add chain inet smtplb prerouting '{ type filter "
            "hook prerouting priority mangle; }' && nft add rule inet smtplb prerouting meta "
            "l4proto tcp socket transparent 1 meta mark set " +
                mark + " accept (persistent: " + kRecipeDoc + ")"};
    }
    auto table = c.local_table();
    std::vector<std::string> run{c.ip() + "rule add iif " + c.dev + " lookup " + table};
    if (!c.has_local_default(table)) run.push_back(c.add_local_route(table));
    return Finding{S::Problem, where,
                   "no `ip " + std::string(c.v6 ? "-6 " : "") + "rule` sends packets arriving on " +
                       c.dev + " to a table with a local default route" + hangs,
                   join(run, " && ") + " (or the fwmark form for a shared network; persistent: " +
                       kRecipeDoc + ")"};
}

}  // namespace

std::vector<TransparentTarget> transparent_targets(const config::Config& config) {
    std::vector<TransparentTarget> out;
    for (const auto& l : config.listeners) {
        if (!l.transparent) continue;
        std::set<std::string> pools{l.pool};
        for (const auto& route : config.routes)
            if (route.serves(l.name)) pools.insert(route.pool);
        for (const auto& pool : config.pools) {
            if (!pools.count(pool.name)) continue;
            for (const auto& b : pool.backends) {
                auto ip = base::IpAddress::parse(b.address.host);
                out.push_back({l.name, pool.name + "/" + b.name, ip ? ip->to_string() : ""});
            }
        }
    }
    return out;
}

std::vector<std::uint32_t> transparent_socket_marks(const std::string& netfilter) {
    std::vector<std::uint32_t> marks;
    std::string_view text = netfilter;
    while (!text.empty()) {
        auto eol = text.find('\n');
        auto line = text.substr(0, eol);
        text = eol == std::string_view::npos ? std::string_view{} : text.substr(eol + 1);
        bool nft = line.find("socket transparent 1") != std::string_view::npos;
        bool xt = line.find("-m socket") != std::string_view::npos &&
                  line.find("--transparent") != std::string_view::npos;
        if (!nft && !xt) continue;
        for (auto key : {"mark set ", "--set-xmark ", "--set-mark "})
            if (auto mark = mark_after(line, key)) {
                marks.push_back(*mark);
                break;
            }
    }
    return marks;
}

std::vector<Finding> audit_transparent_routing(const config::Config& config,
                                               const RoutingFacts& facts) {
    std::vector<Finding> out;
    auto targets = transparent_targets(config);
    if (targets.empty()) return out;
    if (!facts.error.empty()) {
        out.push_back({S::Warning, "transparent routing", "not checked: " + facts.error,
                       "run `smtplb audit` on the balancer host, as root, with iproute2"});
        return out;
    }
    // Backends grouped by listener and the interface that faces them.
    struct Group {
        std::vector<std::string> backends;
        std::string source;
    };
    std::map<std::tuple<std::string, bool, std::string>, Group> groups;
    for (const auto& t : targets) {
        std::string where = "listener " + t.listener + ", backend " + t.backend;
        if (t.address.empty()) {
            out.push_back({S::Note, where, "given by name: the route towards it was not checked",
                           "check `ip route get ADDRESS` and the rule for that interface"});
            continue;
        }
        auto path = std::find_if(facts.paths.begin(), facts.paths.end(),
                                 [&](const BackendPath& p) { return p.address == t.address; });
        if (path == facts.paths.end() || path->dev.empty()) {
            std::string why = path == facts.paths.end() ? "not looked up" : path->error;
            out.push_back({S::Warning, where + " (" + t.address + ")",
                           "no route towards it: " + why, "add a route to " + t.address});
            continue;
        }
        auto& g = groups[{t.listener, t.address.find(':') != std::string::npos, path->dev}];
        g.backends.push_back(t.backend);
        g.source = path->source;
    }
    for (const auto& [key, g] : groups) {
        const auto& [listener, v6, dev] = key;
        std::string where = "listener " + listener + ", ";
        where.append(v6 ? "IPv6" : "IPv4").append(" backends via ").append(dev);
        where.append(" (").append(join(g.backends, ", ")).append(")");
        if (dev == "lo") {
            out.push_back({S::Warning, where,
                           "the backends are on this host: a transparent connection to them "
                           "has no routed path for the recipe to catch",
                           "run them on another host (or network namespace) routed via this one"});
            continue;
        }
        if (auto f = check_interface(Check{facts, v6, dev}, where)) {
            out.push_back(std::move(*f));
            continue;
        }
        std::string via = g.source.empty() ? "this host" : g.source;
        out.push_back({S::Note, where,
                       "routing recipe in place; the backends must also send their replies to "
                       "clients' addresses through this host",
                       "on each backend: the default route (or routes to the client networks) "
                       "via " +
                           via});
    }
    return out;
}

}  // namespace smtplb::core
