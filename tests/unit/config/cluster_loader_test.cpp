#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>

#include "config/cluster_reader.hpp"
#include "config/describe.hpp"
#include "config/loader.hpp"
#include "unit/config/diagnostic_matchers.hpp"

using namespace smtplb::config;
using namespace std::chrono_literals;

namespace {

const std::string kBase = R"(
[[listener]]
name = "internet"
bind = "127.0.0.1:2525"
accepted_domains = ["example.net"]
pool = "hubs"

[[pool]]
name = "hubs"
[[pool.backend]]
name = "hub1"
address = "127.0.0.1:2601"
)";

LoadResult load(const std::string& cluster) {
    return load_string(kBase + cluster, "test.toml");
}

::testing::AssertionResult fails(const std::string& cluster, const std::string& path,
                                 const std::string& text) {
    return test_support::refused_with(load(cluster), path, text);
}

}  // namespace

TEST(ClusterLoader, AbsentMeansNoCluster) {
    auto r = load("");
    ASSERT_TRUE(r.config);
    EXPECT_FALSE(r.config->cluster.enabled);
    EXPECT_EQ(describe(*r.config).find("[cluster]"), std::string::npos);
}

TEST(ClusterLoader, DefaultsAndKeys) {
    auto r = load("[cluster]\nredis = \"127.0.0.1:6379\"\n");
    ASSERT_TRUE(r.config) << r.diagnostics.format("test.toml");
    const auto& c = r.config->cluster;
    EXPECT_TRUE(c.enabled);
    EXPECT_EQ(c.redis.host, "127.0.0.1");
    EXPECT_EQ(c.redis.port, 6379);
    EXPECT_EQ(c.timeout, 5ms);
    EXPECT_EQ(c.node_name, machine_hostname());
    EXPECT_EQ(c.key_prefix, "smtplb");
    EXPECT_EQ(c.lease_ttl, 15s);
    EXPECT_FALSE(c.tls);

    r = load(
        "[cluster]\nredis = \"[::1]:6380\"\nnode_name = \"mx2\"\ntimeout = \"20ms\"\n"
        "key_prefix = \"mail:lb\"\n");
    ASSERT_TRUE(r.config) << r.diagnostics.format("test.toml");
    EXPECT_EQ(r.config->cluster.redis.port, 6380);
    EXPECT_EQ(r.config->cluster.node_name, "mx2");
    EXPECT_EQ(r.config->cluster.timeout, 20ms);
    EXPECT_EQ(r.config->cluster.key_prefix, "mail:lb");
    r = load("[cluster]\nredis = \"127.0.0.1:6379\"\nlease_ttl = \"30s\"\n");
    ASSERT_TRUE(r.config) << r.diagnostics.format("test.toml");
    EXPECT_EQ(r.config->cluster.lease_ttl, 30s);
}

TEST(ClusterLoader, RefusesWhatItCannotUse) {
    EXPECT_TRUE(fails("[cluster]\nnode_name = \"a\"\n", "cluster.redis", "is required"));
    EXPECT_TRUE(fails("[cluster]\nredis = \"redis.example.net:6379\"\n", "cluster.redis",
                      "numeric address"));
    EXPECT_TRUE(fails("[cluster]\nredis = \"127.0.0.1\"\n", "cluster.redis", "ADDRESS:PORT"));
    EXPECT_TRUE(
        fails("[cluster]\nredis = \"127.0.0.1:6379\"\ntimeout = \"0ms\"\n", "cluster.timeout", ""));
    EXPECT_TRUE(
        fails("[cluster]\nredis = \"127.0.0.1:6379\"\ntimeout = \"5s\"\n", "cluster.timeout", ""));
    EXPECT_TRUE(fails("[cluster]\nredis = \"127.0.0.1:6379\"\nnode_name = \"a b\"\n",
                      "cluster.node_name", "letters, digits"));
    EXPECT_TRUE(fails("[cluster]\nredis = \"127.0.0.1:6379\"\nkey_prefix = \"\"\n",
                      "cluster.key_prefix", "letters, digits"));
    EXPECT_TRUE(fails("[cluster]\nredis = \"127.0.0.1:6379\"\nlease_ttl = \"1s\"\n",
                      "cluster.lease_ttl", ""));
    EXPECT_TRUE(fails("[cluster]\nredis = \"127.0.0.1:6379\"\nlease_ttl = \"1h\"\n",
                      "cluster.lease_ttl", ""));
    EXPECT_TRUE(fails("[cluster]\nredis = \"127.0.0.1:6379\"\nredis_typo = 1\n",
                      "cluster.redis_typo", "unknown key"));
}

TEST(ClusterLoader, TlsAndItsFiles) {
    auto r = load(
        "[cluster]\nredis = \"127.0.0.1:6379\"\ntls = true\n"
        "tls_server_name = \"redis.example.net\"\n");
    ASSERT_TRUE(r.config) << r.diagnostics.format("test.toml");
    EXPECT_TRUE(r.config->cluster.tls);
    EXPECT_EQ(r.config->cluster.tls_server_name, "redis.example.net");
    EXPECT_TRUE(r.config->cluster.tls_ca_file.empty());  // the system's trust store
    EXPECT_TRUE(
        fails("[cluster]\nredis = \"127.0.0.1:6379\"\ntls = true\n"
              "tls_ca_file = \"/nonexistent/ca.pem\"\n",
              "cluster.tls_ca_file", "cannot read \"/nonexistent/ca.pem\""));
    EXPECT_TRUE(fails("[cluster]\nredis = \"127.0.0.1:6379\"\ntls_ca_file = \"/etc/hostname\"\n",
                      "cluster.tls_ca_file", "needs tls = true"));
    EXPECT_TRUE(
        fails("[cluster]\nredis = \"127.0.0.1:6379\"\ntls = true\n"
              "tls_cert_file = \"/etc/hostname\"\n",
              "cluster.tls_cert_file", "tls_cert_file and tls_key_file go together"));
    EXPECT_TRUE(fails("[cluster]\nredis = \"127.0.0.1:6379\"\ntls_server_name = \"x\"\n",
                      "cluster.tls_server_name", "needs tls = true"));
}

TEST(ClusterLoader, Sentinels) {
    auto r = load(
        "[cluster]\nsentinels = [\"127.0.0.1:26379\", \"[::1]:26380\"]\n"
        "master_name = \"mymaster\"\n");
    ASSERT_TRUE(r.config) << r.diagnostics.format("test.toml");
    const auto& c = r.config->cluster;
    EXPECT_TRUE(c.uses_sentinels());
    ASSERT_EQ(c.sentinels.size(), 2u);
    EXPECT_EQ(c.sentinels[0].port, 26379);
    EXPECT_EQ(c.sentinels[1].host, "::1");
    EXPECT_EQ(c.master_name, "mymaster");
    EXPECT_EQ(c.redis_description(), "sentinels:mymaster@127.0.0.1:26379,[::1]:26380");
    auto text = describe(*r.config);
    EXPECT_NE(text.find("sentinels = [\"127.0.0.1:26379\", \"[::1]:26380\"]"), std::string::npos)
        << text;
    EXPECT_NE(text.find("master_name = \"mymaster\""), std::string::npos);
    // What `describe` prints loads again.
    EXPECT_TRUE(load_string(text, "described.toml").config);
}

TEST(ClusterLoader, SentinelMisuse) {
    const std::string s = "[cluster]\nsentinels = [\"127.0.0.1:26379\"]\n";
    EXPECT_TRUE(fails(s, "cluster.master_name", "is required with `sentinels`"));
    EXPECT_TRUE(fails(s + "master_name = \"m\"\nredis = \"127.0.0.1:6379\"\n", "cluster.sentinels",
                      "cannot go with `redis`"));
    EXPECT_TRUE(
        fails("[cluster]\nsentinels = []\nmaster_name = \"m\"\n", "cluster.sentinels", "is empty"));
    EXPECT_TRUE(
        fails("[cluster]\nsentinels = [\"sentinel.example.net:26379\"]\nmaster_name = \"m\"\n",
              "cluster.sentinels", "numeric address"));
    EXPECT_TRUE(fails("[cluster]\nsentinels = [\"127.0.0.1\"]\nmaster_name = \"m\"\n",
                      "cluster.sentinels", "ADDRESS:PORT"));
    EXPECT_TRUE(fails(s + "master_name = \"my master\"\n", "cluster.master_name", "printable"));
    EXPECT_TRUE(fails("[cluster]\nredis = \"127.0.0.1:6379\"\nmaster_name = \"m\"\n",
                      "cluster.master_name", "goes with `sentinels`"));
    EXPECT_TRUE(fails("[cluster]\nredis = \"127.0.0.1:6379\"\nsentinel_password_file = \"/x\"\n",
                      "cluster.sentinel_password_file", "goes with `sentinels`"));
    EXPECT_TRUE(fails(s + "master_name = \"m\"\nsentinel_password_file = \"/nonexistent/x\"\n",
                      "cluster.sentinel_password_file", "cannot read"));
    EXPECT_TRUE(fails("[cluster]\nnode_name = \"a\"\n", "cluster.redis", "sentinels"));
}

TEST(ClusterLoader, ThePasswordIsReadButNeverPrintedOrQuoted) {
    char path[] = "/tmp/smtplb-redis-passXXXXXX";
    int fd = ::mkstemp(path);
    ASSERT_GE(fd, 0);
    ::close(fd);
    std::ofstream(path) << "s3cret-redis-password\n";
    auto r = load(std::string("[cluster]\nredis = \"127.0.0.1:6379\"\npassword_file = \"") + path +
                  "\"\n");
    ASSERT_TRUE(r.config) << r.diagnostics.format("test.toml");
    EXPECT_EQ(r.config->cluster.password, "s3cret-redis-password");
    auto text = describe(*r.config);
    EXPECT_NE(text.find("password_file = \"" + std::string(path) + "\""), std::string::npos);
    EXPECT_EQ(text.find("s3cret"), std::string::npos);
    std::ofstream(path) << "\n";
    r = load(std::string("[cluster]\nredis = \"127.0.0.1:6379\"\npassword_file = \"") + path +
             "\"\n");
    EXPECT_FALSE(r.config);
    EXPECT_EQ(r.diagnostics.format("test.toml").find("s3cret"), std::string::npos);
    ::unlink(path);
    EXPECT_TRUE(fails(
        std::string("[cluster]\nredis = \"127.0.0.1:6379\"\npassword_file = \"") + path + "\"\n",
        "cluster.password_file", "cannot read"));
}
