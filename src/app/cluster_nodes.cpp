#include "cluster_nodes.hpp"

#include "admin/cluster_api.hpp"
#include "base/log_line.hpp"
#include "base/text.hpp"
#include "io/cluster/hiredis_sentinel.hpp"

namespace smtplb::app {

void ClusterNodes::attach(io::Balancer& balancer) {
    registry->attach(balancer);
    sticks->attach(balancer);
}

void ClusterNodes::stop() {
    registry->stop();
    registry->detach();
    sticks->detach();
    link->stop();
}

std::string cluster_settings(const config::Cluster& c) {
    if (!c.enabled) return "";
    return c.redis_description() + "\n" + c.sentinel_password + "\n" + c.password + "\n" +
           c.node_name + "\n" + c.key_prefix + "\n" + std::to_string(c.timeout.count()) + "\n" +
           std::to_string(c.lease_ttl.count());
}

io::HiredisSettings cluster_redis_settings(const config::Cluster& c, std::string& error) {
    io::HiredisSettings settings;
    settings.redis = c.redis;
    settings.password = c.password;
    settings.timeout = c.timeout;
    if (c.tls) {
        // The certificate always verified: a Redis reached over TLS is one
        // reached over a network.
        config::BackendTls tls;
        tls.mode = config::BackendTlsMode::Required;
        tls.ca_file = c.tls_ca_file;
        tls.cert = c.tls_cert_file;
        tls.key = c.tls_key_file;
        settings.tls = io::make_backend_tls(tls, error);
        if (!settings.tls) error = "[cluster] tls: " + error;
        settings.tls_name = c.tls_server_name;
    }
    return settings;
}

std::unique_ptr<ClusterNodes> start_cluster_nodes(const io::asio::any_io_executor& executor,
                                                  const config::Cluster& cluster,
                                                  const io::HiredisSettings& settings,
                                                  const base::Clock& clock,
                                                  io::Balancer& balancer) {
    auto nodes = std::make_unique<ClusterNodes>();
    // Sentinels too: the registry follows the master as the admin state does.
    nodes->link = io::make_cluster_redis_client(executor, cluster, settings);
    nodes->registry = std::make_unique<io::NodeRegistry>(
        cluster, *nodes->link, executor, clock, admin::smtplb_version(),
        [](const core::cluster::RegistryEvent& e) {
            std::string line = "event=" + e.event;
            for (const auto& [key, value] : e.fields)
                line += " " + key + "=" + base::logfmt_value(value);
            base::log_line(base::level_of(line), line);
        });
    nodes->sticks = std::make_unique<io::SharedPersistence>(cluster, *nodes->link, executor,
                                                            nodes->registry->stats());
    nodes->attach(balancer);
    nodes->link->start();
    nodes->registry->start();
    base::log_line("event=cluster_registry_starting node=" + base::logfmt_value(cluster.node_name) +
                   " key=" + base::logfmt_value(nodes->registry->node_key(cluster.node_name)) +
                   " digest=" + nodes->registry->digest() +
                   " sticks_channel=" + base::logfmt_value(nodes->sticks->channel()));
    return nodes;
}

}  // namespace smtplb::app
