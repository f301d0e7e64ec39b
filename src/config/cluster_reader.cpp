#include "config/cluster_reader.hpp"

#include <unistd.h>

#include <algorithm>
#include <fstream>

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

void read_redis_address(TableReader& r, Cluster& c) {
    auto& d = r.diagnostics();
    r.string("redis", c.redis_text);
    if (c.redis_text.empty()) {
        d.error(r.key_path("redis"), r.line_of("redis"),
                "is required: the Redis server as \"ADDRESS:PORT\", e.g. \"127.0.0.1:6379\"");
        return;
    }
    // Numeric only: a name would be resolved by hiredis with a blocking
    // lookup on the event loop at every reconnect.
    auto hp = base::HostPort::parse(c.redis_text);
    if (!hp || hp->port == 0 || !base::IpAddress::parse(hp->host)) {
        d.error(r.key_path("redis"), r.line_of("redis"),
                "\"" + base::printable(c.redis_text) +
                    "\" is not ADDRESS:PORT or [IPv6]:PORT with a numeric address");
        return;
    }
    c.redis = *hp;
}

void read_password(TableReader& r, Cluster& c) {
    r.string("password_file", c.password_file);
    if (c.password_file.empty()) return;
    std::ifstream in(c.password_file);
    std::getline(in, c.password);
    while (!c.password.empty() && std::isspace(static_cast<unsigned char>(c.password.back())))
        c.password.pop_back();
    // The message names the file, never what it holds.
    if (!in && c.password.empty())
        r.diagnostics().error(r.key_path("password_file"), r.line_of("password_file"),
                              "cannot read \"" + c.password_file + "\"");
    else if (c.password.empty())
        r.diagnostics().error(r.key_path("password_file"), r.line_of("password_file"),
                              "the password (the file's first line) is empty");
}

}  // namespace

std::string machine_hostname() {
    char name[256] = {};
    if (::gethostname(name, sizeof name - 1) != 0 || name[0] == '\0') return "localhost";
    return name;
}

void read_cluster(TableReader& r, Cluster& c) {
    auto& d = r.diagnostics();
    c.enabled = true;
    read_redis_address(r, c);
    if (r.node("sentinels"))
        d.error(r.key_path("sentinels"), r.line_of("sentinels"),
                "Redis Sentinel is not supported yet: give the master as `redis`");
    if (r.node("master_name"))
        d.error(r.key_path("master_name"), r.line_of("master_name"),
                "Redis Sentinel is not supported yet: give the master as `redis`");
    read_password(r, c);
    r.boolean("tls", c.tls);
    if (c.tls)
        d.error(r.key_path("tls"), r.line_of("tls"),
                "TLS to Redis is not supported yet: reach it over loopback or a private network");
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
