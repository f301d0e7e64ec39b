#pragma once
#include "config/config.hpp"
#include "config/table_reader.hpp"

namespace smtplb::config {

// The [cluster] table: where the shared Redis is and how this node is named
// (docs/cluster.md). Sentinels and TLS are refused as not supported yet.
void read_cluster(TableReader& r, Cluster& cluster);

// This machine's host name (the default node_name), "localhost" if none.
std::string machine_hostname();

}  // namespace smtplb::config
