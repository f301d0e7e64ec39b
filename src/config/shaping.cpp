#include "config/shaping.hpp"

#include <algorithm>
#include <set>
#include <sstream>

#include "base/text.hpp"
#include "base/units.hpp"
#include "config/limits.hpp"
#include "config/limits_reader.hpp"
#include "config/table_reader.hpp"

namespace smtplb::config {
namespace {

using namespace std::chrono_literals;

// As [[limit]]'s bounds (limits_reader.cpp).
constexpr std::chrono::milliseconds kMinPeriod = 1s;
constexpr std::chrono::milliseconds kMaxPeriod = 24h * 31;
// The destination limits of one pool: each costs a look per candidate
// backend at every pick, so a handful, not a table of every domain.
constexpr std::size_t kMaxPerPool = 100;

// "gmail.com", "mail.example.net": letters, digits and '-' in dot-separated labels.
bool valid_domain(const std::string& d) {
    if (d.empty() || d.size() > 253 || d.front() == '.' || d.back() == '.') return false;
    if (d.find("..") != std::string::npos) return false;
    return std::all_of(d.begin(), d.end(), [](unsigned char c) {
        return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.';
    });
}

void read_domain(TableReader& r, DestinationLimit& l) {
    auto& d = r.diagnostics();
    r.string("domain", l.domain, true);
    l.domain = base::to_lower(l.domain);
    if (!l.domain.empty() && !l.is_wildcard() && !valid_domain(l.domain))
        d.error(r.key_path("domain"), r.line_of("domain"),
                "must be a recipient domain such as \"gmail.com\", or \"*\" for each domain "
                "separately, not \"" +
                    base::printable(l.domain) + "\"");
}

void read_messages(TableReader& r, DestinationLimit& l) {
    auto& d = r.diagnostics();
    auto* n = r.node("messages");
    if (!n) return;
    auto text = n->value<std::string>();
    auto rate = text ? parse_rate(*text, false) : std::nullopt;
    if (!n->is_string() || !rate)
        d.error(r.key_path("messages"), r.line_of("messages"),
                "must be a rate: QUANTITY/PERIOD, e.g. \"100/1m\" or \"1000/h\"");
    else if (rate->quantity < 1 || rate->quantity > kMaxRateQuantity)
        d.error(r.key_path("messages"), r.line_of("messages"),
                "the quantity must be between 1 and " + std::to_string(kMaxRateQuantity));
    else if (rate->period < kMinPeriod || rate->period > kMaxPeriod)
        d.error(r.key_path("messages"), r.line_of("messages"),
                "the period must be between " + base::format_duration(kMinPeriod) + " and " +
                    base::format_duration(kMaxPeriod));
    else {
        l.messages = rate->quantity;
        l.period = rate->period;
        l.burst = rate->quantity;  // the whole quantity at once unless told
    }
}

void read_burst(TableReader& r, DestinationLimit& l) {
    auto& d = r.diagnostics();
    auto* n = r.node("burst");
    if (!n) return;
    if (!r.node("messages")) {
        d.error(r.key_path("burst"), r.line_of("burst"),
                "only a message rate has a burst: give messages = \"QUANTITY/PERIOD\" too");
        return;
    }
    auto v = n->value<std::int64_t>();
    if (!n->is_integer() || !v || *v < 1 || static_cast<std::uint64_t>(*v) > kMaxRateQuantity) {
        d.error(r.key_path("burst"), r.line_of("burst"),
                "must be an integer between 1 and " + std::to_string(kMaxRateQuantity) +
                    " (how many messages may go at one instant)");
        return;
    }
    if (l.messages > 0) l.burst = static_cast<std::uint64_t>(*v);
}

void read_one(TableReader& r, DestinationLimit& l) {
    l.line = r.line_of("domain");
    read_domain(r, l);
    read_messages(r, l);
    read_burst(r, l);
    r.integer("concurrent_transactions", l.concurrent_transactions, 1, 1000000);
    r.integer("max_keys", l.max_keys, 1, 10000000);
    if (!r.node("messages") && !r.node("concurrent_transactions"))
        r.diagnostics().error(r.path(), l.line,
                              "a destination limit needs messages = \"QUANTITY/PERIOD\", "
                              "concurrent_transactions = N, or both");
}

}  // namespace

void read_destination_limits(TableReader& pool, std::vector<DestinationLimit>& out) {
    auto& d = pool.diagnostics();
    auto tables = pool.tables("destination_limit");
    if (tables.size() > kMaxPerPool)
        d.error(pool.key_path("destination_limit"), pool.line_of("destination_limit"),
                "at most " + std::to_string(kMaxPerPool) +
                    " destination limits per pool (use domain = \"*\" for the rest)");
    std::set<std::string> domains;
    for (std::size_t i = 0; i < tables.size() && i < kMaxPerPool; ++i) {
        DestinationLimit l;
        TableReader r(*tables[i],
                      pool.key_path("destination_limit") + "[" + std::to_string(i) + "]", d);
        read_one(r, l);
        if (!l.domain.empty() && !domains.insert(l.domain).second)
            d.error(r.key_path("domain"), r.line_of("domain"),
                    "another destination limit of this pool is for \"" + l.domain + "\"");
        out.push_back(std::move(l));
    }
}

std::string describe_destination_limits(const std::vector<DestinationLimit>& limits) {
    std::ostringstream o;
    for (const auto& l : limits) {
        o << "\n[[pool.destination_limit]]\n"
          << "domain = \"" << l.domain << "\"\n";
        if (l.messages > 0)
            o << "messages = \"" << l.messages << "/" << base::format_duration(l.period) << "\"\n"
              << "burst = " << l.burst << "\n";
        if (l.concurrent_transactions > 0)
            o << "concurrent_transactions = " << l.concurrent_transactions << "\n";
        o << "max_keys = " << l.max_keys << "\n";
    }
    return o.str();
}

}  // namespace smtplb::config
