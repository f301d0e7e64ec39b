#include "audit_routing_facts.hpp"

#include <cstdio>
#include <set>

#include <boost/json.hpp>

namespace smtplb::app {

namespace {

namespace json = boost::json;

// More than any routing table this audit is meant for; a larger output
// is cut and then fails to parse, with that said.
constexpr std::size_t kMaxOutput = 8 << 20;

struct Output {
    bool ran = false;  // the command could be started and exited 0
    std::string text;  // stdout and stderr
};

// The arguments are fixed words and numeric addresses: nothing to quote.
Output run(const std::string& command) {
    Output out;
    FILE* pipe = ::popen((command + " 2>&1").c_str(), "r");
    if (!pipe) return out;
    char buffer[8192];
    std::size_t n = 0;
    while ((n = std::fread(buffer, 1, sizeof buffer, pipe)) > 0)
        if (out.text.size() < kMaxOutput) out.text.append(buffer, n);
    int status = ::pclose(pipe);
    out.ran = status == 0;
    return out;
}

std::string text_of(const json::object& o, const char* key) {
    auto* v = o.if_contains(key);
    if (!v) return "";
    if (v->is_string()) return std::string(v->as_string());
    if (v->is_int64()) return std::to_string(v->as_int64());
    return "";
}

std::optional<json::array> parse_array(const std::string& text) {
    boost::system::error_code ec;
    auto value = json::parse(text, ec);
    if (ec || !value.is_array()) return std::nullopt;
    return value.as_array();
}

std::string first_line(const std::string& text) {
    auto line = text.substr(0, text.find('\n'));
    return line.empty() ? "no output" : line;
}

bool read_rules(bool v6, core::RoutingFacts& facts) {
    auto out = run(std::string("ip -j ") + (v6 ? "-6 " : "") + "rule show");
    auto rules = out.ran ? parse_array(out.text) : std::nullopt;
    if (!rules) {
        facts.error = "`ip -j rule show` failed: " + first_line(out.text);
        return false;
    }
    for (const auto& v : *rules) {
        if (!v.is_object()) continue;
        const auto& o = v.as_object();
        core::PolicyRule rule;
        rule.v6 = v6;
        rule.iif = text_of(o, "iif");
        rule.table = text_of(o, "table");
        if (auto mark = text_of(o, "fwmark"); !mark.empty()) {
            try {
                rule.fwmark = static_cast<std::uint32_t>(std::stoul(mark, nullptr, 0));
            } catch (const std::exception&) {
                continue;  // not a mark this audit understands
            }
        }
        facts.rules.push_back(std::move(rule));
    }
    return true;
}

bool read_routes(bool v6, core::RoutingFacts& facts) {
    auto out = run(std::string("ip -j ") + (v6 ? "-6" : "-4") + " route show table all");
    auto routes = out.ran ? parse_array(out.text) : std::nullopt;
    if (!routes) {
        facts.error = "`ip -j route show table all` failed: " + first_line(out.text);
        return false;
    }
    for (const auto& v : *routes) {
        if (!v.is_object()) continue;
        const auto& o = v.as_object();
        core::TableRoute route{v6, text_of(o, "table"), text_of(o, "type"), text_of(o, "dst")};
        if (route.table.empty()) route.table = "main";
        if (route.type.empty()) route.type = "unicast";
        facts.routes.push_back(std::move(route));
    }
    return true;
}

core::BackendPath read_path(const std::string& address) {
    core::BackendPath path{address, "", "", ""};
    bool v6 = address.find(':') != std::string::npos;
    auto out = run(std::string("ip -j ") + (v6 ? "-6 " : "") + "route get " + address);
    auto routes = out.ran ? parse_array(out.text) : std::nullopt;
    if (!routes || routes->empty() || !routes->at(0).is_object()) {
        path.error = first_line(out.text);
        return path;
    }
    const auto& o = routes->at(0).as_object();
    path.dev = text_of(o, "dev");
    path.source = text_of(o, "prefsrc");
    if (path.dev.empty()) path.error = "no interface in `ip route get`";
    return path;
}

}  // namespace

core::RoutingFacts gather_routing_facts(const std::vector<core::TransparentTarget>& targets) {
    core::RoutingFacts facts;
    // IPv6 only where a backend has an IPv6 address: a host without IPv6
    // fails `ip -6`, which must not hide the IPv4 findings.
    bool any_v6 = false;
    for (const auto& t : targets)
        any_v6 |= t.address.find(':') != std::string::npos;
    for (bool v6 : {false, true})
        if ((!v6 || any_v6) && (!read_rules(v6, facts) || !read_routes(v6, facts))) return facts;
    std::set<std::string> asked;
    for (const auto& t : targets)
        if (!t.address.empty() && asked.insert(t.address).second)
            facts.paths.push_back(read_path(t.address));
    // Either tool may be missing (or see nothing): read what there is.
    std::string netfilter;
    bool any = false;
    for (const char* command :
         {"nft list ruleset", "iptables-save -t mangle", "ip6tables-save -t mangle"}) {
        auto out = run(command);
        if (!out.ran) continue;
        any = true;
        netfilter += out.text + "\n";
    }
    if (any) facts.netfilter = std::move(netfilter);
    return facts;
}

}  // namespace smtplb::app
