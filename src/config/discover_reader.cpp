#include "config/discover_reader.hpp"

#include <tuple>

#include "base/text.hpp"

namespace smtplb::config {

using namespace std::chrono_literals;

bool valid_discover_name(std::string_view name) {
    if (!name.empty() && name.back() == '.') name.remove_suffix(1);
    if (name.empty() || name.size() > 253) return false;
    std::size_t labels = 0;
    std::size_t start = 0;
    while (start <= name.size()) {
        auto end = name.find('.', start);
        if (end == std::string_view::npos) end = name.size();
        auto label = name.substr(start, end - start);
        if (label.empty() || label.size() > 63 || label.front() == '-' || label.back() == '-')
            return false;
        for (char c : label) {
            bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                      c == '-' || c == '_';
            if (!ok) return false;
        }
        ++labels;
        start = end + 1;
    }
    return labels >= 2;
}

void read_discover(TableReader& parent, Pool& p) {
    const auto* table = parent.table("discover");  // another type: "must be a table"
    if (!table) return;
    auto& d = parent.diagnostics();
    TableReader r(*table, parent.key_path("discover"), d);
    Discover discover;
    discover.line = parent.line_of("discover");
    std::string mx, a, srv;
    r.string("mx", mx, table->get("mx") != nullptr);
    r.string("a", a, table->get("a") != nullptr);
    r.string("srv", srv, table->get("srv") != nullptr);
    int kinds = 0;
    std::string first_key;
    for (auto [key, kind, name] :
         {std::tuple{"mx", DiscoverKind::Mx, &mx}, std::tuple{"a", DiscoverKind::A, &a},
          std::tuple{"srv", DiscoverKind::Srv, &srv}}) {
        if (!table->get(key)) continue;
        if (++kinds > 1) {
            d.error(r.key_path(key), r.line_of(key),
                    "give one of mx, a and srv, not both " + first_key + " and " + key);
            continue;
        }
        first_key = key;
        discover.kind = kind;
        if (name->empty()) continue;  // said already
        if (!valid_discover_name(*name)) {
            d.error(r.key_path(key), r.line_of(key),
                    "\"" + *name + "\" is not a domain name (labels of letters, digits, '-', '_')");
        } else if (kind == DiscoverKind::Srv &&
                   ((*name)[0] != '_' || name->find("._") == std::string::npos)) {
            d.error(r.key_path(key), r.line_of(key),
                    "an SRV name starts with the service and protocol, e.g. "
                    "\"_smtp._tcp.example.org\"");
        }
        if (name->back() == '.') name->pop_back();
        discover.name = base::to_lower(*name);
    }
    if (kinds == 0) {
        d.error(parent.key_path("discover"), discover.line,
                "needs one of mx = \"DOMAIN\", a = \"NAME\" or srv = \"_smtp._tcp.DOMAIN\"");
        r.node("port");
        r.node("min_refresh");
        r.node("max_refresh");  // not also "unknown key"
        return;
    }
    if (table->get("port")) {
        std::uint32_t port = discover.port;
        r.integer("port", port, 1, 65535);
        discover.port = static_cast<std::uint16_t>(port);
        if (discover.kind != DiscoverKind::A)
            d.error(r.key_path("port"), r.line_of("port"),
                    discover.kind == DiscoverKind::Mx
                        ? "MX hosts take mail on port 25: a port goes only with `a`"
                        : "SRV records carry their own port: a port goes only with `a`");
    }
    r.duration("min_refresh", discover.min_refresh, 1s, 1h);
    r.duration("max_refresh", discover.max_refresh, 1s, 7 * 24h);
    if (discover.max_refresh < discover.min_refresh)
        d.error(r.key_path("max_refresh"), r.line_of("max_refresh"),
                "must not be less than min_refresh");
    p.discover = std::move(discover);
}

}  // namespace smtplb::config
