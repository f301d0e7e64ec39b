#include "config/limits_reader.hpp"

#include <algorithm>
#include <set>

#include "base/text.hpp"
#include "base/units.hpp"

namespace smtplb::config {
namespace {

using namespace std::chrono_literals;

constexpr std::chrono::milliseconds kMinPeriod = 1s;
constexpr std::chrono::milliseconds kMaxPeriod = 24h * 31;
constexpr std::size_t kMaxNameLength = 64;
constexpr std::size_t kMaxReplyText = 400;

const std::pair<const char*, LimitKeyPart> kKeyParts[] = {
    {"client_ip", LimitKeyPart::ClientIp}, {"client_network", LimitKeyPart::ClientNetwork},
    {"sender", LimitKeyPart::Sender},      {"sender_domain", LimitKeyPart::SenderDomain},
    {"auth_user", LimitKeyPart::AuthUser}, {"recipient_domain", LimitKeyPart::RecipientDomain},
    {"listener", LimitKeyPart::Listener},
};

const std::pair<const char*, LimitCounts> kCounted[] = {
    {"connections", LimitCounts::Connections},
    {"messages", LimitCounts::Messages},
    {"recipients", LimitCounts::Recipients},
    {"bytes", LimitCounts::Bytes},
    {"concurrent_connections", LimitCounts::ConcurrentConnections},
    {"concurrent_transactions", LimitCounts::ConcurrentTransactions},
};

bool valid_name(const std::string& name) {
    return !name.empty() && name.size() <= kMaxNameLength &&
           std::all_of(name.begin(), name.end(), [](unsigned char c) {
               return std::isalnum(c) || c == '-' || c == '_' || c == '.';
           });
}

std::optional<std::uint64_t> parse_count(std::string_view text) {
    if (text.empty() || text.size() > 19) return std::nullopt;
    std::uint64_t n = 0;
    for (char c : text) {
        if (c < '0' || c > '9') return std::nullopt;
        n = n * 10 + static_cast<std::uint64_t>(c - '0');
    }
    return n;
}

void read_key(TableReader& r, Limit& l) {
    auto& d = r.diagnostics();
    std::vector<std::string> names;
    if (auto* n = r.node("key"); n && n->is_string()) {
        names.push_back(*n->value<std::string>());
    } else if (n) {
        r.strings("key", names);
    } else {
        d.error(r.key_path("key"), r.line_of("key"),
                "is required: what the limit counts by, e.g. \"sender\" or "
                "[\"client_network\", \"sender_domain\"]");
        return;
    }
    std::string choices;
    for (const auto& [name, part] : kKeyParts)
        choices += choices.empty() ? name : std::string(" | ") + name;
    if (names.empty())
        d.error(r.key_path("key"), r.line_of("key"), "must name at least one of " + choices);
    for (const auto& name : names) {
        auto it = std::find_if(std::begin(kKeyParts), std::end(kKeyParts),
                               [&](const auto& kp) { return name == kp.first; });
        if (it == std::end(kKeyParts)) {
            d.error(r.key_path("key"), r.line_of("key"),
                    "\"" + base::printable(name) + "\" is not one of " + choices);
        } else if (l.keyed_by(it->second)) {
            d.error(r.key_path("key"), r.line_of("key"), "\"" + name + "\" is given twice");
        } else {
            l.key.push_back(it->second);
        }
    }
}

// Exactly one of connections, messages, ... says what is counted and how much.
void read_counted(TableReader& r, Limit& l) {
    auto& d = r.diagnostics();
    std::vector<const char*> given;
    // Each key named where it is read (tests/docs follow the reads).
    const toml::node* nodes[] = {r.node("connections"),
                                 r.node("messages"),
                                 r.node("recipients"),
                                 r.node("bytes"),
                                 r.node("concurrent_connections"),
                                 r.node("concurrent_transactions")};
    static_assert(std::size(nodes) == std::size(kCounted));
    for (std::size_t i = 0; i < std::size(kCounted); ++i) {
        const auto& [name, counts] = kCounted[i];
        const toml::node* n = nodes[i];
        if (!n) continue;
        given.push_back(name);
        l.counts = counts;
        if (!l.is_rate()) {
            auto v = n->value<std::int64_t>();
            if (!n->is_integer() || !v || *v < 1 || *v > 1000000)
                d.error(r.key_path(name), r.line_of(name),
                        "must be an integer between 1 and 1000000 (at once per key)");
            else
                l.concurrency = static_cast<std::uint32_t>(*v);
            continue;
        }
        const bool sizes = counts == LimitCounts::Bytes;
        auto text = n->value<std::string>();
        auto rate = text ? parse_rate(*text, sizes) : std::nullopt;
        if (!n->is_string() || !rate) {
            d.error(r.key_path(name), r.line_of(name),
                    std::string("must be a rate: QUANTITY/PERIOD, e.g. ") +
                        (sizes ? "\"500MiB/1h\"" : "\"10/1m\" or \"100/h\""));
        } else if (rate->quantity < 1 || rate->quantity > kMaxRateQuantity) {
            d.error(r.key_path(name), r.line_of(name),
                    "the quantity must be between 1 and " + std::to_string(kMaxRateQuantity));
        } else if (rate->period < kMinPeriod || rate->period > kMaxPeriod) {
            d.error(r.key_path(name), r.line_of(name),
                    "the period must be between " + base::format_duration(kMinPeriod) + " and " +
                        base::format_duration(kMaxPeriod));
        } else {
            l.quantity = rate->quantity;
            l.period = rate->period;
        }
    }
    if (given.size() != 1) {
        std::string names;
        for (const auto& [name, counts] : kCounted)
            names += names.empty() ? name : std::string(", ") + name;
        d.error(r.path(), r.line_of(given.empty() ? "name" : given[1]),
                "a limit needs exactly one of " + names);
    }
}

void read_burst(TableReader& r, Limit& l) {
    auto& d = r.diagnostics();
    auto* n = r.node("burst");
    if (!n) {
        l.burst = l.quantity;  // the whole quantity at once, as KumoMTA's default
        return;
    }
    if (!l.is_rate()) {
        d.error(r.key_path("burst"), r.line_of("burst"),
                "only a rate (connections, messages, recipients, bytes) has a burst");
        return;
    }
    std::optional<std::uint64_t> burst;
    if (auto v = n->value<std::int64_t>(); n->is_integer() && v && *v >= 0)
        burst = static_cast<std::uint64_t>(*v);
    else if (auto s = n->value<std::string>(); n->is_string() && l.counts == LimitCounts::Bytes)
        burst = base::parse_size(*s);
    if (!burst || *burst < 1 || *burst > kMaxRateQuantity)
        d.error(
            r.key_path("burst"), r.line_of("burst"),
            "must be an integer" +
                std::string(l.counts == LimitCounts::Bytes ? " or a size such as \"10MiB\"" : "") +
                " between 1 and " + std::to_string(kMaxRateQuantity) +
                " (how many may pass at one instant)");
    else
        l.burst = *burst;
}

// "451 4.7.1 Text": a temporary refusal, with its enhanced code when given.
void read_reply(TableReader& r, Limit& l) {
    auto& d = r.diagnostics();
    std::string text;
    r.string("reply", text);
    if (!r.node("reply")) return;
    const int line = r.line_of("reply");
    const auto path = r.key_path("reply");
    bool printable = std::all_of(text.begin(), text.end(),
                                 [](unsigned char c) { return c >= 0x20 && c < 0x7f; });
    if (!printable || text.size() > kMaxReplyText) {
        d.error(
            path, line,
            "must be printable ASCII of at most " + std::to_string(kMaxReplyText) + " characters");
        return;
    }
    auto code = text.size() >= 3 ? parse_count(std::string_view(text).substr(0, 3)) : std::nullopt;
    if (!code || (text.size() > 3 && text[3] != ' ') || *code < 400 || *code > 499) {
        d.error(path, line, "must start with a 4xx code (a temporary refusal), e.g. \"451 4.7.1\"");
        return;
    }
    if (l.at_connect() && *code != 421) {
        d.error(path, line,
                "a limit counted at connect refuses the greeting: its code must be 421");
        return;
    }
    std::string rest = text.size() > 4 ? text.substr(4) : "";
    std::string enhanced;
    if (!rest.empty() && rest[0] >= '0' && rest[0] <= '9') {
        auto space = rest.find(' ');
        enhanced = rest.substr(0, space);
        rest = space == std::string::npos ? "" : rest.substr(space + 1);
        int dots = static_cast<int>(std::count(enhanced.begin(), enhanced.end(), '.'));
        bool digits = std::all_of(enhanced.begin(), enhanced.end(),
                                  [](char c) { return c == '.' || (c >= '0' && c <= '9'); });
        if (enhanced[0] != '4' || dots != 2 || !digits ||
            enhanced.find("..") != std::string::npos || enhanced.back() == '.') {
            d.error(path, line, "the enhanced code must be 4.X.Y (RFC 3463), e.g. 4.7.1");
            return;
        }
    }
    if (base::trim(rest).empty()) {
        d.error(path, line, "needs a text after the code, saying why (the client's log shows it)");
        return;
    }
    l.reply = proto::Reply::make(static_cast<int>(*code), enhanced, rest);
}

}  // namespace

std::optional<RateText> parse_rate(std::string_view text, bool sizes) {
    auto slash = text.find('/');
    if (slash == std::string_view::npos) return std::nullopt;
    auto quantity_text = base::trim(text.substr(0, slash));
    std::string period_text(base::trim(text.substr(slash + 1)));
    auto quantity = sizes ? base::parse_size(quantity_text) : parse_count(quantity_text);
    if (!quantity) return std::nullopt;
    // "10/m" is "10/1m", as KumoMTA writes it.
    if (!period_text.empty() && period_text.find_first_of("0123456789") == std::string::npos)
        period_text.insert(0, "1");
    auto period = base::parse_duration(period_text);
    if (!period) return std::nullopt;
    return RateText{*quantity, *period};
}

void read_limit(TableReader& r, Limit& l) {
    auto& d = r.diagnostics();
    l.line = r.line_of("name");
    r.string("name", l.name, true);
    if (!l.name.empty() && !valid_name(l.name))
        d.error(r.key_path("name"), r.line_of("name"),
                "must be at most 64 letters, digits, '-', '_' or '.' (it names the limit in "
                "replies, metrics and logs)");
    read_key(r, l);
    read_counted(r, l);
    read_burst(r, l);
    if (l.keyed_by(LimitKeyPart::ClientNetwork)) {
        r.integer("ipv4_prefix", l.ipv4_prefix, 0, 32);
        r.integer("ipv6_prefix", l.ipv6_prefix, 0, 128);
    } else {
        for (const char* key : {"ipv4_prefix", "ipv6_prefix"})
            if (r.node(key))
                d.warning(r.key_path(key), r.line_of(key),
                          "only a limit keyed by client_network uses it; ignored");
    }
    // At connect nothing but the client and the listener is known yet.
    if (l.at_connect())
        for (auto part : l.key)
            if (part != LimitKeyPart::ClientIp && part != LimitKeyPart::ClientNetwork &&
                part != LimitKeyPart::Listener)
                d.error(r.key_path("key"), r.line_of("key"),
                        std::string("\"") + to_string(l.counts) +
                            "\" is counted at connect, where only client_ip, client_network "
                            "and listener are known, not \"" +
                            to_string(part) + "\"");
    if (l.counts == LimitCounts::ConcurrentTransactions &&
        l.keyed_by(LimitKeyPart::RecipientDomain))
        d.error(r.key_path("key"), r.line_of("key"),
                "a transaction is counted from MAIL, before any recipient: not keyed by "
                "recipient_domain (per-destination concurrency is a pool's shaping)");
    r.choice("action", l.action,
             {{"tempfail", LimitAction::Tempfail}, {"delay", LimitAction::Delay}});
    r.duration("delay", l.delay, 100ms, 5min);
    if (l.action == LimitAction::Delay && !l.is_rate())
        d.error(r.key_path("action"), r.line_of("action"),
                "\"delay\" holds a reply until a rate allows it; a concurrency limit can only "
                "tempfail");
    else if (l.action == LimitAction::Delay && l.delay.count() == 0)
        d.error(r.key_path("delay"), r.line_of("action"),
                "action \"delay\" needs the longest hold, e.g. delay = \"10s\"");
    else if (l.action != LimitAction::Delay && r.node("delay"))
        d.warning(r.key_path("delay"), r.line_of("delay"),
                  "only action = \"delay\" holds replies; ignored");
    read_reply(r, l);
    r.strings("listeners", l.listeners);
    r.strings("exempt_networks", l.exempt_networks_text);
    for (const auto& text : l.exempt_networks_text) {
        if (auto c = base::Cidr::parse(text))
            l.exempt_networks.push_back(*c);
        else
            d.error(r.key_path("exempt_networks"), r.line_of("exempt_networks"),
                    "\"" + base::printable(text) + "\" is not an address or ADDRESS/PREFIX");
    }
    r.strings("exempt_auth_users", l.exempt_auth_users);
    for (const auto& user : l.exempt_auth_users)
        if (user.empty())
            d.error(r.key_path("exempt_auth_users"), r.line_of("exempt_auth_users"),
                    "an empty name would exempt nobody");
    r.integer("max_keys", l.max_keys, 1, 10000000);
    r.boolean("shared", l.shared);
}

void check_limits(const Config& c, const KeyLines& lines, Diagnostics& d) {
    std::set<std::string> names, listeners;
    for (const auto& l : c.listeners)
        listeners.insert(l.name);
    for (std::size_t i = 0; i < c.limits.size(); ++i) {
        const auto& l = c.limits[i];
        const std::string path = "limit[" + std::to_string(i) + "]";
        if (!l.name.empty() && !names.insert(l.name).second)
            d.error(path + ".name", lines.line(path + ".name"),
                    "duplicate limit name \"" + l.name + "\"");
        for (const auto& name : l.listeners)
            if (!listeners.count(name))
                d.error(path + ".listeners", lines.line(path + ".listeners"),
                        "no [[listener]] is named \"" + base::printable(name) + "\"");
    }
}

}  // namespace smtplb::config
