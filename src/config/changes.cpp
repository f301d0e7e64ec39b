#include "config/changes.hpp"

#include <algorithm>
#include <sstream>

#include "config/describe.hpp"

namespace smtplb::config {
namespace {

using Keys = std::vector<std::pair<std::string, std::string>>;

// One table of the effective configuration as describe() prints it.
struct Table {
    std::string kind;  // server, spool, listener, pool, pool.backend, pool.destination_limit, route
    std::string name;  // its `name`; for a backend, "POOL/NAME"
    Keys keys;         // in the order printed, inline tables flattened
    std::string value(const std::string& key) const {
        for (const auto& [k, v] : keys)
            if (k == key) return v;
        return "";
    }
};

// A printed value as a reader wants it: a plain string without its
// quotes; describe()'s comment after it ("  # 3 entries") in parentheses.
std::string plain(std::string v) {
    std::string note;
    if (auto comment = v.rfind("\"  # "); comment != std::string::npos) {
        note = " (" + v.substr(comment + 5) + ")";
        v.resize(comment + 1);
    }
    if (v.size() > 2 && v.front() == '"' && v.back() == '"' && v.find('"', 1) == v.size() - 1 &&
        v.find('\\') == std::string::npos)
        v = v.substr(1, v.size() - 2);
    return v + note;
}

// Splits "{ a = 1, b = \"x, y\" }" at the commas outside strings and lists.
Keys inline_table(const std::string& prefix, std::string_view body) {
    Keys out;
    std::string item;
    int depth = 0;
    bool in_string = false;
    auto flush = [&] {
        if (item.find(" = ") != std::string::npos) {
            auto entry = item.substr(item.find_first_not_of(' '));
            auto eq = entry.find(" = ");
            out.emplace_back(prefix + "." + entry.substr(0, eq), plain(entry.substr(eq + 3)));
        }
        item.clear();
    };
    for (std::size_t i = 0; i < body.size(); ++i) {
        char c = body[i];
        if (in_string) {
            if (c == '\\' && i + 1 < body.size()) {
                item += c;
                c = body[++i];
            } else if (c == '"') {
                in_string = false;
            }
        } else if (c == '"') {
            in_string = true;
        } else if (c == '[') {
            ++depth;
        } else if (c == ']') {
            --depth;
        } else if (c == ',' && depth == 0) {
            flush();
            continue;
        }
        item += c;
    }
    flush();
    return out;
}

std::vector<Table> tables(const Config& config) {
    std::vector<Table> out;
    std::istringstream in(describe(config));
    std::string pool;
    for (std::string line; std::getline(in, line);) {
        if (line.empty()) continue;
        if (line.front() == '[') {
            auto kind = line.substr(line.find_first_not_of('['));
            kind = kind.substr(0, kind.find(']'));
            out.push_back({kind, kind == "server" || kind == "spool" ? kind : "", {}});
            continue;
        }
        if (out.empty()) continue;
        auto eq = line.find(" = ");
        if (eq == std::string::npos) continue;
        auto key = line.substr(0, eq), value = line.substr(eq + 3);
        auto& table = out.back();
        if (value.starts_with("{ ") && value.ends_with(" }")) {
            for (auto& kv : inline_table(key, std::string_view(value).substr(2, value.size() - 4)))
                table.keys.push_back(std::move(kv));
            continue;
        }
        table.keys.emplace_back(key, plain(value));
        if (table.kind == "pool.destination_limit" && key == "domain")
            table.name = pool + "/" + plain(value);
        if (key != "name") continue;
        if (table.kind == "pool") pool = plain(value);
        table.name = table.kind == "pool.backend" ? pool + "/" + plain(value) : plain(value);
    }
    return out;
}

const Table* find(const std::vector<Table>& all, const std::string& kind, const std::string& name) {
    for (const auto& t : all)
        if (t.kind == kind && t.name == name) return &t;
    return nullptr;
}

// "listener internet", "backend hub1 in pool hubs", "server", "spool".
std::string subject(const Table& t) {
    if (t.kind == "pool.backend" || t.kind == "pool.destination_limit") {
        auto slash = t.name.find('/');
        return (t.kind == "pool.backend" ? "backend " : "destination limit ") +
               t.name.substr(slash + 1) + " in pool " + t.name.substr(0, slash);
    }
    if (t.kind == "server" || t.kind == "spool") return t.kind;
    return t.kind + " " + t.name;
}

// Keys whose change waits for a restart (app/cmd_run.cpp says so too).
bool needs_restart(const Table& t, const std::string& key) {
    return t.kind == "server" && (key == "admin" || key == "threads");
}

bool has(const Table& t, const std::string& key) {
    return std::any_of(t.keys.begin(), t.keys.end(),
                       [&](const auto& kv) { return kv.first == key; });
}

// "server.hostname", "weight of backend hub1 in pool hubs".
std::string where(const Table& t, const std::string& key) {
    if (t.kind == "server" || t.kind == "spool") return t.kind + "." + key;
    return key + " of " + subject(t);
}

void changed_keys(const Table& before, const Table& after, std::vector<std::string>& out) {
    for (const auto& [key, value] : after.keys) {
        if (key == "name") continue;
        bool had = has(before, key);
        if (had && before.value(key) == value) continue;
        std::string line =
            where(after, key) + ": " + (had ? before.value(key) : "(unset)") + " -> " + value;
        if (needs_restart(after, key)) line += " (takes effect at the next start)";
        out.push_back(line);
    }
    for (const auto& [key, value] : before.keys)
        if (!has(after, key)) out.push_back(where(after, key) + ": " + value + " -> (unset)");
}

std::string route_text(const Table& t) {
    std::string what;
    for (const auto& [k, v] : t.keys)
        if (k != "pool") what.append(what.empty() ? "" : " ").append(k).append(" ").append(v);
    return what + " to pool " + t.value("pool");
}

}  // namespace

std::vector<std::string> describe_changes(const Config& before, const Config& after) {
    auto old_tables = tables(before), new_tables = tables(after);
    std::vector<std::string> out;
    for (const char* kind : {"server", "spool"})
        if (auto* a = find(old_tables, kind, kind), *b = find(new_tables, kind, kind); a && b)
            changed_keys(*a, *b, out);
    // Removals first: a listener's address may pass to another one.
    for (const auto& t : old_tables) {
        if (t.kind == "listener" && !find(new_tables, t.kind, t.name))
            out.push_back("removed listener " + t.name + " on " + t.value("bind"));
        if ((t.kind == "pool" || t.kind == "limit") && !find(new_tables, t.kind, t.name))
            out.push_back("removed " + t.kind + " " + t.name);
        if ((t.kind == "pool.backend" || t.kind == "pool.destination_limit") &&
            !find(new_tables, t.kind, t.name)) {
            auto slash = t.name.find('/');
            // A removed pool took its backends with it: said once.
            if (find(new_tables, "pool", t.name.substr(0, slash)))
                out.push_back(std::string("removed ") +
                              (t.kind == "pool.backend" ? "backend " : "destination limit ") +
                              t.name.substr(slash + 1) + " from pool " + t.name.substr(0, slash));
        }
    }
    for (const auto& t : new_tables) {
        if (t.kind != "listener" && t.kind != "pool" && t.kind != "pool.backend" &&
            t.kind != "limit" && t.kind != "pool.destination_limit")
            continue;
        const auto* old = find(old_tables, t.kind, t.name);
        if (old) {
            changed_keys(*old, t, out);
            continue;
        }
        if (t.kind == "listener") {
            out.push_back("added listener " + t.name + " on " + t.value("bind") + " (mode " +
                          t.value("mode") + ", role " + t.value("role") + ", pool " +
                          t.value("pool") + ")");
        } else if (t.kind == "pool" || t.kind == "limit") {
            out.push_back("added " + t.kind + " " + t.name);
        } else if (t.kind == "pool.destination_limit") {
            auto slash = t.name.find('/');
            // A new pool brings its destination limits: said once.
            if (find(old_tables, "pool", t.name.substr(0, slash)))
                out.push_back("added destination limit " + t.name.substr(slash + 1) + " to pool " +
                              t.name.substr(0, slash));
        } else {
            auto slash = t.name.find('/');
            out.push_back("added backend " + t.name.substr(slash + 1) + " to pool " +
                          t.name.substr(0, slash) + " at " + t.value("address") + " (weight " +
                          t.value("weight") + ", priority " + t.value("priority") + ")");
        }
    }
    std::vector<std::string> old_routes, new_routes;
    for (const auto& t : old_tables)
        if (t.kind == "route") old_routes.push_back(route_text(t));
    for (const auto& t : new_tables)
        if (t.kind == "route") new_routes.push_back(route_text(t));
    for (const auto& r : old_routes)
        if (std::find(new_routes.begin(), new_routes.end(), r) == new_routes.end())
            out.push_back("removed route " + r);
    for (const auto& r : new_routes)
        if (std::find(old_routes.begin(), old_routes.end(), r) == old_routes.end())
            out.push_back("added route " + r);
    auto kept = [](const std::vector<std::string>& from, const std::vector<std::string>& in) {
        std::vector<std::string> k;
        for (const auto& r : from)
            if (std::find(in.begin(), in.end(), r) != in.end()) k.push_back(r);
        return k;
    };
    if (kept(old_routes, new_routes) != kept(new_routes, old_routes))
        out.push_back("routes reordered (the first match wins)");
    // A limit kept exactly as it was keeps its keys' counts (core::LimitSet::
    // carry_over); a changed one starts afresh, which lifts the throttles
    // it had in force: the administrator is told which.
    std::string afresh;
    for (const auto& a : after.limits)
        for (const auto& b : before.limits)
            if (a.name == b.name && describe_limits({a}) != describe_limits({b}))
                afresh.append(afresh.empty() ? "" : ", ").append(a.name);
    if (!afresh.empty()) out.push_back("counts start afresh for the changed limits: " + afresh);
    return out;
}

}  // namespace smtplb::config
