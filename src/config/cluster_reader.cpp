#include "config/cluster_reader.hpp"

#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <optional>

#include "base/text.hpp"

namespace smtplb::config {
namespace {

using namespace std::chrono_literals;

constexpr std::size_t kMaxNodeName = 64;
constexpr std::size_t kMaxKeyPrefix = 64;

// Node names and key prefixes go into Redis keys and log lines: kept plain.
bool plain_name(const std::string& name, std::size_t max) {
    return !name.empty() && name.size() <= max &&
           std::all_of(name.begin(), name.end(), [](unsigned char c) {
               return std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == ':';
           });
}

// Numeric only: a name would be resolved by hiredis with a blocking lookup
// on the event loop at every reconnect.
std::optional<base::HostPort> numeric_address(const std::string& text) {
    auto hp = base::HostPort::parse(text);
    if (!hp || hp->port == 0 || !base::IpAddress::parse(hp->host)) return std::nullopt;
    return hp;
}

const char* kNotNumeric = "\" is not ADDRESS:PORT or [IPv6]:PORT with a numeric address";

void read_redis_address(TableReader& r, Cluster& c) {
    auto& d = r.diagnostics();
    r.string("redis", c.redis_text);
    if (c.redis_text.empty()) return;
    if (auto hp = numeric_address(c.redis_text))
        c.redis = *hp;
    else
        d.error(r.key_path("redis"), r.line_of("redis"),
                "\"" + base::printable(c.redis_text) + kNotNumeric);
}

// `sentinels` + `master_name`: the master is whichever the sentinels name.
void read_sentinels(TableReader& r, Cluster& c) {
    auto& d = r.diagnostics();
    bool listed = r.node("sentinels") != nullptr;
    r.strings("sentinels", c.sentinels_text);
    r.string("master_name", c.master_name);
    for (const auto& text : c.sentinels_text) {
        if (auto hp = numeric_address(text))
            c.sentinels.push_back(*hp);
        else
            d.error(r.key_path("sentinels"), r.line_of("sentinels"),
                    "\"" + base::printable(text) + kNotNumeric);
    }
    if (listed && c.sentinels_text.empty())
        d.error(r.key_path("sentinels"), r.line_of("sentinels"),
                "is empty: list the sentinels as \"ADDRESS:PORT\", e.g. [\"127.0.0.1:26379\"]");
    if (listed && c.master_name.empty())
        d.error(r.key_path("master_name"), r.line_of("sentinels"),
                "is required with `sentinels`: the name the sentinels monitor the master under");
    if (!listed && r.node("master_name"))
        d.error(r.key_path("master_name"), r.line_of("master_name"),
                "goes with `sentinels`: without them, give the master as `redis`");
    if (!c.master_name.empty() && !std::all_of(c.master_name.begin(), c.master_name.end(),
                                               [](unsigned char ch) { return std::isgraph(ch); }))
        d.error(r.key_path("master_name"), r.line_of("master_name"),
                "must be printable characters without spaces");
    if (!listed && r.node("sentinel_password_file"))
        d.error(r.key_path("sentinel_password_file"), r.line_of("sentinel_password_file"),
                "goes with `sentinels`");
    if (listed && !c.redis_text.empty())
        d.error(r.key_path("sentinels"), r.line_of("sentinels"),
                "cannot go with `redis`: give either the master as `redis` or the sentinels "
                "that know it");
    if (!listed && c.redis_text.empty())
        d.error(r.key_path("redis"), r.line_of("redis"),
                "is required: the Redis server as \"ADDRESS:PORT\", e.g. \"127.0.0.1:6379\" (or "
                "`sentinels` with `master_name`)");
}

void read_password(TableReader& r, const std::string& key, std::string& file,
                   std::string& password) {
    r.string(key, file);
    if (file.empty()) return;
    std::ifstream in(file);
    std::getline(in, password);
    while (!password.empty() && std::isspace(static_cast<unsigned char>(password.back())))
        password.pop_back();
    // The message names the file, never what it holds.
    if (!in && password.empty())
        r.diagnostics().error(r.key_path(key), r.line_of(key), "cannot read \"" + file + "\"");
    else if (password.empty())
        r.diagnostics().error(r.key_path(key), r.line_of(key),
                              "the password (the file's first line) is empty");
}

}  // namespace

std::string Cluster::redis_description() const {
    if (!uses_sentinels()) return redis_text;
    std::string text = "sentinels:" + master_name + "@";
    for (std::size_t i = 0; i < sentinels_text.size(); ++i)
        text += (i ? "," : "") + sentinels_text[i];
    return text;
}

std::string machine_hostname() {
    char name[256] = {};
    if (::gethostname(name, sizeof name - 1) != 0 || name[0] == '\0') return "localhost";
    return name;
}

void read_cluster(TableReader& r, Cluster& c) {
    auto& d = r.diagnostics();
    c.enabled = true;
    read_redis_address(r, c);
    read_sentinels(r, c);
    read_password(r, "password_file", c.password_file, c.password);
    if (r.node("sentinels"))
        read_password(r, "sentinel_password_file", c.sentinel_password_file, c.sentinel_password);
    r.boolean("tls", c.tls);
    r.string("tls_ca_file", c.tls_ca_file);
    r.string("tls_cert_file", c.tls_cert_file);
    r.string("tls_key_file", c.tls_key_file);
    for (auto [key, file] :
         {std::pair{"tls_ca_file", &c.tls_ca_file}, std::pair{"tls_cert_file", &c.tls_cert_file},
          std::pair{"tls_key_file", &c.tls_key_file}}) {
        if (!r.node(key)) continue;
        if (!c.tls)
            d.error(r.key_path(key), r.line_of(key), "needs tls = true");
        else if (!std::ifstream(*file))
            d.error(r.key_path(key), r.line_of(key), "cannot read \"" + *file + "\"");
    }
    if (c.tls_cert_file.empty() != c.tls_key_file.empty())
        d.error(r.key_path(c.tls_cert_file.empty() ? "tls_key_file" : "tls_cert_file"),
                r.line_of(c.tls_cert_file.empty() ? "tls_key_file" : "tls_cert_file"),
                "tls_cert_file and tls_key_file go together");
    r.string("tls_server_name", c.tls_server_name);
    if (r.node("tls_server_name") && !c.tls)
        d.error(r.key_path("tls_server_name"), r.line_of("tls_server_name"), "needs tls = true");
    r.string("node_name", c.node_name);
    if (r.node("node_name") && !plain_name(c.node_name, kMaxNodeName))
        d.error(r.key_path("node_name"), r.line_of("node_name"),
                "must be 1-64 characters of letters, digits, '-', '_', '.', ':'");
    if (c.node_name.empty()) c.node_name = machine_hostname();
    r.duration("timeout", c.timeout, 1ms, 1s);
    r.duration("lease_ttl", c.lease_ttl, 3s, 10min);
    r.string("key_prefix", c.key_prefix);
    if (!plain_name(c.key_prefix, kMaxKeyPrefix))
        d.error(r.key_path("key_prefix"), r.line_of("key_prefix"),
                "must be 1-64 characters of letters, digits, '-', '_', '.', ':'");
}

}  // namespace smtplb::config
