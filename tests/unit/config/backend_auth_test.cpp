#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "config/backend_auth.hpp"
#include "config/describe.hpp"
#include "config/loader.hpp"

using namespace smtplb::config;

namespace {

// A pool with one backend whose `auth` is `auth`, under backend TLS `tls`.
std::string with_auth(const std::string& auth, const std::string& tls = "required",
                      const std::string& address = "127.0.0.1:2601") {
    return R"(
[[listener]]
name = "out"
bind = "127.0.0.1:2525"
role = "relay"
trusted_networks = ["127.0.0.1"]
pool = "smarthosts"

[[pool]]
name = "smarthosts"
tls = { mode = ")" +
           tls + R"(" }

[[pool.backend]]
name = "provider1"
address = ")" +
           address + R"("
auth = )" + auth +
           "\n";
}

std::string file_with(const std::string& name, const std::string& content) {
    auto path = (std::filesystem::temp_directory_path() / name).string();
    std::ofstream(path, std::ios::binary) << content;
    return path;
}

bool has(const LoadResult& r, Diagnostic::Severity severity, const std::string& path,
         const std::string& text) {
    for (const auto& d : r.diagnostics.items)
        if (d.severity == severity && d.path == path && d.message.find(text) != std::string::npos)
            return true;
    return false;
}

LoadResult load_text(const std::string& text) {
    return load_string(text, "test");
}

const auto kError = Diagnostic::Severity::Error;
const auto kWarning = Diagnostic::Severity::Warning;
const std::string kAuthPath = "pool[0].backend[0].auth";

}  // namespace

TEST(BackendAuth, ReadsTheAccountAndThePasswordsFirstLine) {
    auto file = file_with("smtplb-auth-ok", "s3cret pass\n");
    auto r = load_text(
        with_auth("{ username = \"relay@example.net\", password_file = \"" + file + "\" }"));
    ASSERT_TRUE(r.config) << r.diagnostics.format("test");
    const auto& auth = r.config->pools[0].backends[0].auth;
    ASSERT_TRUE(auth);
    EXPECT_EQ(auth->credentials.username, "relay@example.net");
    EXPECT_EQ(auth->credentials.password, "s3cret pass");
    EXPECT_EQ(auth->credentials.mechanism, smtplb::proto::AuthMechanism::Auto);
    EXPECT_FALSE(auth->allow_plaintext);
    // The effective configuration names the file, never the password.
    auto text = describe(*r.config);
    EXPECT_NE(text.find("auth = { username = \"relay@example.net\", password_file = \"" + file +
                        "\", mechanism = \"auto\", allow_plaintext = false }"),
              std::string::npos)
        << text;
    EXPECT_EQ(text.find("s3cret"), std::string::npos);
}

TEST(BackendAuth, MechanismIsPlainOrLogin) {
    auto file = file_with("smtplb-auth-mech", "pw\r\n");
    auto r = load_text(
        with_auth("{ username = \"u\", password_file = \"" + file + "\", mechanism = \"login\" }"));
    ASSERT_TRUE(r.config);
    EXPECT_EQ(r.config->pools[0].backends[0].auth->credentials.mechanism,
              smtplb::proto::AuthMechanism::Login);
    EXPECT_EQ(r.config->pools[0].backends[0].auth->credentials.password, "pw");
    auto bad = load_text(with_auth("{ username = \"u\", password_file = \"" + file +
                                   "\", mechanism = \"cram-md5\" }"));
    EXPECT_TRUE(has(bad, kError, kAuthPath + ".mechanism", "must be one of auto | plain | login"));
}

TEST(BackendAuth, BadPasswordFilesAreClearErrors) {
    const std::string key = kAuthPath + ".password_file";
    auto load = [](const std::string& path) {
        return load_text(with_auth("{ username = \"u\", password_file = \"" + path + "\" }"));
    };
    EXPECT_TRUE(has(load("/nonexistent/smtplb-pw"), kError, key, "cannot read"));
    EXPECT_TRUE(has(load(file_with("smtplb-auth-empty", "\n")), kError, key, "is empty"));
    EXPECT_TRUE(has(load(file_with("smtplb-auth-long", std::string(256, 'x'))), kError, key,
                    "longer than 255 bytes"));
    EXPECT_TRUE(has(load(file_with("smtplb-auth-huge", std::string(100000, 'x'))), kError, key,
                    "too long for a password file"));
    EXPECT_TRUE(has(load(file_with("smtplb-auth-two", "one\ntwo\n")), kError, key, "one line"));
    EXPECT_TRUE(has(load(file_with("smtplb-auth-nul", std::string("a\0b\n", 4))), kError, key,
                    "control character"));
    // No error repeats the password.
    auto r = load(file_with("smtplb-auth-two2", "s3cret\nmore\n"));
    EXPECT_EQ(r.diagnostics.format("t").find("s3cret"), std::string::npos);
}

TEST(BackendAuth, UsernameAndPasswordFileAreRequiredAndAPasswordKeyIsRefused) {
    auto r = load_text(with_auth("{ password = \"s3cret\" }"));
    EXPECT_TRUE(has(r, kError, kAuthPath + ".username", "required"));
    EXPECT_TRUE(has(r, kError, kAuthPath + ".password_file", "required"));
    EXPECT_TRUE(has(r, kError, kAuthPath + ".password", "password_file"));
    EXPECT_EQ(r.diagnostics.format("t").find("s3cret"), std::string::npos);
    auto file = file_with("smtplb-auth-user", "pw\n");
    auto long_user = load_text(with_auth("{ username = \"" + std::string(256, 'u') +
                                         "\", password_file = \"" + file + "\" }"));
    EXPECT_TRUE(has(long_user, kError, kAuthPath + ".username", "at most 255"));
}

TEST(BackendAuth, PlaintextIsAnErrorUnlessAllowedAndOpportunisticWarns) {
    auto file = file_with("smtplb-auth-tls", "pw\n");
    const std::string auth = "{ username = \"u\", password_file = \"" + file + "\"";
    auto plain = load_text(with_auth(auth + " }", "none"));
    EXPECT_FALSE(plain.config);
    EXPECT_TRUE(has(plain, kError, kAuthPath, "allow_plaintext = true"));
    auto lab = load_text(with_auth(auth + ", allow_plaintext = true }", "none"));
    ASSERT_TRUE(lab.config) << lab.diagnostics.format("t");
    EXPECT_TRUE(lab.config->pools[0].backends[0].auth->allow_plaintext);
    EXPECT_TRUE(lab.diagnostics.items.empty());  // loopback: no warning
    auto remote =
        load_text(with_auth(auth + ", allow_plaintext = true }", "none", "192.0.2.7:587"));
    ASSERT_TRUE(remote.config);
    EXPECT_TRUE(has(remote, kWarning, kAuthPath + ".allow_plaintext", "not a loopback"));
    auto opportunistic = load_text(with_auth(auth + " }", "opportunistic"));
    ASSERT_TRUE(opportunistic.config);
    EXPECT_TRUE(has(opportunistic, kWarning, kAuthPath, "mode = \"required\""));
}

TEST(BackendAuth, UnknownKeysAreReported) {
    auto file = file_with("smtplb-auth-typo", "pw\n");
    auto r = load_text(
        with_auth("{ username = \"u\", password_file = \"" + file + "\", mechansim = \"plain\" }"));
    EXPECT_TRUE(has(r, kError, kAuthPath + ".mechansim", "unknown key"));
}
