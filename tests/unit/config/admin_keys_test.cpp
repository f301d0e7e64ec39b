#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "config/loader.hpp"

using namespace smtplb::config;

namespace {

const char* kPool = R"(
[[listener]]
name = "internet"
bind = "127.0.0.1:2525"
accepted_domains = ["example.net"]
pool = "hubs"

[[pool]]
name = "hubs"
[[pool.backend]]
name = "a"
address = "127.0.0.1:2601"
)";

struct TokenFiles : ::testing::Test {
    std::filesystem::path dir = std::filesystem::temp_directory_path() /
                                ("smtplb-admin-keys-" + std::to_string(::getpid()));
    std::string admin = (dir / "admin.token").string();
    std::string readonly = (dir / "readonly.token").string();
    void SetUp() override {
        std::filesystem::create_directories(dir);
        std::ofstream(admin) << "admin-token-0123456789\n";
        std::ofstream(readonly) << "readonly-token-0123456789\n";
    }
    void TearDown() override { std::filesystem::remove_all(dir); }
    LoadResult load(const std::string& server) {
        return load_string("[server]\n" + server + kPool, "test.toml");
    }
    std::string errors(const LoadResult& r) { return r.diagnostics.format("test.toml"); }
};

TEST_F(TokenFiles, ReadsTheReadOnlyTokenAndHostNames) {
    auto r = load("admin_token_file = \"" + admin + "\"\nadmin_readonly_token_file = \"" +
                  readonly + "\"\nadmin_hosts = [\"LB1.Example.NET\", \"192.0.2.1\"]\n");
    ASSERT_TRUE(r.config) << errors(r);
    EXPECT_EQ(r.config->server.admin_readonly_token, "readonly-token-0123456789");
    EXPECT_EQ(r.config->server.admin_hosts,
              (std::vector<std::string>{"lb1.example.net", "192.0.2.1"}));
    EXPECT_FALSE(r.config->server.admin_tls.enabled());
}

TEST_F(TokenFiles, ReadOnlyTokenNeedsTheAdminTokenAndMustDiffer) {
    auto r = load("admin_readonly_token_file = \"" + readonly + "\"\n");
    EXPECT_FALSE(r.config);
    EXPECT_NE(errors(r).find("test.toml:2: error: server.admin_readonly_token_file: a read-only "
                             "token needs admin_token_file"),
              std::string::npos)
        << errors(r);
    r = load("admin_token_file = \"" + admin + "\"\nadmin_readonly_token_file = \"" + admin +
             "\"\n");
    EXPECT_NE(errors(r).find("must differ"), std::string::npos) << errors(r);
}

TEST_F(TokenFiles, HostNamesHaveNoPortOrScheme) {
    for (auto bad : {"lb1.example.net:8025", "http://lb1.example.net", "", "a b"}) {
        auto r = load(std::string("admin_hosts = [\"") + bad + "\"]\n");
        EXPECT_FALSE(r.config) << bad;
        EXPECT_NE(errors(r).find("test.toml:2: error: server.admin_hosts:"), std::string::npos)
            << errors(r);
    }
}

TEST_F(TokenFiles, AdminTlsNeedsReadableCertAndKey) {
    auto r = load("admin_tls = { cert = \"" + admin + "\" }\n");
    EXPECT_FALSE(r.config);
    EXPECT_NE(errors(r).find("server.admin_tls.key: is required"), std::string::npos) << errors(r);
    r = load("admin_tls = { cert = \"" + admin + "\", key = \"/nonexistent/key.pem\" }\n");
    EXPECT_NE(errors(r).find("test.toml:2: error: server.admin_tls.key: cannot read"),
              std::string::npos)
        << errors(r);
    r = load("admin_tls = { cert = \"" + admin + "\", key = \"" + readonly + "\" }\n");
    ASSERT_TRUE(r.config) << errors(r);
    EXPECT_TRUE(r.config->server.admin_tls.enabled());
    EXPECT_EQ(r.config->server.admin_tls_line, 2);
}

}  // namespace
